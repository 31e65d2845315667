#![doc = include_str!("../README.md")]

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};

/// `ci_cases` inputs per property in CI (a fixed, small budget); `PROPTEST_CASES=N` runs
/// longer. Failing inputs are kept next to the calling test file
/// (`tests/fuzz.proptest-regressions`, committed) and replayed first on every run.
pub fn config(ci_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci_cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Random edits of a valid input: delete a range, insert bytes, overwrite a byte, duplicate a
/// range — what a truncated download, a bad editor or a hostile file does to it.
pub fn edits() -> impl Strategy<Value = Vec<(usize, usize, u8, Vec<u8>)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            0usize..4,
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..8),
        ),
        0..6,
    )
}

pub fn mutate(base: &[u8], edits: &[(usize, usize, u8, Vec<u8>)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for (pos, op, byte, bytes) in edits {
        let at = if v.is_empty() { 0 } else { pos % (v.len() + 1) };
        match op {
            0 => {
                let end = (at + usize::from(*byte) % 16).min(v.len());
                v.drain(at..end);
            }
            1 => {
                v.splice(at..at, bytes.iter().copied());
            }
            2 if at < v.len() => v[at] = *byte,
            _ => {
                let end = (at + usize::from(*byte)).min(v.len());
                let copy = v[at..end].to_vec();
                v.splice(at..at, copy);
            }
        }
    }
    v
}

/// A hostile JSON value for a config key (any parser of JSON configs): the sizes that overflowed (2^60 heads, 2^33 patches),
/// zero, negative, fractional, huge, wrong types.
pub fn hostile_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(2),
            json!(3),
            json!(-1),
            json!(1.5),
            json!(1u64 << 33),
            json!(1u64 << 60),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e300),
            json!(null),
            json!(true),
            json!("x"),
            json!([]),
            json!([0, 0, 0]),
            json!([1u64 << 62, 2, 2]),
            json!({}),
        ]),
        (0u64..100_000).prop_map(|v| json!(v)),
        prop::collection::vec((0i64..70).prop_map(|v| json!(v)), 0..5).prop_map(Value::Array),
    ]
}
