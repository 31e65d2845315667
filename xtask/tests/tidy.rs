//! Tidy checks (as rust-analyzer has them): ARCHITECTURE.md's layering, kept true by reading every
//! `Cargo.toml` of the workspace, and the one place that names a concrete backend.
//!
//! When a new crate or a new edge is wanted, change ARCHITECTURE.md's code map first, then the
//! tables below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::common::root;

/// The workspace dependencies each crate may have ([dependencies], [build-dependencies] and
/// target-specific ones), from ARCHITECTURE.md's code map: dependencies point down only; the
/// model crates (text-encoder, qwen-image-dit, qwen-image-vae) never depend on each other; the
/// small maths crates, gt-resolver and image-io depend on no other crate (config-file aside); only
/// xtask knows them all (pipeline, metrics and gt-resolver together). `"*"` means any workspace
/// crate.
const ALLOWED: &[(&str, &[&str])] = &[
    // Test scaffolding (a dev-dependency only, below everything).
    ("fuzz-support", &[]),
    // Reads a JSON config file, naming it in errors (no ML dependency).
    ("config-file", &[]),
    ("weights", &["config-file"]),
    ("torch-rng", &[]),
    ("flow-match", &["config-file"]),
    ("cfg", &[]),
    ("gt-resolver", &[]),
    ("image-io", &[]),
    ("tokenizer-loader", &["weights", "config-file"]),
    (
        "text-encoder",
        &["weights", "tokenizer-loader", "image-io", "config-file"],
    ),
    ("qwen-image-dit", &["weights", "config-file"]),
    ("qwen-image-vae", &["weights", "image-io", "config-file"]),
    ("metrics", &["weights", "image-io", "config-file"]),
    (
        "pipeline",
        &[
            "weights",
            "text-encoder",
            "qwen-image-dit",
            "qwen-image-vae",
            "flow-match",
            "cfg",
            "torch-rng",
            "image-io",
        ],
    ),
    // The case file, mapped onto pipeline requests (the runner's and the server's input).
    ("cases", &["pipeline", "weights", "torch-rng", "image-io"]),
    // SGLang's image API in front of one pipeline (generic over the backend; xtask picks it).
    (
        "server",
        &["pipeline", "cases", "text-encoder", "torch-rng", "image-io"],
    ),
    // xtask composes everything.
    ("xtask", &["*"]),
];

/// Extra workspace crates a crate's tests and benches may use ([dev-dependencies]): the
/// end-to-end test scores the pipeline's images with the metrics crate; every parser's fuzz test
/// uses the shared proptest scaffolding.
const ALLOWED_DEV: &[(&str, &[&str])] = &[
    ("cases", &["metrics", "fuzz-support"]),
    ("server", &["fuzz-support"]),
    ("gt-resolver", &["fuzz-support"]),
    ("image-io", &["fuzz-support"]),
    ("metrics", &["fuzz-support"]),
    ("qwen-image-dit", &["fuzz-support"]),
    ("qwen-image-vae", &["fuzz-support"]),
    ("text-encoder", &["fuzz-support"]),
    ("tokenizer-loader", &["fuzz-support"]),
    ("weights", &["fuzz-support"]),
];

/// Model crates: never a dependency of one another, not even for tests.
const MODELS: &[&str] = &["text-encoder", "qwen-image-dit", "qwen-image-vae"];

/// Crates with no ML dependency at all (ARCHITECTURE.md's invariants).
const NO_ML: &[&str] = &[
    "gt-resolver",
    "flow-match",
    "torch-rng",
    "image-io",
    "fuzz-support",
    "config-file",
];

/// Crates whose ML dependencies sit behind one feature, off without it.
const ML_BEHIND_FEATURE: &[(&str, &str)] = &[("metrics", "clip")];

fn is_ml(dep: &str) -> bool {
    dep == "burn" || dep.starts_with("burn-") || dep == "tokenizers"
}

struct Manifest {
    name: String,
    path: PathBuf,
    toml: toml::Table,
}

fn manifests() -> Vec<Manifest> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("crates/ entry").path().join("Cargo.toml"))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.push(root().join("xtask/Cargo.toml"));
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read Cargo.toml");
            let toml: toml::Table =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = toml["package"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no package.name", path.display()))
                .to_string();
            Manifest { name, path, toml }
        })
        .collect()
}

/// Dependency tables of one kind ("dependencies", "dev-dependencies", "build-dependencies"),
/// target-specific ones included: dependency name → its entry.
fn deps<'a>(m: &'a Manifest, kind: &str) -> BTreeMap<&'a str, &'a toml::Value> {
    let mut out = BTreeMap::new();
    let mut add = |t: Option<&'a toml::Value>| {
        for (k, v) in t.and_then(toml::Value::as_table).into_iter().flatten() {
            out.insert(k.as_str(), v);
        }
    };
    add(m.toml.get(kind));
    for target in m
        .toml
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flatten()
    {
        add(target.1.get(kind));
    }
    out
}

fn table(
    t: &'static [(&'static str, &'static [&'static str])],
) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    t.iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect()
}

/// Every edge the tables do not allow, as messages naming the manifest.
fn edge_violations(all: &[Manifest]) -> Vec<String> {
    let members: BTreeSet<&str> = all.iter().map(|m| m.name.as_str()).collect();
    let allowed = table(ALLOWED);
    let allowed_dev = table(ALLOWED_DEV);
    let mut wrong = Vec::new();
    for m in all {
        let Some(ok) = allowed.get(m.name.as_str()) else {
            wrong.push(format!(
                "{}: crate `{}` is not in tidy.rs's table: give it a place in ARCHITECTURE.md's \
                 code map, then in ALLOWED",
                m.path.display(),
                m.name
            ));
            continue;
        };
        let none = BTreeSet::new();
        let ok_dev = allowed_dev.get(m.name.as_str()).unwrap_or(&none);
        let ok_all = ok.contains("*");
        for kind in ["dependencies", "build-dependencies", "dev-dependencies"] {
            for dep in deps(m, kind).into_keys().filter(|d| members.contains(d)) {
                let fine = ok_all
                    || ok.contains(dep)
                    || (kind == "dev-dependencies" && ok_dev.contains(dep));
                if !fine {
                    wrong.push(format!(
                        "{}: [{kind}] {dep}: `{}` may not depend on `{dep}` (ARCHITECTURE.md)",
                        m.path.display(),
                        m.name
                    ));
                }
            }
        }
    }
    wrong
}

#[test]
fn every_dependency_edge_is_one_architecture_md_allows() {
    let wrong = edge_violations(&manifests());
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_edge_check_catches_an_edge_going_up_or_sideways() {
    let fake = |name: &str, text: &str| Manifest {
        name: name.into(),
        path: PathBuf::from(format!("crates/{name}/Cargo.toml")),
        toml: toml::from_str(text).expect("toml"),
    };
    let mut all = manifests();
    all.retain(|m| m.name != "qwen-image-dit" && m.name != "flow-match");
    all.push(fake(
        "qwen-image-dit",
        "[package]\nname = \"qwen-image-dit\"\n[target.'cfg(unix)'.dependencies]\ntext-encoder = \"*\"\n",
    ));
    all.push(fake(
        "flow-match",
        "[package]\nname = \"flow-match\"\n[dev-dependencies]\npipeline = \"*\"\n",
    ));
    all.push(fake("new-crate", "[package]\nname = \"new-crate\"\n"));
    let wrong = edge_violations(&all).join("\n");
    for needle in [
        "`qwen-image-dit` may not depend on `text-encoder`",
        "`flow-match` may not depend on `pipeline`",
        "crate `new-crate` is not in tidy.rs's table",
    ] {
        assert!(wrong.contains(needle), "{needle}: {wrong}");
    }
}

#[test]
fn model_crates_never_depend_on_each_other() {
    for m in manifests()
        .iter()
        .filter(|m| MODELS.contains(&m.name.as_str()))
    {
        for kind in ["dependencies", "build-dependencies", "dev-dependencies"] {
            for dep in deps(m, kind).into_keys() {
                assert!(
                    !MODELS.contains(&dep),
                    "{}: [{kind}] the model crate `{}` depends on the model crate `{dep}`",
                    m.path.display(),
                    m.name
                );
            }
        }
    }
}

#[test]
fn small_crates_have_no_ml_dependency_and_metrics_only_behind_clip() {
    let all = manifests();
    for m in all.iter().filter(|m| NO_ML.contains(&m.name.as_str())) {
        for kind in ["dependencies", "build-dependencies"] {
            for dep in deps(m, kind).into_keys() {
                assert!(
                    !is_ml(dep),
                    "{}: `{}` must have no ML dependency, but depends on `{dep}`",
                    m.path.display(),
                    m.name
                );
            }
        }
    }
    // Each ML dependency (or workspace crate that brings one) is optional and turned on by the
    // feature alone; no other feature, default included, reaches it except through that feature.
    for (name, feature) in ML_BEHIND_FEATURE {
        let m = all
            .iter()
            .find(|m| m.name == *name)
            .unwrap_or_else(|| panic!("no crate {name}"));
        let ml_or_brings_ml =
            |dep: &str| is_ml(dep) || (all.iter().any(|o| o.name == dep) && !NO_ML.contains(&dep));
        let features = m.toml.get("features").and_then(toml::Value::as_table);
        for (dep, entry) in deps(m, "dependencies") {
            if !ml_or_brings_ml(dep) {
                continue;
            }
            let optional = entry.get("optional").and_then(toml::Value::as_bool) == Some(true);
            assert!(
                optional,
                "{}: `{dep}` must be optional (behind the `{feature}` feature)",
                m.path.display()
            );
            for (f, enables) in features.into_iter().flatten() {
                let names_dep = enables.as_array().into_iter().flatten().any(|e| {
                    e.as_str().is_some_and(|e| {
                        e == format!("dep:{dep}") || e == dep || e.starts_with(&format!("{dep}/"))
                    })
                });
                assert!(
                    !names_dep || f == feature,
                    "{}: feature `{f}` turns on `{dep}`; only `{feature}` may",
                    m.path.display()
                );
            }
        }
    }
}

/// `xtask/src/backend.rs` is the one place that names a concrete backend type; every other
/// source file goes through `with_backend!` or `backend::Cpu`.
#[test]
fn only_backend_rs_names_a_concrete_backend() {
    let src = root().join("xtask/src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read xtask/src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && p != src.join("backend.rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 5, "found only {files:?}");
    let mut wrong = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        for (i, line) in text.lines().enumerate() {
            if [
                "Flex<",
                "Cuda<",
                "Wgpu<",
                "backend::Flex",
                "backend::Cuda",
                "backend::Wgpu",
            ]
            .iter()
            .any(|n| line.contains(n))
            {
                wrong.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "name backends in xtask/src/backend.rs only:\n{}",
        wrong.join("\n")
    );
}

/// Commands share helpers through `xtask/src/util.rs`, never by importing from another command.
#[test]
fn commands_do_not_import_each_other() {
    let dir = root().join("xtask/src/cmd");
    let commands: Vec<String> = std::fs::read_dir(&dir)
        .expect("read xtask/src/cmd")
        .filter_map(|e| {
            let p = e.expect("entry").path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "rs" && stem != "mod").then_some(stem)
        })
        .collect();
    assert!(commands.len() > 5, "found only {commands:?}");
    let mut wrong = Vec::new();
    for cmd in &commands {
        let path = dir.join(format!("{cmd}.rs"));
        let text = std::fs::read_to_string(&path).expect("read command");
        for (i, line) in text.lines().enumerate() {
            let imports_other = line.contains("crate::cmd::")
                || commands
                    .iter()
                    .filter(|other| *other != cmd)
                    .any(|other| line.contains(&format!("super::{other}")));
            if imports_other {
                wrong.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "move shared helpers to xtask/src/util.rs:\n{}",
        wrong.join("\n")
    );
}

/// `cargo tree`'s `name vX [features]` lines → features per package.
fn features_of(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = std::process::Command::new(cargo)
        .current_dir(root())
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(["--format", "{p} [{f}]"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let (Some(open), Some(close)) = (line.find(" ["), line.rfind(']')) else {
            continue;
        };
        let mut words = line[..open].split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        out.entry(format!("{name} {version}")).or_default().extend(
            line[open + 2..close]
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    out
}

/// `cargo test --workspace` after `cargo xtask consistency` compiles only our test targets and
/// dev-only crates: every crate both build has the same features (a dev-dependency that turns on
/// one more, as insta and tempfile did through bitflags/fastrand, rebuilt burn-flex and everything
/// above it), and the test profile is the dev profile (docs/performance.md, "Build and test").
#[test]
fn the_tests_reuse_what_the_main_job_built() {
    let run = features_of(&["-p", "xtask", "-e", "normal,build"]);
    let test = features_of(&["--workspace", "-e", "normal,build,dev"]);
    assert!(run.contains_key("burn-flex v0.21.0"), "{run:?}");
    let differ: Vec<String> = run
        .iter()
        .filter_map(|(p, f)| {
            let t = test.get(p)?;
            (t != f).then(|| format!("{p}: `cargo xtask` {f:?}, `cargo test` {t:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "features differ, so `cargo test` rebuilds these and all above them:\n{}",
        differ.join("\n")
    );
    let toml: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let test_profile = toml
        .get("profile")
        .and_then(|p| p.get("test"))
        .and_then(|t| t.as_table())
        .map(|t| t.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        test_profile.is_empty(),
        "[profile.test] sets {test_profile:?}: the tests would recompile the workspace"
    );
}
