//! Why a case file could not be read, or a case cannot run.

use std::path::{Path, PathBuf};

/// A case file that cannot be read or parsed (named with the line at fault), a case whose values
/// cannot run, or a pipeline error met while preparing a case (its input images).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {reason}", case_location(.path, .line))]
    CaseFile {
        path: PathBuf,
        /// 1-based line at fault, when one is.
        line: Option<usize>,
        reason: String,
    },
    /// A case whose values cannot run ([`crate::Case::validate`]): an impossible size, step
    /// count or scale, named as the case file names it.
    #[error("case `{id}`: {reason}")]
    InvalidCase { id: String, reason: String },
    /// Preparing a case's request failed in the pipeline (an input image that cannot be read).
    #[error(transparent)]
    Pipeline(#[from] pipeline::Error),
}

/// `file:line`, or just the file.
fn case_location(path: &Path, line: &Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}
