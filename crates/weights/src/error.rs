//! [`Error`]: what opening or reading a checkpoint, a pipeline folder or a Hub repo can fail with.

use std::path::PathBuf;

/// Everything that can go wrong while opening or reading a checkpoint.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{path}: invalid JSON: {reason}")]
    BadJson { path: PathBuf, reason: String },
    #[error("no safetensors weights found in {path}")]
    NoWeights { path: PathBuf },
    #[error("tensor `{name}` is missing (looked in {files})")]
    Missing { name: String, files: String },
    #[error("tensor `{name}` in {path} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        path: PathBuf,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error(
        "tensor `{name}` in {path} has dtype {dtype}, expected a float tensor (f32, f16, bf16, f64)"
    )]
    DType {
        name: String,
        path: PathBuf,
        dtype: String,
    },
    #[error("{path}: index lists `{name}` in shard {shard}, which does not contain it")]
    ShardMismatch {
        path: PathBuf,
        name: String,
        shard: String,
    },
    #[error("unexpected tensors not used by the model ({count}): {names}")]
    Unexpected { count: usize, names: String },
    #[error("{path}: {reason}")]
    Pipeline { path: PathBuf, reason: String },
    #[error("cannot fetch `{file}` from {repo}: {reason}")]
    Hub {
        repo: String,
        file: String,
        reason: String,
    },
}

impl From<config_file::ConfigFileError> for Error {
    fn from(e: config_file::ConfigFileError) -> Self {
        match e {
            config_file::ConfigFileError::Read { path, error } => Self::Io { path, error },
            config_file::ConfigFileError::Parse { path, error } => Self::BadJson {
                path,
                reason: error.to_string(),
            },
        }
    }
}
