//! The crate's one error type, naming the file, model or image involved, and its `Result`.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in this crate. Each variant names the file, model or image involved.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image file could not be opened or decoded. The reader's message already names the
    /// file and says what failed (`cannot decode image X: …`), so it is shown as is.
    #[error("{error}")]
    ImageRead {
        /// The image file.
        path: PathBuf,
        /// What the reader said.
        error: image_io::Error,
    },

    /// The output and the ground truth differ in size. Upstream's current test_utils.py raises here
    /// instead of resizing (only the old SSIM-era code resized the output to the GT size).
    #[error(
        "image sizes differ: output is {}x{}, ground truth is {}x{} (no resizing is done)",
        output.0, output.1, gt.0, gt.1
    )]
    SizeMismatch {
        /// Output (width, height).
        output: (u32, u32),
        /// Ground truth (width, height).
        gt: (u32, u32),
    },

    /// SSIM's 7x7 window does not fit in the image (skimage raises the same way).
    #[error("SSIM needs images of at least 7x7 pixels, got {width}x{height}")]
    TooSmallForSsim {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },

    /// A JSON file (threshold file, preprocessor or model config) could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },

    /// A JSON file is not valid JSON (the message carries line and column).
    #[error("{path} is not valid JSON: {error}")]
    Json {
        /// The file (or a description of where the text came from).
        path: PathBuf,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },

    /// A JSON file is valid JSON but a value has the wrong type or an unsupported value.
    #[error("{path}: `{key}` {problem}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key, as a dotted path (`cases.qwen_image_t2i.ssim_threshold`).
        key: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The CLIP model could not be found (offline, not cached, no such folder). Callers report CLIP
    /// as skipped with this reason, never as passed.
    #[cfg(feature = "clip")]
    #[error("CLIP model {model} is not available: {reason}")]
    ModelUnavailable {
        /// The folder or repo id asked for.
        model: String,
        /// Why it could not be had.
        reason: String,
    },

    /// The CLIP checkpoint is missing a tensor, has a wrong shape, or cannot be read.
    #[cfg(feature = "clip")]
    #[error(transparent)]
    Weights(#[from] weights::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A config file that could not be read is [`Error::Io`], one that is not JSON [`Error::Json`].
impl From<config_file::ConfigFileError> for Error {
    fn from(e: config_file::ConfigFileError) -> Self {
        match e {
            config_file::ConfigFileError::Read { path, error } => Error::Io { path, error },
            config_file::ConfigFileError::Parse { path, error } => Error::Json { path, error },
        }
    }
}

/// JSON text as a value; `origin` names it in the error ([`Error::Json`]).
pub(crate) fn parse_json(text: &str, origin: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|error| Error::Json {
        path: origin.to_path_buf(),
        error,
    })
}
