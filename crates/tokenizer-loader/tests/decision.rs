//! The class-name rule (slow only for `…Tokenizer`, never for `…Fast`; processors refused), where
//! the class is read from, and the fallback when the wanted files are missing.

use crate::common;

use common::{copy_files, qwen25, tiny_pipeline};
use tokenizer_loader::{ClassSource, Error, QwenTokenizer, TokenizerPath, path_for_class};

#[test]
fn class_name_rule_table() {
    use TokenizerPath::{Fast, Slow};
    let table: &[(&str, Option<TokenizerPath>)] = &[
        ("Qwen2Tokenizer", Some(Slow)),
        ("Qwen2TokenizerFast", Some(Fast)),
        ("T5TokenizerFast", Some(Fast)),
        ("CLIPTokenizer", Some(Slow)),
        ("Tokenizer", Some(Slow)),
        ("", Some(Fast)),
        ("PreTrainedTokenizerFast", Some(Fast)),
        ("TokenizersBackend", Some(Fast)),
        ("AutoProcessor", None),
        ("PixtralProcessor", None),
    ];
    for &(class, want) in table {
        match (path_for_class(class), want) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "class {class:?}"),
            (Err(Error::ProcessorNotSupported { class: c, .. }), None) => assert_eq!(c, class),
            (got, want) => panic!("class {class:?}: got {got:?}, want {want:?}"),
        }
    }
}

/// A pipeline folder with the given model_index tokenizer class and tokenizer files.
fn pipeline(model_index_class: Option<&str>, files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(class) = model_index_class {
        let index = serde_json::json!({"_class_name": "QwenImagePipeline", "tokenizer": ["transformers", class]});
        std::fs::write(dir.path().join("model_index.json"), index.to_string()).expect("write");
    }
    let tok = dir.path().join("tokenizer");
    std::fs::create_dir(&tok).expect("mkdir");
    for f in files {
        let from = if *f == "tokenizer.json" {
            qwen25()
        } else {
            tiny_pipeline().join("tokenizer")
        };
        copy_files(&from, &tok, &[f]);
    }
    dir
}

const SLOW: &[&str] = &["vocab.json", "merges.txt", "tokenizer_config.json"];
const ALL: &[&str] = &[
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "tokenizer.json",
];

#[test]
fn the_tiny_pipeline_declares_qwen2tokenizer_and_gets_the_slow_path() {
    let tok = QwenTokenizer::from_pipeline_dir(tiny_pipeline()).expect("load");
    let d = tok.decision();
    assert_eq!(
        (d.path, d.wanted),
        (TokenizerPath::Slow, TokenizerPath::Slow)
    );
    assert_eq!(d.class.as_deref(), Some("Qwen2Tokenizer"));
    let tiny_index = tiny_pipeline().join("model_index.json");
    assert_eq!(d.source, ClassSource::ModelIndex(tiny_index));
    assert!(
        d.reason
            .contains("model_index.json declares Qwen2Tokenizer"),
        "{}",
        d.reason
    );
}

#[test]
fn model_index_wins_over_tokenizer_config() {
    // tokenizer_config.json says Qwen2Tokenizer; model_index.json says the fast class.
    let dir = pipeline(Some("Qwen2TokenizerFast"), ALL);
    let tok = QwenTokenizer::from_pipeline_dir(dir.path()).expect("load");
    assert_eq!(tok.decision().path, TokenizerPath::Fast);
    assert_eq!(tok.decision().class.as_deref(), Some("Qwen2TokenizerFast"));
}

#[test]
fn without_model_index_the_tokenizer_config_class_decides() {
    let dir = pipeline(None, ALL);
    let tok = QwenTokenizer::from_pipeline_dir(dir.path()).expect("load");
    let d = tok.decision();
    assert_eq!(d.path, TokenizerPath::Slow);
    let config = dir.path().join("tokenizer/tokenizer_config.json");
    assert_eq!(d.source, ClassSource::TokenizerConfig(config));
}

#[test]
fn slow_wanted_but_only_tokenizer_json_falls_back_and_says_so() {
    let dir = pipeline(Some("Qwen2Tokenizer"), &["tokenizer.json"]);
    let tok = QwenTokenizer::from_pipeline_dir(dir.path()).expect("load");
    let d = tok.decision();
    assert_eq!(
        (d.path, d.wanted),
        (TokenizerPath::Fast, TokenizerPath::Slow)
    );
    assert!(d.fell_back());
    assert!(d.reason.contains("fell back to fast"), "{}", d.reason);
    assert!(
        d.reason.contains("vocab.json + merges.txt is missing"),
        "{}",
        d.reason
    );
}

#[test]
fn fast_wanted_but_only_slow_files_falls_back_and_says_so() {
    let dir = pipeline(Some("Qwen2TokenizerFast"), SLOW);
    let tok = QwenTokenizer::from_pipeline_dir(dir.path()).expect("load");
    let d = tok.decision();
    assert_eq!(
        (d.path, d.wanted),
        (TokenizerPath::Slow, TokenizerPath::Fast)
    );
    assert!(
        d.reason.contains("tokenizer.json is missing"),
        "{}",
        d.reason
    );
    // The fallback still tokenizes the template's special tokens as single ids.
    assert_eq!(
        tok.encode("<|im_start|>user\n", false).expect("encode"),
        [151644, 872, 198]
    );
}

#[test]
fn undeclared_class_defaults_to_fast() {
    let tok = QwenTokenizer::from_folder(qwen25()).expect("load");
    assert_eq!(tok.decision().source, ClassSource::Undeclared);
    assert_eq!(tok.decision().path, TokenizerPath::Fast);
}

#[test]
fn caller_can_force_a_path() {
    let tok = QwenTokenizer::from_folder_as(qwen25(), TokenizerPath::Slow).expect("load");
    // No tokenizer_config.json there: transformers' Qwen2Tokenizer defaults add <|endoftext|> only.
    assert_eq!(tok.decision().path, TokenizerPath::Slow);
    assert_eq!(tok.decision().source, ClassSource::Caller);
    assert_eq!(tok.token_id("<|endoftext|>"), Some(151643));
}

#[test]
fn a_processor_class_is_an_error_that_says_what_to_do() {
    let dir = pipeline(Some("AutoProcessor"), ALL);
    let err = QwenTokenizer::from_pipeline_dir(dir.path()).expect_err("processor");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::ProcessorNotSupported { .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("AutoProcessor") && msg.contains("model_index.json"),
        "{msg}"
    );
    assert!(msg.contains("from_folder_as"), "{msg}");
}
