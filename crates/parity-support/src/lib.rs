//! Test-only helpers of the parity tests: error metrics against golden tensors and a reader for
//! the oracle's safetensors goldens (a dev-dependency only, never a normal one).
//!
//! ```
//! use parity_support::{max_rel_err, peak_rel_err};
//!
//! let theirs = [0.5f32, -4.0, 100.0];
//! let ours = [0.5001f32, -4.0004, 100.01];
//! // Elementwise |ours − theirs| / max(|theirs|, 1): absolute below 1, relative above.
//! assert!((max_rel_err(&ours, &theirs) - 1e-4).abs() < 1e-6);
//! // max|ours − theirs| / max|theirs|: relative to the tensor's peak.
//! assert!((peak_rel_err(&ours, &theirs) - 1e-4).abs() < 1e-6);
//! ```

mod goldens;
mod metrics;

use std::path::{Path, PathBuf};

pub use goldens::Goldens;
pub use metrics::{Values, max_abs_diff_u8, max_rel_err, peak_rel_err};

/// `<workspace>/testdata/<rel>`: the pinned oracle's outputs every crate's tests read.
pub fn testdata(rel: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// Compiles and runs the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
