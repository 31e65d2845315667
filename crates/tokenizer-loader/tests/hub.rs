//! Loading from a Hugging Face repo id through Python's cache layout, offline (no network in tests).

use crate::common;

use std::path::Path;

use common::{copy_files, tiny_pipeline};
use tokenizer_loader::{Error, HubOptions, QwenTokenizer, TokenizerPath};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `<cache>/models--Qwen--Qwen-Image/{refs/main, snapshots/<commit>/...}` as huggingface_hub
/// writes it (plain files instead of blob symlinks).
fn fake_cache(cache: &Path) {
    let repo = cache.join("models--Qwen--Qwen-Image");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), COMMIT).expect("write ref");
    let snap = repo.join("snapshots").join(COMMIT);
    copy_files(&tiny_pipeline(), &snap, &["model_index.json"]);
    copy_files(
        &tiny_pipeline().join("tokenizer"),
        &snap.join("tokenizer"),
        &["vocab.json", "merges.txt", "tokenizer_config.json"],
    );
}

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_owned()),
        offline: true,
        ..HubOptions::default()
    }
}

#[test]
fn pipeline_repo_from_the_cache_gives_the_same_tokenizer_as_the_folder() {
    let cache = tempfile::tempdir().expect("tempdir");
    fake_cache(cache.path());
    let hub = QwenTokenizer::from_hub("Qwen/Qwen-Image", Some("tokenizer"), &offline(cache.path()))
        .expect("load from cache");
    assert_eq!(hub.decision().path, TokenizerPath::Slow);
    assert!(
        hub.decision().reason.contains("Qwen2Tokenizer"),
        "{}",
        hub.decision().reason
    );
    let local = QwenTokenizer::from_pipeline_dir(tiny_pipeline()).expect("local");
    let text = "<|im_start|>user\nA café sign, 東京 🚀<|im_end|>";
    assert_eq!(
        hub.encode(text, false).expect("hub"),
        local.encode(text, false).expect("local")
    );
}

#[test]
fn a_commit_hash_revision_reads_its_snapshot() {
    let cache = tempfile::tempdir().expect("tempdir");
    fake_cache(cache.path());
    let opts = HubOptions {
        revision: Some(COMMIT.to_owned()),
        ..offline(cache.path())
    };
    let tok = QwenTokenizer::from_hub("Qwen/Qwen-Image", Some("tokenizer"), &opts).expect("load");
    assert_eq!(tok.token_id("<|im_start|>"), Some(151644));
}

#[test]
fn offline_and_not_cached_is_a_clear_error() {
    let cache = tempfile::tempdir().expect("tempdir");
    let err = QwenTokenizer::from_hub("Qwen/Qwen-Image", Some("tokenizer"), &offline(cache.path()))
        .expect_err("nothing cached");
    assert!(matches!(err, Error::NoTokenizerFiles { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("hf://Qwen/Qwen-Image/tokenizer") && msg.contains("offline"),
        "{msg}"
    );
}
