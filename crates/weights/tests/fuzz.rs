//! Fuzzing the checkpoint readers on stable Rust with proptest: safetensors files with random
//! headers (dtypes, shapes, offsets, header lengths, truncated data), random edits of a real
//! golden file, and sharded folders with random `*.safetensors.index.json`. Whatever the bytes:
//! `Weights::open` and every read give a value or an error, never a panic.

use std::path::Path;

use burn::backend::Flex;
use fuzz_support::{edits, mutate, scratch};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use weights::Weights;

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

/// One folder for the whole run (a fresh temp dir per input costs more than the parse).
fn golden() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vae/postprocess.safetensors")
}

/// Open `path` and read every tensor every way a model or the CLI reads one.
fn exercise(path: &Path) {
    let Ok(w) = Weights::open(path) else {
        return;
    };
    let dev = Default::default();
    for name in w.names().iter().map(|s| s.to_string()).collect::<Vec<_>>() {
        let _ = w.shape(&name);
        let _ = w.dtype(&name);
        let _ = w.get_f32(&name);
        let _ = w.get_i64(&name);
        let _ = w.get_any::<Flex, 1>(&name, &dev);
        let _ = w.get_any::<Flex, 2>(&name, &dev);
    }
    let _ = w.check_all_used(&[]);
}

/// A short name from `chars` (a char strategy, not a regex: proptest compiles a regex string
/// strategy again for every value).
fn name(chars: &'static str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(chars.chars().collect::<Vec<_>>()), len)
        .prop_map(|c| c.into_iter().collect())
}

fn dim() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..6).prop_map(|v| json!(v)),
        1 => any::<u64>().prop_map(|v| json!(v)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(-1)),
        1 => Just(json!(1.5)),
    ]
}

/// One header entry: mostly well-formed, with hostile dtypes, shapes and offsets.
fn entry() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "F32", "BF16", "F16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "C64", "X",
        ]),
        prop::collection::vec(dim(), 0..4),
        prop_oneof![
            3 => (0u64..64, 0u64..64).prop_map(|(a, b)| json!([a, a + b])),
            1 => (any::<u64>(), any::<u64>()).prop_map(|(a, b)| json!([a, b])),
            1 => Just(json!([u64::MAX - 1, u64::MAX])),
            1 => Just(json!([0])),
        ],
    )
        .prop_map(|(dtype, shape, offsets)| {
            json!({"dtype": dtype, "shape": shape, "data_offsets": offsets})
        })
}

/// A whole file: 8-byte header length (true or hostile), JSON header, data bytes.
fn file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::btree_map(name("abcxyz._", 1..6), entry(), 0..4),
        prop_oneof![
            3 => Just(None),
            1 => any::<u64>().prop_map(Some),
            1 => (0u64..200).prop_map(Some),
        ],
        prop::collection::vec(any::<u8>(), 0..96),
        any::<bool>(),
    )
        .prop_map(|(tensors, header_len, data, metadata)| {
            let mut m: Map<String, Value> = tensors.into_iter().collect();
            if metadata {
                m.insert("__metadata__".into(), json!({"format": "pt"}));
            }
            let mut header = Value::Object(m).to_string().into_bytes();
            while !header.len().is_multiple_of(8) {
                header.push(b' ');
            }
            let len = header_len.unwrap_or(header.len() as u64);
            let mut bytes = len.to_le_bytes().to_vec();
            bytes.extend(header);
            bytes.extend(data);
            bytes
        })
}

fn index() -> impl Strategy<Value = Value> {
    let shard = prop_oneof![
        Just(json!("model-00001-of-00001.safetensors")),
        Just(json!("missing.safetensors")),
        Just(json!("../model-00001-of-00001.safetensors")),
        Just(json!("")),
        Just(json!("/")),
        Just(json!(3)),
        Just(Value::Null),
    ];
    prop_oneof![
        4 => prop::collection::btree_map(
            prop_oneof![Just("scale".to_string()), Just("shift".to_string()), name("abcz", 1..4)],
            shard,
            0..4,
        )
        .prop_map(|m| json!({"metadata": {}, "weight_map": m})),
        1 => Just(json!({"weight_map": []})),
        1 => Just(json!([])),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_headers_never_panic(bytes in file()) {
        let path = scratch().join("random.safetensors");
        std::fs::write(&path, &bytes).expect("write");
        exercise(&path);
    }

    #[test]
    fn edited_golden_files_never_panic(edits in edits()) {
        let base = std::fs::read(golden()).expect("golden");
        let path = scratch().join("edited.safetensors");
        std::fs::write(&path, mutate(&base, &edits)).expect("write");
        exercise(&path);
    }

    #[test]
    fn random_index_files_never_panic(doc in index(), edits in edits(), raw in any::<bool>()) {
        let dir = scratch().join("sharded");
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::copy(golden(), dir.join("model-00001-of-00001.safetensors"))
                .expect("copy shard");
        }
        let text = doc.to_string().into_bytes();
        let text = if raw { mutate(&text, &edits) } else { text };
        std::fs::write(dir.join("model.safetensors.index.json"), text).expect("write");
        exercise(&dir);
    }
}
