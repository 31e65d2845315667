//! [`Error`]: what loading the VAE or handling its latents and images can fail with.

use std::path::PathBuf;

/// Everything that can go wrong while loading the VAE or handling latents and images.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checkpoint problem: missing, unexpected or wrong-shaped tensor (names tensor and file).
    #[error(transparent)]
    Weights(#[from] weights::Error),
    /// `config.json` could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `config.json` is not a valid AutoencoderKLQwenImage config.
    #[error("{path}: invalid VAE config: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A config the port deliberately does not implement (says what and why).
    #[error("unsupported VAE config: {0}")]
    Unsupported(String),
    /// A tensor given to the decoder or to a latent/image helper has the wrong shape.
    #[error("{what} has shape {found:?}, expected {expected}")]
    Shape {
        what: &'static str,
        found: Vec<usize>,
        expected: String,
    },
}

impl From<config_file::ConfigFileError> for Error {
    fn from(e: config_file::ConfigFileError) -> Self {
        match e {
            config_file::ConfigFileError::Read { path, error } => Self::Io { path, error },
            config_file::ConfigFileError::Parse { path, error } => Self::Config {
                path,
                reason: error.to_string(),
            },
        }
    }
}
