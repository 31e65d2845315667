//! [`Error`]: what loading the text encoder, encoding prompts or captioning can fail with.

use std::path::PathBuf;

/// Everything that can go wrong while loading the text encoder or encoding prompts.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checkpoint problem: missing, unexpected, wrong-shaped or non-float tensor (the message
    /// names the tensor and the file).
    #[error(transparent)]
    Weights(#[from] weights::Error),
    /// The tokenizer could not be loaded or could not encode.
    #[error(transparent)]
    Tokenizer(#[from] tokenizer_loader::Error),
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `config.json` is unreadable, incomplete or asks for something this port does not do.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// diffusers refuses `max_sequence_length` above 1024; 0 would leave no text at all.
    #[error("max_sequence_length {got} is out of range (1..={limit})")]
    MaxSequenceLength { got: usize, limit: usize },
    /// Token ids and attention mask that cannot be encoded (shape, range or content).
    #[error("invalid tokens: {0}")]
    Tokens(String),
    /// Images that do not fit the prompt: counts, grids or embedding shapes disagree, or the
    /// pipeline's template takes a different number of images.
    #[error("invalid images for the prompt: {0}")]
    Images(String),
    /// `mrope_section` must split the `head_dim / 2` rotary frequencies exactly (as torch's
    /// `split` in upstream requires); only prompts with images use it.
    #[error(
        "mrope_section {section:?} does not split the {half} rotary frequencies (it must sum to {half})"
    )]
    MropeSection { section: [usize; 3], half: usize },
    /// An image the processor cannot take (empty, or an aspect ratio above 200).
    #[error("image: {0}")]
    Image(String),
    /// An image file that could not be read or decoded.
    #[error("cannot decode image {path}: {error}")]
    ImageDecode {
        path: PathBuf,
        error: image::ImageError,
    },
    /// `pixel_values` and `image_grid_thw` that do not describe the same patches, or do not fit
    /// the vision tower.
    #[error("vision input: {0}")]
    VisionInput(String),
}

impl From<config_file::ConfigFileError> for Error {
    fn from(e: config_file::ConfigFileError) -> Self {
        match e {
            config_file::ConfigFileError::Read { path, error } => Self::Io { path, error },
            config_file::ConfigFileError::Parse { path, error } => Self::Config {
                path,
                reason: format!("invalid JSON: {error}"),
            },
        }
    }
}
