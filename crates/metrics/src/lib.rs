//! Image-comparison metrics of upstream's consistency tests, and their threshold files.
//!
//! * [`PixelMetrics`]: SSIM, PSNR and mean absolute difference on 8-bit RGB images, with
//!   scikit-image's semantics (`structural_similarity(channel_axis=2, data_range=255)`,
//!   `peak_signal_noise_ratio(data_range=255)`), computed exactly and in parallel.
//! * [`ClipPreprocessor`] and (feature `clip`, on by default) `ClipImageEncoder`: the image tower of
//!   a Hugging Face CLIP checkpoint (`openai/clip-vit-large-patch14` upstream) and the cosine
//!   similarity of two images' embeddings.
//! * [`Thresholds`]: upstream's `consistency_thresholds/*.json` files, per-case lookup with file and
//!   built-in defaults, platform overlays, and the pass rule ([`CaseThresholds::check`]) that
//!   collects every failing frame and metric.
//!
//! ```no_run
//! use metrics::{FrameMetrics, ImageMetrics, Media, PixelMetrics, Thresholds, load_rgb};
//! # fn main() -> Result<(), metrics::Error> {
//! let out = load_rgb("out.png".as_ref())?;
//! let gt = load_rgb("gt.png".as_ref())?;
//! let pixel = PixelMetrics::compute(&out, &gt)?;
//! let frame = FrameMetrics { frame: "image".into(), metrics: ImageMetrics::new(pixel, None) };
//! let thresholds = Thresholds::builtin().for_case("qwen_image_t2i", Media::Image);
//! let verdict = thresholds.check(&[frame]);
//! for failure in &verdict.failures {
//!     println!("{failure}");
//! }
//! # Ok(()) }
//! ```

mod error;
mod frame;
mod input;
mod pixel;
mod preprocess;
mod thresholds;

#[cfg(feature = "clip")]
mod clip;

pub use error::{Error, Result};
pub use frame::{FrameMetrics, ImageMetrics};
/// Pillow's resampler lives in `image-io` (one copy for CLIP and the VAE inputs).
pub use image_io::{Resample, resize_like_pil};
pub use input::{MAX_IMAGE_BYTES, MAX_JSON_BYTES, load_rgb, read_image};
pub use pixel::{PixelMetrics, mean_abs_diff, psnr, ssim};
pub use preprocess::{ClipPreprocessor, PixelValues, ResizeTo};
pub use thresholds::{
    CaseThresholds, Failure, Media, Metric, Status, Thresholds, Unchecked, Verdict,
};

#[cfg(feature = "clip")]
pub use clip::{
    Activation, ClipConfig, ClipImageEncoder, DEFAULT_CLIP_MODEL, VisionOutput, clip_similarity,
};

pub use image::RgbImage;

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
