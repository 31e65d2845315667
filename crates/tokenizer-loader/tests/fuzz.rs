//! Fuzzing the tokenizer loader on stable Rust with proptest: folders with random small
//! `vocab.json` + `merges.txt` + `tokenizer_config.json` (the slow path: duplicate and huge ids,
//! merges naming unknown tokens, malformed lines, processor classes), random edits of a valid
//! small `tokenizer.json` (the fast path), then encoding, padding and decoding random text and
//! ids. Whatever the files: a tokenizer or an error, never a panic.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, mutate};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokenizer_loader::{QwenTokenizer, TokenizerPath};

const CI_CASES: u32 = 1000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

/// One folder per property for the whole run (a temp dir per input costs more than the load).
fn scratch(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR
        .get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Tokens from a small byte-level alphabet (`Ġ` is the space), with the special tokens.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "Ġ", "c", "é", "\\", "\""]),
            1..4
        )
        .prop_map(|v| v.concat()),
        prop::sample::select(vec![
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "",
            " ",
            "a b"
        ])
        .prop_map(str::to_string),
    ]
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0u64..40).prop_map(|v| json!(v)),
        1 => Just(json!(u32::MAX)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(-1)),
        1 => Just(json!("7")),
    ]
}

fn vocab() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(token(), id(), 0..24)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn merges() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            5 => (token(), token()).prop_map(|(a, b)| format!("{a} {b}")),
            1 => Just("#version: 0.2".to_string()),
            1 => Just("a b c".to_string()),
            1 => Just(String::new()),
            1 => Just("\r".to_string()),
        ],
        0..12,
    )
    .prop_map(|lines| lines.join("\n"))
}

fn tokenizer_config() -> impl Strategy<Value = Option<Value>> {
    let class = prop::sample::select(vec![
        json!("Qwen2Tokenizer"),
        json!("Qwen2TokenizerFast"),
        json!("PixtralProcessor"),
        json!("BertTokenizer"),
        json!(3),
        Value::Null,
    ]);
    let added = prop::collection::btree_map(
        prop_oneof![
            (0u64..50).prop_map(|v| v.to_string()),
            Just("x".to_string())
        ],
        (token(), any::<bool>())
            .prop_map(|(content, special)| json!({"content": content, "special": special})),
        0..4,
    );
    prop::option::weighted(
        0.8,
        (class, added, prop::option::of(token())).prop_map(|(class, added, pad)| {
            let mut m = serde_json::Map::new();
            m.insert("tokenizer_class".into(), class);
            m.insert(
                "added_tokens_decoder".into(),
                Value::Object(added.into_iter().collect()),
            );
            if let Some(p) = pad {
                m.insert("pad_token".into(), json!(p));
            }
            Value::Object(m)
        }),
    )
}

/// Use a loaded tokenizer every way the pipeline does.
fn exercise(dir: &Path, text: &str, ids: &[u32]) {
    for path in [None, Some(TokenizerPath::Slow), Some(TokenizerPath::Fast)] {
        let loaded = match path {
            None => QwenTokenizer::from_folder(dir),
            Some(p) => QwenTokenizer::from_folder_as(dir, p),
        };
        let Ok(t) = loaded else {
            continue;
        };
        let _ = t.decision();
        let _ = t.pad_id();
        let _ = t.token_id("a");
        let _ = t.encode(text, false);
        let _ = t.encode(text, true);
        let _ = t.encode_batch_padded(&[text, "", "ab"], 3);
        let _ = t.decode(ids, true);
        let _ = t.decode(ids, false);
    }
}

/// A valid small slow folder, and the `tokenizer.json` the fast path would read for it.
fn valid_fast_json() -> Vec<u8> {
    let dir = scratch("base");
    std::fs::write(
        dir.join("vocab.json"),
        r#"{"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġa": 4, "<|endoftext|>": 5}"#,
    )
    .expect("vocab");
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\na b\nĠ a\n").expect("merges");
    let t = QwenTokenizer::from_folder_as(&dir, TokenizerPath::Slow).expect("valid slow folder");
    t.inner()
        .to_string(true)
        .expect("tokenizer.json")
        .into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_slow_folders_never_panic(
        vocab in vocab(),
        merges in merges(),
        config in tokenizer_config(),
        text in "\\PC{0,24}",
        ids in prop::collection::vec(prop_oneof![0u32..40, Just(u32::MAX)], 0..6),
    ) {
        let dir = scratch("slow");
        std::fs::write(dir.join("vocab.json"), vocab.to_string()).expect("vocab");
        std::fs::write(dir.join("merges.txt"), merges).expect("merges");
        let cfg = dir.join("tokenizer_config.json");
        match config {
            Some(c) => std::fs::write(&cfg, c.to_string()).expect("config"),
            None => {
                let _ = std::fs::remove_file(&cfg);
            }
        }
        exercise(&dir, &text, &ids);
    }

    #[test]
    fn edited_tokenizer_json_never_panics(edits in edits(), text in "\\PC{0,24}") {
        static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let base = BASE.get_or_init(valid_fast_json);
        let dir = scratch("fast");
        std::fs::write(dir.join("tokenizer.json"), mutate(base, &edits)).expect("write");
        exercise(&dir, &text, &[0, 3, 99]);
    }
}

/// The unfuzzed files load, so the fuzzing reaches past the first check.
#[test]
fn the_base_folders_load() {
    let base = valid_fast_json();
    let dir = scratch("fast-base");
    std::fs::write(dir.join("tokenizer.json"), &base).expect("write");
    let t = QwenTokenizer::from_folder_as(&dir, TokenizerPath::Fast).expect("fast");
    assert_eq!(t.encode("ab a", false).expect("encode"), vec![3, 4]);
}

/// What the fuzzer found (kept in `fuzz.proptest-regressions` too): a `tokenizer.json` cut or
/// broken inside its `decoder` made tokenizers 0.23 panic ("Helper"); now it is an error naming
/// the file.
#[test]
fn a_broken_decoder_section_is_an_error_not_a_panic() {
    let base = String::from_utf8(valid_fast_json()).expect("utf-8");
    let at = base.find("\"decoder\"").expect("decoder section");
    let dir = scratch("broken-decoder");
    std::fs::write(
        dir.join("tokenizer.json"),
        format!("{}\"x\" {{", &base[..at + 12]),
    )
    .expect("write");
    let e = QwenTokenizer::from_folder_as(&dir, TokenizerPath::Fast)
        .expect_err("broken JSON")
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}
