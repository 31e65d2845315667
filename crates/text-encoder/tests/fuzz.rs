//! Fuzzing the Qwen2.5-VL config parsers (`TextConfig::from_json`, `VisionConfig::from_json`) on
//! stable Rust with proptest: the tiny model's config.json with hostile values at any key
//! (nested `text_config`, `vision_config`, `rope_parameters` too), random edits of the file, and
//! arbitrary JSON. No panic or overflow; an accepted config answers its derived sizes.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, hostile_json as hostile, mutate};
use proptest::prelude::*;
use serde_json::{Value, json};
use text_encoder::{TextConfig, VisionConfig};

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vision/text_encoder/config.json")
}

fn base() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_config()).expect("config")).expect("json")
}

/// Every key path of `v` (objects only, a few levels deep).
fn key_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            prefix.push(k.clone());
            out.push(prefix.clone());
            if prefix.len() < 3 {
                key_paths(child, prefix, out);
            }
            prefix.pop();
        }
    }
}

/// The real config with a few keys (at any depth) replaced by hostile values or removed.
fn config_document() -> impl Strategy<Value = Value> {
    let base = base();
    let mut paths = Vec::new();
    key_paths(&base, &mut Vec::new(), &mut paths);
    prop::collection::vec(
        (
            prop::sample::select(paths),
            prop::option::weighted(0.9, hostile()),
        ),
        1..4,
    )
    .prop_map(move |changes| {
        let mut doc = base.clone();
        for (path, value) in changes {
            let (last, parents) = path.split_last().expect("non-empty path");
            let mut at = Some(&mut doc);
            for p in parents {
                at = at.and_then(|v| v.get_mut(p));
            }
            if let Some(m) = at.and_then(Value::as_object_mut) {
                match value {
                    Some(v) => m.insert(last.clone(), v),
                    None => m.remove(last),
                };
            }
        }
        doc
    })
}

fn exercise(doc: &Value) {
    let path = Path::new("fuzz/config.json");
    if let Ok(c) = TextConfig::from_json(doc, path) {
        let _ = c.head_dim();
    }
    if let Ok(v) = VisionConfig::from_json(doc, path) {
        let _ = (v.head_dim(), v.patch_dim(), v.merged_window());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_config_values_never_panic(doc in config_document()) {
        exercise(&doc);
    }

    #[test]
    fn edited_config_files_never_panic(edits in edits()) {
        let bytes = std::fs::read(tiny_config()).expect("config");
        if let Ok(doc) = serde_json::from_slice::<Value>(&mutate(&bytes, &edits)) {
            exercise(&doc);
        }
    }
}

/// The unfuzzed config parses both ways (so the fuzzing reaches past the first check), and what
/// the fuzzer found stays refused: a vision patch width `in_channels × temporal × patch²` that
/// overflowed (kept in `fuzz.proptest-regressions` too).
#[test]
fn the_base_parses_and_found_overflows_are_refused() {
    let path = Path::new("config.json");
    TextConfig::from_json(&base(), path).expect("text config");
    VisionConfig::from_json(&base(), path).expect("vision config");
    for (key, value) in [
        ("patch_size", json!(1u64 << 33)),
        ("in_channels", json!(u64::MAX)),
        ("window_size", json!(u64::MAX)),
    ] {
        let mut doc = base();
        doc["vision_config"][key] = value;
        let e = VisionConfig::from_json(&doc, path)
            .expect_err(key)
            .to_string();
        assert!(e.contains(key), "{e}");
    }
}
