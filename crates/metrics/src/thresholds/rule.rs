//! The pass rule: the four thresholds of one case, checked against every frame, and the verdict.

use std::fmt;

use serde::Serialize;

use super::metric::{Media, Metric};
use crate::frame::FrameMetrics;

/// The four thresholds that apply to one case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CaseThresholds {
    /// Minimum CLIP similarity.
    pub clip: f64,
    /// Minimum SSIM.
    pub ssim: f64,
    /// Minimum PSNR (dB).
    pub psnr: f64,
    /// Maximum mean absolute difference.
    pub mean_abs_diff: f64,
}

impl CaseThresholds {
    /// Upstream's code defaults for images.
    pub const IMAGE: Self = Self {
        clip: 0.92,
        ssim: 0.95,
        psnr: 28.0,
        mean_abs_diff: 8.0,
    };
    /// Upstream's code defaults for videos.
    pub const VIDEO: Self = Self {
        clip: 0.90,
        ssim: 0.92,
        psnr: 24.0,
        mean_abs_diff: 10.0,
    };

    /// The built-in defaults for a media kind.
    pub fn builtin(media: Media) -> Self {
        match media {
            Media::Image => Self::IMAGE,
            Media::Video => Self::VIDEO,
        }
    }

    /// The threshold of one metric.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Clip => self.clip,
            Metric::Ssim => self.ssim,
            Metric::Psnr => self.psnr,
            Metric::MeanAbsDiff => self.mean_abs_diff,
        }
    }

    /// Replaces the threshold of one metric.
    pub(crate) fn set(&mut self, metric: Metric, value: f64) {
        match metric {
            Metric::Clip => self.clip = value,
            Metric::Ssim => self.ssim = value,
            Metric::Psnr => self.psnr = value,
            Metric::MeanAbsDiff => self.mean_abs_diff = value,
        }
    }

    /// Applies upstream's pass rule to every frame and every metric, collecting all failures
    /// instead of stopping at the first. A frame without a CLIP score is listed as unchecked.
    pub fn check(&self, frames: &[FrameMetrics]) -> Verdict {
        let mut verdict = Verdict {
            frames: frames.len(),
            failures: Vec::new(),
            unchecked: Vec::new(),
        };
        for f in frames {
            let m = &f.metrics;
            let values = [
                (Metric::Clip, m.clip),
                (Metric::Ssim, Some(m.ssim)),
                (Metric::Psnr, Some(m.psnr)),
                (Metric::MeanAbsDiff, Some(m.mean_abs_diff)),
            ];
            for (metric, value) in values {
                let threshold = self.get(metric);
                let Some(value) = value else {
                    verdict.unchecked.push(Unchecked {
                        frame: f.frame.clone(),
                        metric,
                    });
                    continue;
                };
                // Written as "not passed" so that a NaN fails, as upstream's `nan >= t` does.
                let passed = if metric.higher_is_better() {
                    value >= threshold
                } else {
                    value <= threshold
                };
                if !passed {
                    verdict.failures.push(Failure {
                        frame: f.frame.clone(),
                        metric,
                        value,
                        threshold,
                    });
                }
            }
        }
        verdict
    }
}

/// One metric of one frame that missed its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Frame label.
    pub frame: String,
    /// Which metric.
    pub metric: Metric,
    /// Its value.
    pub value: f64,
    /// The threshold it missed.
    pub threshold: f64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, want) = if self.metric.higher_is_better() {
            ("<", ">=")
        } else {
            (">", "<=")
        };
        write!(
            f,
            "{}: {} {:.4} {op} threshold {} (needs {want} {})",
            self.frame, self.metric, self.value, self.threshold, self.threshold
        )
    }
}

/// One metric of one frame that could not be checked (CLIP not computed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unchecked {
    /// Frame label.
    pub frame: String,
    /// Which metric.
    pub metric: Metric,
}

impl fmt::Display for Unchecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} not computed, not checked",
            self.frame, self.metric
        )
    }
}

/// The outcome of [`CaseThresholds::check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// How many frames were compared.
    pub frames: usize,
    /// Every missed threshold, frame by frame.
    pub failures: Vec<Failure>,
    /// Every metric that could not be checked.
    pub unchecked: Vec<Unchecked>,
}

/// The overall state of a [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every metric of every frame was checked and met its threshold.
    Passed,
    /// At least one threshold was missed.
    Failed,
    /// Nothing failed, but something was not checked (or there were no frames): not a pass.
    Incomplete,
}

impl Verdict {
    /// Passed, failed, or incomplete (nothing failed but not everything was checked).
    pub fn status(&self) -> Status {
        if !self.failures.is_empty() {
            Status::Failed
        } else if !self.unchecked.is_empty() || self.frames == 0 {
            Status::Incomplete
        } else {
            Status::Passed
        }
    }

    /// `true` only when every metric of every frame was checked and passed.
    pub fn passed(&self) -> bool {
        self.status() == Status::Passed
    }
}
