//! Test scaffolding for the fuzz tests of every parser of user input (the README below is the
//! crate's documentation).

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

/// Every key path of `v` down to `max_depth` levels (objects only), in document order.
fn key_paths(v: &Value, max_depth: usize, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            prefix.push(k.clone());
            out.push(prefix.clone());
            if prefix.len() < max_depth {
                key_paths(child, max_depth, prefix, out);
            }
            prefix.pop();
        }
    }
}

/// A real config document with one to three of its keys (down to `max_depth` levels; 1 = the
/// top level) each replaced by a value of `values` or, one time in ten, removed.
pub fn edited_config(
    base: Value,
    max_depth: usize,
    values: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    let mut paths = Vec::new();
    key_paths(&base, max_depth, &mut Vec::new(), &mut paths);
    prop::collection::vec(
        (
            prop::sample::select(paths),
            prop::option::weighted(0.9, values),
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

/// One scratch folder for a whole test binary (a temp dir per input costs more than the parse),
/// removed when the process ends normally.
pub fn scratch() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}
