//! What is compared: the media kind of a case and the four metrics, with their value ranges.

use std::fmt;

use serde::Serialize;

/// Whether a case produces an image or a video (whose three sampled frames are compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// One image.
    Image,
    /// A video: frames 0, mid and last.
    Video,
}

impl Media {
    /// `image` or `video`, as in the file's default keys.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Media::Image => "image",
            Media::Video => "video",
        }
    }
}

/// One of the four compared metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CLIP cosine similarity; passes when `>=` its threshold.
    Clip,
    /// SSIM; passes when `>=`.
    Ssim,
    /// PSNR; passes when `>=`.
    Psnr,
    /// Mean absolute difference; passes when `<=`.
    MeanAbsDiff,
}

impl Metric {
    /// All four, in upstream's order.
    pub const ALL: [Metric; 4] = [
        Metric::Clip,
        Metric::Ssim,
        Metric::Psnr,
        Metric::MeanAbsDiff,
    ];

    /// The name used in JSON keys and messages (`clip`, `ssim`, `psnr`, `mean_abs_diff`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Clip => "clip",
            Metric::Ssim => "ssim",
            Metric::Psnr => "psnr",
            Metric::MeanAbsDiff => "mean_abs_diff",
        }
    }

    /// True for the metrics that pass when `>=` their threshold (all but the mean absolute
    /// difference).
    pub(crate) fn higher_is_better(self) -> bool {
        self != Metric::MeanAbsDiff
    }

    /// The values the metric can take, so the values a threshold may have (inclusive): cosine
    /// similarity and SSIM lie in [−1, 1], PSNR of 8-bit images in [0, ∞] dB, the mean absolute
    /// difference of 8-bit images in [0, 255].
    pub fn range(self) -> (f64, f64) {
        match self {
            Metric::Clip | Metric::Ssim => (-1.0, 1.0),
            Metric::Psnr => (0.0, f64::INFINITY),
            Metric::MeanAbsDiff => (0.0, 255.0),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
