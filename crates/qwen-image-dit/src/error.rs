//! [`DitError`]: what loading or running the transformer can fail with.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running the transformer.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum DitError {
    /// A file (usually `config.json`) could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `config.json` is not valid JSON, has a wrong type, or breaks an invariant.
    #[error("{path}: bad transformer config: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A tensor is missing, unexpected, or has the wrong shape or dtype (the message names the
    /// tensor and the file).
    #[error(transparent)]
    Weights(#[from] weights::Error),
    /// The inputs of a forward call do not fit the model or each other.
    #[error("invalid transformer input: {0}")]
    Input(String),
}
