//! The one error type of this crate. Every variant names the file, folder or repository involved.

use std::path::PathBuf;

/// Why a tokenizer could not be chosen, loaded or used.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The folder to load from does not exist (or is not a folder).
    #[error("tokenizer folder {path} does not exist or is not a folder")]
    MissingFolder {
        /// The folder that was asked for.
        path: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },

    /// A JSON file is not valid JSON or does not have the expected shape.
    #[error("{path} is not valid JSON of the expected shape: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        error: serde_json::Error,
    },

    /// A file parsed but its content is wrong (a malformed entry, a duplicate id, ...).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line or key where it helps.
        message: String,
    },

    /// A merge rule names a token that `vocab.json` does not have (mismatched vocab and merges).
    #[error("{path} line {line}: merge token {token:?} is not in vocab.json")]
    UnknownMergeToken {
        /// The merges file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// The token that is missing from the vocabulary.
        token: String,
    },

    /// The declared class is a processor (e.g. `PixtralProcessor`), which this crate cannot load.
    #[error(
        "tokenizer class {class:?} (declared in {declared_in}) is a processor; processors are not \
         supported yet: load the tokenizer sub-folder directly with \
         `QwenTokenizer::from_folder_as(dir, TokenizerPath::Fast)` (or `Slow`), or declare a \
         tokenizer class"
    )]
    ProcessorNotSupported {
        /// The declared class name.
        class: String,
        /// Where it was declared (`model_index.json` or `tokenizer_config.json`), or `<caller>`.
        declared_in: String,
    },

    /// Neither the fast file (`tokenizer.json`) nor the slow files (`vocab.json` + `merges.txt`)
    /// are present.
    #[error(
        "no tokenizer files in {location}: need tokenizer.json (fast) or vocab.json + merges.txt (slow)"
    )]
    NoTokenizerFiles {
        /// The folder or `repo/subfolder` that was searched.
        location: String,
    },

    /// The `tokenizers` library refused the files (bad tokenizer.json, inconsistent BPE, ...).
    #[error("{path}: {message}")]
    Tokenizers {
        /// The file (or folder) being loaded or the text being encoded.
        path: PathBuf,
        /// The library's message.
        message: String,
    },

    /// A token the pipeline needs (the padding token) is not in the vocabulary.
    #[error("token {token:?} ({role}) is not in the tokenizer loaded from {location}")]
    MissingToken {
        /// The token text.
        token: String,
        /// What it is used for.
        role: &'static str,
        /// Where the tokenizer came from.
        location: String,
    },

    /// A file could not be fetched from the Hugging Face Hub.
    #[error("cannot fetch {file} from Hugging Face repo {repo}: {message}")]
    Hub {
        /// `owner/name` of the repository.
        repo: String,
        /// Path of the file inside the repository.
        file: String,
        /// Why.
        message: String,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
