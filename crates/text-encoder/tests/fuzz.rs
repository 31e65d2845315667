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

/// The real config with a few keys (down to three levels) replaced by hostile values or removed.
fn config_document() -> impl Strategy<Value = Value> {
    fuzz_support::edited_config(base(), 3, hostile())
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
