//! Bad inputs give errors that name the file (or folder), never a panic.

use crate::common;

use common::{copy_files, tiny_pipeline};
use tokenizer_loader::{Error, QwenTokenizer};

fn slow_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_files(
        &tiny_pipeline().join("tokenizer"),
        dir.path(),
        &["vocab.json", "merges.txt", "tokenizer_config.json"],
    );
    dir
}

#[test]
fn truncated_vocab_names_vocab_json() {
    let dir = slow_folder();
    let vocab = std::fs::read(dir.path().join("vocab.json")).expect("read");
    std::fs::write(dir.path().join("vocab.json"), &vocab[..vocab.len() / 2]).expect("write");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("truncated vocab");
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("vocab.json"), "{err}");
}

#[test]
fn merge_with_unknown_token_names_merges_txt_and_line() {
    let dir = slow_folder();
    let merges = std::fs::read_to_string(dir.path().join("merges.txt")).expect("read");
    std::fs::write(
        dir.path().join("merges.txt"),
        format!("Ġ Ġ\nnot_a_token zzz\n{merges}"),
    )
    .expect("write");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("unknown merge token");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::UnknownMergeToken { line: 2, .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("merges.txt") && msg.contains("not_a_token"),
        "{msg}"
    );
}

#[test]
fn malformed_merge_line_names_merges_txt() {
    let dir = slow_folder();
    std::fs::write(dir.path().join("merges.txt"), "Ġ Ġ\nthree tokens here\n").expect("write");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("bad merge line");
    assert!(
        err.to_string().contains("merges.txt") && err.to_string().contains("line 2"),
        "{err}"
    );
}

#[test]
fn missing_folder_names_the_folder() {
    let err = QwenTokenizer::from_pipeline_dir("/nonexistent/pipeline").expect_err("missing");
    assert!(matches!(err, Error::MissingFolder { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/pipeline"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = QwenTokenizer::from_pipeline_dir(dir.path()).expect_err("no tokenizer/");
    assert!(err.to_string().contains("tokenizer"), "{err}");
}

#[test]
fn folder_without_tokenizer_files_says_what_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("empty");
    assert!(matches!(err, Error::NoTokenizerFiles { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn bad_json_names_the_file() {
    for (file, text) in [
        ("model_index.json", "{\"tokenizer\": [\"transformers\", "),
        ("model_index.json", "{\"tokenizer\": \"Qwen2Tokenizer\"}"),
        ("tokenizer/tokenizer_config.json", "{ not json"),
        // Read only when model_index.json declares nothing: see below.
        (
            "tokenizer/tokenizer_config.json",
            "{\"added_tokens_decoder\": {\"x\": {}}}",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_files(&tiny_pipeline(), dir.path(), &["model_index.json"]);
        copy_files(
            &tiny_pipeline().join("tokenizer"),
            &dir.path().join("tokenizer"),
            &["vocab.json", "merges.txt", "tokenizer_config.json"],
        );
        std::fs::write(dir.path().join(file), text).expect("write");
        let err = QwenTokenizer::from_pipeline_dir(dir.path()).expect_err(file);
        let name = file.rsplit('/').next().unwrap_or(file);
        assert!(err.to_string().contains(name), "{file} {text:?}: {err}");
    }
}

#[test]
fn bad_tokenizer_class_names_tokenizer_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_files(
        &tiny_pipeline().join("tokenizer"),
        dir.path(),
        &["vocab.json", "merges.txt"],
    );
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"tokenizer_class\": 3}",
    )
    .expect("write");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("class is a number");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn bad_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"version\": \"1.0\"").expect("write");
    let err = QwenTokenizer::from_folder(dir.path()).expect_err("bad tokenizer.json");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
