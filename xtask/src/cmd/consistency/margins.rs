//! How far a case is from failing: per metric its margin to the threshold (`clip − t`, `ssim − t`,
//! `psnr − t`, `t − mean_abs_diff`, the worst frame of a video), and the "near miss" mark of a case
//! that passes by less than `--near-miss`. [`PerMetric`] is also the shape of a drift's deltas.

use anyhow::bail;
use metrics::{CaseThresholds, FrameMetrics, ImageMetrics, Metric};
use serde::{Deserialize, Serialize};

/// One number per metric (a margin, a delta against a baseline): `null` where the metric was not
/// computed (CLIP with `--no-clip`), an infinite value as `"inf"` / `"-inf"` (JSON has no
/// infinity; metrics writes an infinite PSNR the same way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerMetric {
    #[serde(with = "number_json")]
    pub clip: Option<f64>,
    #[serde(with = "number_json")]
    pub ssim: Option<f64>,
    #[serde(with = "number_json")]
    pub psnr: Option<f64>,
    #[serde(with = "number_json")]
    pub mean_abs_diff: Option<f64>,
}

impl PerMetric {
    /// Each metric's value from `f`.
    pub fn from_fn(mut f: impl FnMut(Metric) -> Option<f64>) -> Self {
        Self {
            clip: f(Metric::Clip),
            ssim: f(Metric::Ssim),
            psnr: f(Metric::Psnr),
            mean_abs_diff: f(Metric::MeanAbsDiff),
        }
    }

    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Clip => self.clip,
            Metric::Ssim => self.ssim,
            Metric::Psnr => self.psnr,
            Metric::MeanAbsDiff => self.mean_abs_diff,
        }
    }
}

/// A number as JSON, or `"inf"`, `"-inf"`, `"nan"` where JSON has none.
mod number_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) if x.is_nan() => s.serialize_str("nan"),
            Some(x) if x.is_infinite() => s.serialize_str(if *x > 0.0 { "inf" } else { "-inf" }),
            Some(x) => s.serialize_f64(*x),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<NumberOrText>::deserialize(d)? {
            None => Ok(None),
            Some(NumberOrText::Number(v)) => Ok(Some(v)),
            Some(NumberOrText::Text(t)) => match t.as_str() {
                "inf" => Ok(Some(f64::INFINITY)),
                "-inf" => Ok(Some(f64::NEG_INFINITY)),
                "nan" => Ok(Some(f64::NAN)),
                _ => Err(D::Error::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"nan\", got {t:?}"
                ))),
            },
        }
    }
}

/// All but the mean absolute difference pass when `>=` their threshold (metrics' rule).
fn higher_is_better(metric: Metric) -> bool {
    metric != Metric::MeanAbsDiff
}

/// A metric of one frame's metrics (`None`: CLIP not computed).
fn value(m: &ImageMetrics, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Clip => m.clip,
        Metric::Ssim => Some(m.ssim),
        Metric::Psnr => Some(m.psnr),
        Metric::MeanAbsDiff => Some(m.mean_abs_diff),
    }
}

/// The worst value of `metric` over the frames (the lowest, the highest mean absolute
/// difference); NaN when some frame's is NaN (it fails, as upstream's `nan >= t`); `None` with
/// no frames or a frame without it.
pub fn worst(frames: &[FrameMetrics], metric: Metric) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for f in frames {
        let v = value(&f.metrics, metric)?;
        worst = Some(match worst {
            None => v,
            Some(w) if w.is_nan() || v.is_nan() => f64::NAN,
            Some(w) if higher_is_better(metric) => w.min(v),
            Some(w) => w.max(v),
        });
    }
    worst
}

/// Per metric, the worst frame's distance to the threshold: positive passes, zero passes (equal
/// to the threshold passes, as upstream), negative fails. An infinite PSNR gives an infinite
/// margin.
pub fn margins(frames: &[FrameMetrics], t: &CaseThresholds) -> PerMetric {
    PerMetric::from_fn(|metric| {
        let v = worst(frames, metric)?;
        let th = t.get(metric);
        Some(if higher_is_better(metric) {
            v - th
        } else {
            th - v
        })
    })
}

/// How close to its threshold a metric may pass before the case is a near miss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A fraction of the room the threshold leaves: of `t` for psnr and mean_abs_diff, of
    /// `1 − t` for clip and ssim (whose values end at 1).
    Fraction(f64),
    /// A margin in the metric's own unit.
    Absolute(f64),
}

/// `--near-miss`: per metric, the margin under which a passing case is marked `near_miss`.
/// Default: 10 % (of `t` for psnr and mean_abs_diff, of `1 − t` for clip and ssim).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearMiss([Limit; 4]);

impl Default for NearMiss {
    fn default() -> Self {
        Self([Limit::Fraction(0.10); 4])
    }
}

impl NearMiss {
    /// `clip=0.01,psnr=5%`: a metric (clip, ssim, psnr, mean_abs_diff or mad) and a margin in its
    /// unit, or a percentage as the default's; the metrics not named keep the default.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut limits = Self::default().0;
        for (metric, v) in per_metric_items("--near-miss", text)? {
            let limit = match v.strip_suffix('%') {
                Some(p) => Limit::Fraction(non_negative("--near-miss", metric, p)? / 100.0),
                None => Limit::Absolute(non_negative("--near-miss", metric, v)?),
            };
            limits[index(metric)] = limit;
        }
        Ok(Self(limits))
    }

    /// The margin under which `metric` is a near miss, against threshold `t`.
    pub fn limit(&self, metric: Metric, t: f64) -> f64 {
        match self.0[index(metric)] {
            Limit::Absolute(v) => v,
            Limit::Fraction(f) => match metric {
                Metric::Clip | Metric::Ssim => f * (1.0 - t).max(0.0),
                Metric::Psnr | Metric::MeanAbsDiff => f * t.abs(),
            },
        }
    }

    /// The metrics whose margin is under their limit (a NaN or missing margin is never near).
    pub fn near(&self, margins: &PerMetric, t: &CaseThresholds) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|&m| margins.get(m).is_some_and(|x| x < self.limit(m, t.get(m))))
            .collect()
    }
}

/// A metric's position in [`Metric::ALL`].
pub fn index(metric: Metric) -> usize {
    match metric {
        Metric::Clip => 0,
        Metric::Ssim => 1,
        Metric::Psnr => 2,
        Metric::MeanAbsDiff => 3,
    }
}

/// `metric=value` items of a comma-separated list (`mad` for mean_abs_diff), for `flag`.
pub fn per_metric_items<'a>(flag: &str, text: &'a str) -> anyhow::Result<Vec<(Metric, &'a str)>> {
    let mut items = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, v)) = item.split_once('=') else {
            bail!("{flag} `{item}`: expected METRIC=VALUE (clip, ssim, psnr, mean_abs_diff)");
        };
        let key = key.trim();
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.name() == key || (key == "mad" && *m == Metric::MeanAbsDiff));
        match metric {
            Some(m) => items.push((m, v.trim())),
            None => {
                bail!("{flag} `{item}`: unknown metric `{key}` (clip, ssim, psnr, mean_abs_diff)")
            }
        }
    }
    if items.is_empty() {
        bail!("{flag} `{text}`: expected METRIC=VALUE,… (clip, ssim, psnr, mean_abs_diff)");
    }
    Ok(items)
}

/// A finite number ≥ 0 given to `flag` for `metric`.
pub fn non_negative(flag: &str, metric: Metric, v: &str) -> anyhow::Result<f64> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => bail!("{flag} {}={v}: expected a number ≥ 0", metric.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ssim: f64, psnr: f64, mad: f64, clip: Option<f64>) -> FrameMetrics {
        FrameMetrics {
            frame: "image".into(),
            metrics: ImageMetrics {
                ssim,
                psnr,
                mean_abs_diff: mad,
                clip,
            },
        }
    }

    const T: CaseThresholds = CaseThresholds {
        clip: 0.92,
        ssim: 0.95,
        psnr: 28.0,
        mean_abs_diff: 8.0,
    };

    /// Equal to the threshold passes (upstream's `>=` / `<=`), with a margin of exactly 0, and is
    /// a near miss; the pass rule and the margins agree on either side of the edge.
    #[test]
    fn a_metric_equal_to_its_threshold_passes_with_margin_zero_and_is_a_near_miss() {
        let at_edge = [frame(0.95, 28.0, 8.0, Some(0.92))];
        assert!(T.check(&at_edge).failures.is_empty());
        let m = margins(&at_edge, &T);
        assert_eq!(m, PerMetric::from_fn(|_| Some(0.0)));
        assert_eq!(NearMiss::default().near(&m, &T), Metric::ALL.to_vec());

        let below = [frame(
            0.95 - 1e-12,
            28.0 - 1e-9,
            8.0 + 1e-9,
            Some(0.92 - 1e-12),
        )];
        assert_eq!(T.check(&below).failures.len(), 4);
        let m = margins(&below, &T);
        for metric in Metric::ALL {
            assert!(m.get(metric).unwrap() < 0.0, "{metric}");
        }
    }

    /// The default limits: 10 % of the threshold for psnr and mean_abs_diff, 10 % of `1 − t`
    /// for clip and ssim; a margin equal to the limit is not under it.
    #[test]
    fn near_miss_defaults_and_the_limit_itself() {
        let nm = NearMiss::default();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(nm.limit(Metric::Psnr, 28.0), 2.8));
        assert!(close(nm.limit(Metric::MeanAbsDiff, 8.0), 0.8));
        assert!(close(nm.limit(Metric::Clip, 0.92), 0.008));
        assert!(close(nm.limit(Metric::Ssim, 0.95), 0.005));
        let m = PerMetric {
            clip: Some(1.0),
            ssim: Some(1.0),
            psnr: Some(nm.limit(Metric::Psnr, 28.0)),
            mean_abs_diff: Some(0.79),
        };
        assert_eq!(nm.near(&m, &T), vec![Metric::MeanAbsDiff]);
    }

    #[test]
    fn infinite_psnr_gives_an_infinite_margin_written_as_inf() {
        let m = margins(&[frame(1.0, f64::INFINITY, 0.0, None)], &T);
        assert_eq!(m.psnr, Some(f64::INFINITY));
        assert_eq!(m.clip, None);
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(json["psnr"], "inf");
        assert!(json["clip"].is_null());
        let back: PerMetric = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        let neg = PerMetric {
            psnr: Some(f64::NEG_INFINITY),
            ..PerMetric::default()
        };
        assert_eq!(serde_json::to_value(neg).unwrap()["psnr"], "-inf");
    }

    /// A video's margin is its worst frame's.
    #[test]
    fn the_worst_frame_sets_the_margin() {
        let frames = [
            frame(0.99, 35.0, 2.0, Some(0.99)),
            frame(0.96, 30.0, 7.0, Some(0.93)),
        ];
        let m = margins(&frames, &T);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(m.ssim, 0.01) && close(m.psnr, 2.0) && close(m.mean_abs_diff, 1.0));
        assert!(close(m.clip, 0.01));
    }

    #[test]
    fn near_miss_flag_values() {
        let nm = NearMiss::parse("psnr=1.5, mad=5%").unwrap();
        assert_eq!(nm.limit(Metric::Psnr, 28.0), 1.5);
        assert!((nm.limit(Metric::MeanAbsDiff, 8.0) - 0.4).abs() < 1e-12);
        assert!((nm.limit(Metric::Ssim, 0.95) - 0.005).abs() < 1e-12);
        for bad in ["psnr", "lpips=1", "psnr=-1", "psnr=inf", ""] {
            assert!(NearMiss::parse(bad).is_err(), "{bad}");
        }
    }
}
