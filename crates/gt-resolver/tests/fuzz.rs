//! Fuzzing `case_map.json` (through the public API: a local GT tree whose official case map is
//! random, then `Resolver::resolve`) on stable Rust with proptest: structured maps with hostile
//! outputs (paths that escape the tree, other cases' files, wrong types), random edits of a valid
//! map, and arbitrary bytes. No panic; whatever the map says, a resolved file is one of the query's
//! candidate names inside the tree.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, mutate};
use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};
use proptest::prelude::*;
use serde_json::{Value, json};

const CI_CASES: u32 = 1000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

/// One GT tree per property for the whole run: official and ours hold `c_1gpu.png`.
fn tree(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let root = DIR
        .get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .join(name);
    for dir in ["official_generated", "sglang_generated"] {
        let d = root.join(dir);
        if !d.is_dir() {
            std::fs::create_dir_all(d.join("h100")).expect("mkdir");
            std::fs::write(d.join("c_1gpu.png"), b"png").expect("gt");
            std::fs::write(d.join("h100/c_1gpu.png"), b"png").expect("gt");
        }
    }
    root
}

fn output() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "c_1gpu.png",
            "h100/c_1gpu.png",
            "../sglang_generated/c_1gpu.png",
            "/etc/passwd",
            "c_1gpu.jpg",
            "",
            "d_1gpu.png",
        ])
        .prop_map(|s| json!(s)),
        Just(json!(3)),
        Just(Value::Null),
    ]
}

fn case_map() -> impl Strategy<Value = Value> {
    let entry = prop_oneof![
        4 => prop::collection::vec(output(), 0..4).prop_map(|o| json!({"outputs": o})),
        1 => Just(json!({})),
        1 => Just(json!({"outputs": "c_1gpu.png"})),
        1 => Just(json!([])),
    ];
    prop_oneof![
        6 => prop::collection::btree_map(
            prop::sample::select(vec!["c", "d", "", "../c"]).prop_map(str::to_string),
            entry,
            0..3,
        )
        .prop_map(|m| json!({"cases": m})),
        1 => Just(json!({"cases": []})),
        1 => Just(json!([])),
    ]
}

fn exercise(root: &Path, case_map: &[u8]) {
    std::fs::write(root.join("official_generated/case_map.json"), case_map).expect("write");
    let gt_root = GtRoot::parse(&root.to_string_lossy(), false).expect("local root");
    let resolver = Resolver::builder()
        .root(&gt_root)
        .cache_dir(root.join("cache"))
        .build()
        .expect("resolver");
    for platform in [Platform::default(), Platform::parse("h100").expect("h100")] {
        let q = GtQuery::image("c", 1, Some("png"), platform);
        let Ok(r) = resolver.resolve(&q) else {
            continue;
        };
        for f in &r.files {
            assert!(
                f.name == "c_1gpu.png" || f.name == "h100/c_1gpu.png",
                "{} resolved from case map {}",
                f.name,
                String::from_utf8_lossy(case_map)
            );
            if let Some(p) = &f.local_path {
                assert!(
                    p.starts_with(root),
                    "{} escapes {}",
                    p.display(),
                    root.display()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn structured_case_maps_never_panic(map in case_map()) {
        exercise(&tree("structured"), map.to_string().as_bytes());
    }

    #[test]
    fn edited_case_maps_never_panic(edits in edits()) {
        let base = json!({"cases": {"c": {"outputs": ["c_1gpu.png", "h100/c_1gpu.png"]}}});
        exercise(&tree("edited"), &mutate(base.to_string().as_bytes(), &edits));
    }
}

/// The unfuzzed map is read (official GT chosen), so the fuzzing reaches past the parse.
#[test]
fn the_base_case_map_chooses_official_gt() {
    let root = tree("base");
    let map = json!({"cases": {"c": {"outputs": ["c_1gpu.png"]}}});
    std::fs::write(
        root.join("official_generated/case_map.json"),
        map.to_string(),
    )
    .expect("write");
    let gt_root = GtRoot::parse(&root.to_string_lossy(), false).expect("local root");
    let r = Resolver::builder()
        .root(&gt_root)
        .cache_dir(root.join("cache"))
        .build()
        .expect("resolver")
        .resolve(&GtQuery::image("c", 1, Some("png"), Platform::default()))
        .expect("resolve");
    assert_eq!(r.source.map(|s| s.as_str()), Some("official"), "{r:?}");
}
