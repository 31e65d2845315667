//! Threshold files: parsing with range checks and misspelt-key warnings, the platform overlay,
//! and the per-case lookup (case entry, else file default, else built-in default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::metric::{Media, Metric};
use super::rule::CaseThresholds;
use crate::error::{Error, Result, parse_json};

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
        Self::from_value(crate::input::read_json(path)?, path)
    }

    /// Parses threshold JSON; `origin` names the text in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        Self::from_value(parse_json(text, origin)?, origin)
    }

    /// A threshold file's JSON value; `origin` names it in error messages.
    fn from_value(value: Value, origin: &Path) -> Result<Self> {
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
