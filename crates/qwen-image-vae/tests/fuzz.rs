//! Fuzzing the VAE's config parser (`VaeConfig::from_file`) on stable Rust with proptest: the tiny
//! model's config.json with hostile values (huge widths, long `temperal_downsample` lists, zero
//! and non-finite statistics, wrong types) and random edits of it. No panic or overflow; an
//! accepted config can be asked for its scale factor.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, hostile_json as generic_hostile, mutate, scratch};
use proptest::prelude::*;
use qwen_image_vae::VaeConfig;
use serde_json::{Value, json};

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

/// The real config with some top-level keys replaced by hostile values (or removed).
fn config_document(base: Value) -> impl Strategy<Value = Value> {
    fuzz_support::edited_config(base, 1, hostile())
}

fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/vae/config.json")
}

fn base() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_config()).expect("config")).expect("json")
}

fn exercise(bytes: &[u8], file: &str) {
    let path = scratch().join(file);
    std::fs::write(&path, bytes).expect("write");
    if let Ok(c) = VaeConfig::from_file(&path) {
        let f = c.scale_factor();
        assert!(f.is_power_of_two(), "{c:?}");
        assert_eq!(c.latents_std.len(), c.z_dim);
    }
}

/// The generic hostile values, plus the VAE's list shapes: long downsample lists (a shift by 64
/// or more), huge channel multipliers, statistics with zero or NaN-like values.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => generic_hostile(),
        1 => prop::collection::vec(any::<bool>(), 0..80).prop_map(|v| json!(v)),
        1 => prop::collection::vec(prop_oneof![Just(1u64 << 40), Just(u64::MAX), 0u64..9], 0..6)
            .prop_map(|v| json!(v)),
        1 => prop::collection::vec(prop_oneof![Just(0.0f64), Just(-1e300), -3.0f64..3.0], 0..20)
            .prop_map(|v| json!(v)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_config_values_never_panic(doc in config_document(base())) {
        exercise(doc.to_string().as_bytes(), "hostile.json");
    }

    #[test]
    fn edited_config_files_never_panic(edits in edits()) {
        let bytes = std::fs::read(tiny_config()).expect("config");
        exercise(&mutate(&bytes, &edits), "edited.json");
    }
}

/// What the fuzzer found (kept in `fuzz.proptest-regressions` too): widths that overflowed
/// `base_dim × dim_mult` and a downsample list long enough to overflow the scale factor's shift.
#[test]
fn found_overflows_are_refused_naming_the_key() {
    for (key, value, says) in [
        (
            "dim_mult",
            json!([1u64 << 40, 1u64 << 40, 1u64 << 40, u64::MAX]),
            "dim_mult",
        ),
        ("base_dim", json!(1u64 << 62), "base_dim"),
        (
            "temperal_downsample",
            json!(vec![true; 70]),
            "temperal_downsample",
        ),
        ("z_dim", json!(u64::MAX), "z_dim"),
    ] {
        let mut doc = base();
        doc[key] = value;
        let path = scratch().join(format!("found-{key}.json"));
        std::fs::write(&path, doc.to_string()).expect("write");
        let e = VaeConfig::from_file(&path).expect_err(key).to_string();
        assert!(e.contains(says), "{e}");
    }
}
