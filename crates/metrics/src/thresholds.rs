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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, FrameMetrics, Result};

/// Whether a case produces an image or a video (whose three sampled frames are compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// One image.
    Image,
    /// A video: frames 0, mid and last.
    Video,
}

impl Media {
    fn suffix(self) -> &'static str {
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

    fn higher_is_better(self) -> bool {
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

    fn set(&mut self, metric: Metric, value: f64) {
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

/// Per-metric thresholds where each may be absent (a case entry, or a file's defaults).
type Partial = [Option<f64>; 4];

/// A loaded threshold file (possibly with a platform overlay), or the built-in defaults alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Thresholds {
    cases: BTreeMap<String, Partial>,
    image_defaults: Partial,
    video_defaults: Partial,
    warnings: Vec<String>,
}

/// Audio keys upstream's files carry (top level with a `default_` prefix, or in a case entry),
/// which this crate does not check.
const AUDIO_KEYS: [&str; 4] = [
    "audio_spectral_similarity_threshold",
    "audio_waveform_correlation_threshold",
    "audio_rms_db_diff_threshold",
    "audio_duration_diff_threshold",
];

impl Thresholds {
    /// No file: every case gets the built-in defaults.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Reads the base file (upstream: `h100.json`) and, if given, a platform file laid over it.
    pub fn load(base: &Path, overlay: Option<&Path>) -> Result<Self> {
        let base = Self::from_file(base)?;
        match overlay {
            Some(p) => Ok(base.overlaid_with(Self::from_file(p)?)),
            None => Ok(base),
        }
    }

    /// Reads one threshold file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses threshold JSON; `origin` names the text in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|error| Error::Json {
            path: origin.to_path_buf(),
            error,
        })?;
        let bad = |key: &str, problem: &str| Error::BadValue {
            path: origin.to_path_buf(),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        let Value::Object(top) = value else {
            return Err(bad("(top level)", "must be a JSON object"));
        };
        let mut out = Self::default();
        let mut known_top: Vec<String> = vec!["cases".into()];
        for media in [Media::Image, Media::Video] {
            for metric in Metric::ALL {
                known_top.push(format!(
                    "default_{}_threshold_{}",
                    metric.name(),
                    media.suffix()
                ));
            }
        }
        known_top.extend(AUDIO_KEYS.iter().map(|k| format!("default_{k}")));
        out.warn_unknown(top.keys(), &known_top, "", origin);
        for media in [Media::Image, Media::Video] {
            let mut partial = Partial::default();
            for (i, metric) in Metric::ALL.into_iter().enumerate() {
                let key = format!("default_{}_threshold_{}", metric.name(), media.suffix());
                partial[i] = threshold(&top, metric, &key, &key, origin)?;
            }
            match media {
                Media::Image => out.image_defaults = partial,
                Media::Video => out.video_defaults = partial,
            }
        }
        match top.get("cases") {
            None => {}
            Some(Value::Object(cases)) => {
                for (id, entry) in cases {
                    let Value::Object(entry) = entry else {
                        return Err(bad(&format!("cases.{id}"), "must be a JSON object"));
                    };
                    let mut known: Vec<String> = Metric::ALL
                        .iter()
                        .map(|m| format!("{}_threshold", m.name()))
                        .collect();
                    known.extend(AUDIO_KEYS.iter().map(|k| k.to_string()));
                    out.warn_unknown(entry.keys(), &known, &format!("cases.{id}."), origin);
                    let mut partial = Partial::default();
                    for (i, metric) in Metric::ALL.into_iter().enumerate() {
                        let key = format!("{}_threshold", metric.name());
                        let shown = format!("cases.{id}.{key}");
                        partial[i] = threshold(entry, metric, &key, &shown, origin)?;
                    }
                    out.cases.insert(id.clone(), partial);
                }
            }
            Some(_) => {
                return Err(bad(
                    "cases",
                    "must be a JSON object mapping case ids to thresholds",
                ));
            }
        }
        Ok(out)
    }

    /// This file with `overlay` laid over it, as upstream merges a platform file over `h100.json`:
    /// a case entry in the overlay replaces the base entry whole (metrics it omits fall back to the
    /// defaults, not to the base entry), and each top-level default key in the overlay replaces the
    /// base one.
    pub fn overlaid_with(mut self, overlay: Thresholds) -> Self {
        self.cases.extend(overlay.cases);
        self.warnings.extend(overlay.warnings);
        for i in 0..4 {
            self.image_defaults[i] = overlay.image_defaults[i].or(self.image_defaults[i]);
            self.video_defaults[i] = overlay.video_defaults[i].or(self.video_defaults[i]);
        }
        self
    }

    /// The thresholds of one case: per metric, its case entry, else the file default for the media
    /// kind, else the built-in default.
    pub fn for_case(&self, id: &str, media: Media) -> CaseThresholds {
        let defaults = match media {
            Media::Image => &self.image_defaults,
            Media::Video => &self.video_defaults,
        };
        let entry = self.cases.get(id);
        let mut out = CaseThresholds::builtin(media);
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            if let Some(v) = entry.and_then(|e| e[i]).or(defaults[i]) {
                out.set(metric, v);
            }
        }
        out
    }

    /// Whether the file has an entry of its own for this case.
    pub fn has_case(&self, id: &str) -> bool {
        self.cases.contains_key(id)
    }

    /// Keys the file(s) had that are neither a threshold nor one of upstream's ignored keys,
    /// each with the file, the dotted key and the known key it most resembles. A caller should
    /// show them: a misspelt key silently leaves the default threshold in force.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Record a warning for every key of `keys` that is not in `known` (keys starting with `_`
    /// are comments); `prefix` is the dotted path of the object (`cases.<id>.`).
    fn warn_unknown<'a>(
        &mut self,
        keys: impl Iterator<Item = &'a String>,
        known: &[String],
        prefix: &str,
        origin: &Path,
    ) {
        for key in keys {
            if key.starts_with('_') || known.iter().any(|k| k == key) {
                continue;
            }
            let closest = known
                .iter()
                .map(|k| (edit_distance(k, key), k))
                .min()
                .filter(|(d, _)| *d <= 3.max(key.len() / 4));
            let hint = match closest {
                Some((_, k)) => format!(" (did you mean `{prefix}{k}`?)"),
                None => String::new(),
            };
            self.warnings.push(format!(
                "{}: unknown key `{prefix}{key}` is ignored{hint}",
                origin.display()
            ));
        }
    }
}

/// Levenshtein distance over chars (keys are short), for the "did you mean" hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `obj[key]` as a threshold of `metric` if present: a number inside [`Metric::range`].
fn threshold(
    obj: &Map<String, Value>,
    metric: Metric,
    key: &str,
    shown: &str,
    origin: &Path,
) -> Result<Option<f64>> {
    let Some(v) = number(obj, key, shown, origin)? else {
        return Ok(None);
    };
    let (lo, hi) = metric.range();
    if (lo..=hi).contains(&v) {
        return Ok(Some(v));
    }
    let effect = if (v < lo) == metric.higher_is_better() {
        "every value passes it"
    } else {
        "no value can meet it"
    };
    let hi = if hi.is_infinite() {
        "∞".to_string()
    } else {
        hi.to_string()
    };
    Err(Error::BadValue {
        path: PathBuf::from(origin),
        key: shown.to_string(),
        problem: format!("is {v}, outside the range of {metric} values [{lo}, {hi}]: {effect}"),
    })
}

/// `obj[key]` as a number if present; `shown` is the dotted key used in the error message.
fn number(obj: &Map<String, Value>, key: &str, shown: &str, origin: &Path) -> Result<Option<f64>> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| Error::BadValue {
            path: PathBuf::from(origin),
            key: shown.to_string(),
            problem: format!("must be a number, found {v}"),
        }),
    }
}
