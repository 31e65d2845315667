//! [`Error`]: why a pipeline could not load or a generation could not run.

use std::path::PathBuf;

/// Why a generation could not run.
///
/// A wrapped component error is part of the message (`transformer: …`) and deliberately not a
/// `source()`: an error chain printed with anyhow's `{:#}` would otherwise say its cause twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] weights::Error),
    #[error("text encoder: {0}")]
    TextEncoder(text_encoder::Error),
    #[error("transformer: {0}")]
    Dit(qwen_image_dit::DitError),
    #[error("vae: {0}")]
    Vae(qwen_image_vae::Error),
    #[error("scheduler: {0}")]
    Scheduler(flow_match::SchedulerError),
    #[error("guidance: {0}")]
    Cfg(cfg::CfgError),
    #[error("noise: {0}")]
    Rng(torch_rng::Error),
    #[error("latents file {path}: {reason}")]
    Latents { path: PathBuf, reason: String },
    #[error("invalid request: {0}")]
    Request(String),
    /// An input image (file or URL, named) that could not be read or prepared.
    #[error("input image {image}: {reason}")]
    InputImage { image: String, reason: String },
    /// A pipeline folder of a class this crate (or this pipeline type) does not run.
    #[error("{}: {reason}", path.display())]
    PipelineClass { path: PathBuf, reason: String },
    #[error("cancelled after {steps_done} of {steps} steps")]
    Cancelled { steps_done: usize, steps: usize },
}

/// `From` for the wrapped component errors: what `#[from]` gives, without making the inner error
/// a `source()` too (see [`Error`]).
macro_rules! wrap {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}
wrap!(
    TextEncoder(text_encoder::Error),
    Dit(qwen_image_dit::DitError),
    Vae(qwen_image_vae::Error),
    Scheduler(flow_match::SchedulerError),
    Cfg(cfg::CfgError),
    Rng(torch_rng::Error),
);
