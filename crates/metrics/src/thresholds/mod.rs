//! Upstream's consistency threshold files and the pass rule.
//!
//! A threshold file (`consistency_thresholds/h100.json` upstream) is a JSON object with per-case
//! entries under `cases` and file-wide defaults under `default_<metric>_threshold_<image|video>`:
//!
//! ```json
//! {
//!   "cases": {"qwen_image_t2i": {"clip_threshold": 0.97, "ssim_threshold": 0.83,
//!                                "psnr_threshold": 16.0, "mean_abs_diff_threshold": 13.3}},
//!   "default_ssim_threshold_image": 0.95
//! }
//! ```
//!
//! Each metric of a case is looked up in its case entry, else the file default for the media kind,
//! else the built-in default ([`CaseThresholds::IMAGE`], [`CaseThresholds::VIDEO`]). A platform
//! file laid over the base replaces whole case entries and individual top-level keys (upstream's
//! `_merge_threshold_metadata`).
//!
//! Keys upstream uses but this crate does not check (`_comment` and other `_` keys, the audio
//! thresholds) are ignored; any other key is most likely a misspelling and is kept as a warning
//! ([`Thresholds::warnings`]), with the known key it is closest to. A threshold outside the range
//! its metric can take (an SSIM of 1.5, a negative PSNR, a mean absolute difference of −1) is an
//! error: it could never be met, or it would pass everything.

mod file;
mod metric;
mod rule;

pub use file::Thresholds;
pub use metric::{Media, Metric};
pub use rule::{CaseThresholds, Failure, Status, Unchecked, Verdict};
