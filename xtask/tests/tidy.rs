//! Tidy checks (as rust-analyzer has them): ARCHITECTURE.md's layering, kept true by reading every
//! `Cargo.toml` of the workspace, and the one place that names a concrete backend.
//!
//! The allowed edges are ARCHITECTURE.md's dependency table, read from the file itself: when a new
//! crate or a new edge is wanted, change that table (and its prose).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::common::root;

/// A crate's allowed workspace dependencies: crate → the crates it may use.
type Edges = BTreeMap<String, BTreeSet<String>>;

/// The allowed edges, read from ARCHITECTURE.md's dependency table (the rows between
/// `<!-- tidy:edges -->` and `<!-- /tidy:edges -->`: crate | may use | tests and benches may also
/// use): the normal and build edges, then the extra dev edges. `any` becomes `"*"`, `—` none.
fn architecture_edges() -> (Edges, Edges) {
    let path = root().join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("read ARCHITECTURE.md");
    parse_edges(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_edges(text: &str) -> Result<(Edges, Edges), String> {
    let start = text
        .find("<!-- tidy:edges -->")
        .ok_or("no `<!-- tidy:edges -->` marker")?;
    let end = text[start..]
        .find("<!-- /tidy:edges -->")
        .ok_or("no `<!-- /tidy:edges -->` marker")?;
    let list = |cell: &str| -> BTreeSet<String> {
        cell.split(',')
            .map(|c| c.trim().trim_matches('`').trim())
            .filter(|c| !c.is_empty() && *c != "—")
            .map(|c| {
                if c == "any" {
                    "*".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let (mut normal, mut dev) = (Edges::new(), Edges::new());
    for line in text[start..start + end].lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let name = cells.first().map_or("", |c| c.trim().trim_matches('`'));
        if cells.len() != 3 || name.is_empty() || name == "crate" || name.starts_with("---") {
            continue;
        }
        if normal.insert(name.to_string(), list(cells[1])).is_some() {
            return Err(format!("crate `{name}` has two rows"));
        }
        dev.insert(name.to_string(), list(cells[2]));
    }
    if normal.is_empty() {
        return Err("the dependency table has no rows".into());
    }
    Ok((normal, dev))
}

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
const ML_BEHIND_FEATURE: &[(&str, &str)] = &[("metrics", "clip"), ("parity-support", "burn")];

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

/// Every edge the tables do not allow, as messages naming the manifest.
fn edge_violations(all: &[Manifest]) -> Vec<String> {
    let members: BTreeSet<&str> = all.iter().map(|m| m.name.as_str()).collect();
    let (allowed, allowed_dev) = architecture_edges();
    let mut wrong = Vec::new();
    for m in all {
        let Some(ok) = allowed.get(m.name.as_str()) else {
            wrong.push(format!(
                "{}: crate `{}` is not in ARCHITECTURE.md's dependency table: give it a row \
                 (and a paragraph in the code map)",
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
        "crate `new-crate` is not in ARCHITECTURE.md's dependency table",
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

#[test]
fn the_edge_table_is_read_from_architecture_md() {
    let (normal, dev) = architecture_edges();
    assert!(normal["xtask"].contains("*"));
    assert!(normal["cases"].contains("pipeline"));
    assert!(dev["cases"].contains("metrics"));
    let table = "<!-- tidy:edges -->\n| crate | may use | tests |\n|---|---|---|\n\
                 | `a` | `b`, `c` | — |\n| `b` | — | `c` |\n<!-- /tidy:edges -->";
    let (n, d) = parse_edges(table).unwrap();
    assert_eq!(n["a"].len(), 2);
    assert!(n["b"].is_empty() && d["b"].contains("c"));
    assert!(parse_edges("no table").is_err());
    let twice = table.replace("| `b` | —", "| `a` | —");
    assert!(parse_edges(&twice).unwrap_err().contains("two rows"));
}

/// Module → the modules of the same crate it names (`crate::a::b`, `super::x`, `self::x`), in
/// code before its `#[cfg(test)]` module, comments and doc comments left out.
fn module_imports(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let module_of = |p: &std::path::Path| -> String {
        let rel = p.strip_prefix(src).expect("under src").with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts.join("::")
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    // The longest module path that `path` starts with.
    let resolve = |path: &[&str]| -> Option<String> {
        (0..=path.len())
            .rev()
            .map(|i| path[..i].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut graph = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        let text = std::fs::read_to_string(f).expect("read source");
        let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
        let mut out = BTreeSet::new();
        let here: Vec<&str> = if m.is_empty() {
            vec![]
        } else {
            m.split("::").collect()
        };
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for path in paths(&code) {
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<&str> = match segs.first() {
                Some(&"crate") => vec![],
                Some(&"self" | &"super") => here.clone(),
                _ => continue,
            };
            let mut rest = &segs[usize::from(segs[0] != "super")..];
            while let Some((&"super", tail)) = rest.split_first() {
                base.pop();
                rest = tail;
            }
            let full: Vec<&str> = base.into_iter().chain(rest.iter().copied()).collect();
            if let Some(t) = resolve(&full)
                && t != m
                && !t.is_empty()
                && !m.starts_with(&format!("{t}::"))
            {
                out.insert(t);
            }
        }
        graph.insert(m, out);
    }
    graph
}

/// Every `a::b::c` path in `code`, `use` groups expanded (`crate::{a, b::c}` gives `crate::a` and
/// `crate::b::c`, one level deep, which is how the workspace writes them).
fn paths(code: &str) -> Vec<String> {
    let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    let bytes: Vec<char> = code.chars().collect();
    while i < bytes.len() {
        if !is_path(bytes[i]) || (i > 0 && is_path(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_path(bytes[i]) {
            i += 1;
        }
        let token: String = bytes[start..i].iter().collect();
        if token.ends_with("::") && bytes.get(i) == Some(&'{') {
            let close = bytes[i..]
                .iter()
                .position(|&c| c == '}')
                .map_or(bytes.len(), |p| i + p);
            let group: String = bytes[i + 1..close].iter().collect();
            for item in group.split(',') {
                let item: String = item.trim().chars().take_while(|&c| is_path(c)).collect();
                if !item.is_empty() {
                    out.push(format!("{token}{item}"));
                }
            }
            i = close;
        } else if token.contains("::") {
            out.push(token);
        }
    }
    out
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_string()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let mut srcs = vec![root().join("xtask/src")];
    for e in std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
    {
        srcs.push(e.path().join("src"));
    }
    let mut circles = Vec::new();
    for src in srcs.iter().filter(|s| s.is_dir()) {
        let graph = module_imports(src);
        for m in graph.keys() {
            if let Some(c) = cycle_from(&graph, m) {
                circles.push(format!("{}: {}", src.display(), c.join(" → ")));
                break;
            }
        }
    }
    assert!(circles.is_empty(), "\n{}", circles.join("\n"));
}
