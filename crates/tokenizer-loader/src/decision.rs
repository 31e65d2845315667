//! Which tokenizer implementation to load, and why.
//!
//! The rule mirrors SGLang's diffusion component loader: Qwen-Image's `model_index.json` declares
//! `Qwen2Tokenizer`, and loading the fast class instead "changes text preprocessing and shifts
//! official GT comparisons", so a pipeline that declares a slow class gets the slow tokenizer.
//! We generalise SGLang's exact match on `"Qwen2Tokenizer"` to the naming convention of
//! transformers (slow classes end in `Tokenizer`, fast ones in `TokenizerFast`).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The two implementations a tokenizer folder can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenizerPath {
    /// `tokenizer.json`, the serialised `tokenizers` pipeline.
    Fast,
    /// `vocab.json` + `merges.txt` (+ added tokens from `tokenizer_config.json`), rebuilt as the
    /// Qwen2 byte-level BPE.
    Slow,
}

impl TokenizerPath {
    /// `"fast"` or `"slow"`, as printed by `cargo xtask tokenize --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerPath::Fast => "fast",
            TokenizerPath::Slow => "slow",
        }
    }

    fn other(self) -> Self {
        match self {
            TokenizerPath::Fast => TokenizerPath::Slow,
            TokenizerPath::Slow => TokenizerPath::Fast,
        }
    }

    fn files(self) -> &'static str {
        match self {
            TokenizerPath::Fast => "tokenizer.json",
            TokenizerPath::Slow => "vocab.json + merges.txt",
        }
    }
}

impl fmt::Display for TokenizerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class-name rule: the **slow** tokenizer only when `class` ends with `Tokenizer` (and so not
/// with `Fast`), otherwise the fast one. A class ending with `Processor` is an error
/// ([`Error::ProcessorNotSupported`]).
///
/// ```
/// use tokenizer_loader::{path_for_class, TokenizerPath};
/// assert_eq!(path_for_class("Qwen2Tokenizer").unwrap(), TokenizerPath::Slow);
/// assert_eq!(path_for_class("Qwen2TokenizerFast").unwrap(), TokenizerPath::Fast);
/// assert!(path_for_class("AutoProcessor").is_err());
/// ```
pub fn path_for_class(class: &str) -> Result<TokenizerPath> {
    path_for_declared(class, "<caller>")
}

pub(crate) fn path_for_declared(class: &str, declared_in: &str) -> Result<TokenizerPath> {
    if class.ends_with("Processor") {
        return Err(Error::ProcessorNotSupported {
            class: class.to_owned(),
            declared_in: declared_in.to_owned(),
        });
    }
    if class.ends_with("Tokenizer") && !class.ends_with("Fast") {
        Ok(TokenizerPath::Slow)
    } else {
        Ok(TokenizerPath::Fast)
    }
}

/// Where the tokenizer class was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassSource {
    /// The pipeline's `model_index.json` entry `"tokenizer": ["transformers", "<Class>"]` (its path).
    ModelIndex(PathBuf),
    /// `tokenizer_class` in the tokenizer folder's `tokenizer_config.json` (its path).
    TokenizerConfig(PathBuf),
    /// The caller forced a path ([`QwenTokenizer::from_folder_as`](crate::QwenTokenizer::from_folder_as)).
    Caller,
    /// Nothing declared a class.
    Undeclared,
}

/// The outcome of the choice: which path was loaded, which was wanted, and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The implementation actually loaded.
    pub path: TokenizerPath,
    /// The implementation the declared class asked for (differs from `path` after a fallback).
    pub wanted: TokenizerPath,
    /// The declared class, if any.
    pub class: Option<String>,
    /// Where the class came from.
    pub source: ClassSource,
    /// Human-readable explanation, e.g. `"model_index.json declares Qwen2Tokenizer (ends with
    /// 'Tokenizer', not 'Fast'): slow vocab.json + merges.txt"`.
    pub reason: String,
}

impl Decision {
    /// True when the wanted files were missing and the other implementation was loaded.
    pub fn fell_back(&self) -> bool {
        self.path != self.wanted
    }
}

/// Decide the wanted path from the declaration, then settle on what the files allow.
pub(crate) fn decide(
    declared: Option<(&str, ClassSource)>,
    has_fast: bool,
    has_slow: bool,
    location: &str,
) -> Result<Decision> {
    let Some((class, source)) = declared else {
        let why = "no tokenizer class declared in model_index.json or tokenizer_config.json \
                   (fast by default, as SGLang's loader does)";
        return settle(
            TokenizerPath::Fast,
            None,
            ClassSource::Undeclared,
            why.to_owned(),
            has_fast,
            has_slow,
            location,
        );
    };
    let file = match &source {
        ClassSource::ModelIndex(f) | ClassSource::TokenizerConfig(f) => f.display().to_string(),
        ClassSource::Caller | ClassSource::Undeclared => "<caller>".to_owned(),
    };
    let wanted = path_for_declared(class, &file)?;
    let rule = match wanted {
        TokenizerPath::Slow => "ends with 'Tokenizer', not 'Fast'",
        TokenizerPath::Fast => "does not end with 'Tokenizer'",
    };
    let why = format!("{file} declares {class} ({rule})");
    settle(
        wanted,
        Some(class),
        source,
        why,
        has_fast,
        has_slow,
        location,
    )
}

/// The caller chose the path; still fall back when its files are missing.
pub(crate) fn decide_forced(
    wanted: TokenizerPath,
    has_fast: bool,
    has_slow: bool,
    location: &str,
) -> Result<Decision> {
    settle(
        wanted,
        None,
        ClassSource::Caller,
        "the caller asked for it".to_owned(),
        has_fast,
        has_slow,
        location,
    )
}

fn settle(
    wanted: TokenizerPath,
    class: Option<&str>,
    source: ClassSource,
    why: String,
    has_fast: bool,
    has_slow: bool,
    location: &str,
) -> Result<Decision> {
    let available = |p: TokenizerPath| match p {
        TokenizerPath::Fast => has_fast,
        TokenizerPath::Slow => has_slow,
    };
    let (path, reason) = if available(wanted) {
        (wanted, format!("{why}: {wanted} {}", wanted.files()))
    } else if available(wanted.other()) {
        let got = wanted.other();
        (
            got,
            format!(
                "{why}: wanted {wanted} but {} is missing in {location}; fell back to {got} {}",
                wanted.files(),
                got.files()
            ),
        )
    } else {
        return Err(Error::NoTokenizerFiles {
            location: location.to_owned(),
        });
    };
    Ok(Decision {
        path,
        wanted,
        class: class.map(str::to_owned),
        source,
        reason,
    })
}
