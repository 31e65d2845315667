use std::path::{Path, PathBuf};

/// Why a generation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] weights::Error),
    #[error("text encoder: {0}")]
    TextEncoder(#[from] text_encoder::Error),
    #[error("transformer: {0}")]
    Dit(#[from] qwen_image_dit::DitError),
    #[error("vae: {0}")]
    Vae(#[from] qwen_image_vae::Error),
    #[error("scheduler: {0}")]
    Scheduler(#[from] flow_match::SchedulerError),
    #[error("guidance: {0}")]
    Cfg(#[from] cfg::CfgError),
    #[error("noise: {0}")]
    Rng(#[from] torch_rng::Error),
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
    #[error("{}: {reason}", case_location(.path, .line))]
    CaseFile {
        path: PathBuf,
        /// 1-based line at fault, when one is.
        line: Option<usize>,
        reason: String,
    },
    #[error("cancelled after {steps_done} of {steps} steps")]
    Cancelled { steps_done: usize, steps: usize },
}

/// `file:line`, or just the file.
fn case_location(path: &Path, line: &Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}
