//! SGLang's perf baselines (`perf_baselines/<platform>.json`): per case (`scenarios.<case>`)
//! the expected end-to-end time, average denoising step and stage times, and the `tolerances`
//! they are held to. A case slower than `max(expected · (1 + tolerance), expected + pad)` (as
//! upstream's `calculate_upper_bound`) is slow; the pads are upstream's (20 ms, stages 120 ms,
//! decoding 450 ms with a tolerance of at least 0.9).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

use super::report::{PerfCheck, PerfReport};

/// Upstream's absolute pads, ms.
const PAD_MS: f64 = 20.0;
const STAGE_PAD_MS: f64 = 120.0;
const DECODING_PAD_MS: f64 = 450.0;

/// The baseline file, read once.
pub(super) struct Baseline {
    scenarios: BTreeMap<String, Scenario>,
    tolerances: Tolerances,
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    tolerances: BTreeMap<String, Tolerances>,
    #[serde(default)]
    scenarios: BTreeMap<String, Scenario>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Tolerances {
    e2e: f64,
    denoise_stage: f64,
    non_denoise_stage: f64,
    denoise_agg: f64,
}

#[derive(Debug, Deserialize)]
struct Scenario {
    expected_e2e_ms: Option<f64>,
    expected_avg_denoise_ms: Option<f64>,
    #[serde(default)]
    stages_ms: BTreeMap<String, f64>,
}

/// Our server's `timings` (seconds) under SGLang's stage names.
const STAGE_NAMES: &[(&str, &str)] = &[
    ("text_encoding_s", "TextEncodingStage"),
    ("image_encoding_s", "ImageVAEEncodingStage"),
    ("denoising_s", "DenoisingStage"),
    ("decoding_s", "DecodingStage"),
];

impl Baseline {
    /// Read `path`; `tolerance` replaces the file's `pr_test` tolerances for every timing.
    pub fn load(path: &Path, tolerance: Option<f64>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--perf-baseline {}", path.display()))?;
        let file: File = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an SGLang perf baseline file", path.display()))?;
        let tolerances = match (tolerance, file.tolerances.get("pr_test")) {
            (Some(t), _) => Tolerances {
                e2e: t,
                denoise_stage: t,
                non_denoise_stage: t,
                denoise_agg: t,
            },
            (None, Some(t)) => *t,
            (None, None) => anyhow::bail!(
                "{} has no tolerances.pr_test: give --perf-tolerance",
                path.display()
            ),
        };
        Ok(Self {
            scenarios: file.scenarios,
            tolerances,
            path: path.to_path_buf(),
        })
    }

    /// Hold case `id`'s times to its scenario: `e2e_ms` the request's wall time, `timings` the
    /// answer's own (seconds, our server's names, or SGLang stage names in ms under
    /// `stages_ms`), `steps` the denoising steps. Without a scenario nothing is slow.
    pub fn check(
        &self,
        id: &str,
        e2e_ms: f64,
        timings: Option<&Value>,
        steps: usize,
    ) -> PerfReport {
        let mut r = PerfReport {
            e2e_ms,
            server_timings: timings.cloned(),
            ..PerfReport::default()
        };
        let Some(sc) = self.scenarios.get(id) else {
            return r;
        };
        r.scenario = Some(format!("{} scenarios.{id}", self.path.display()));
        let t = self.tolerances;
        let mut check = |name: &str, actual: f64, expected: f64, tol: f64, pad: f64| {
            let limit = (expected * (1.0 + tol)).max(expected + pad);
            r.slow |= actual > limit;
            r.checks.push(PerfCheck {
                name: name.to_string(),
                actual_ms: actual,
                expected_ms: expected,
                limit_ms: limit,
                tolerance: tol,
            });
        };
        if let Some(e) = sc.expected_e2e_ms {
            check("e2e", e2e_ms, e, t.e2e, PAD_MS);
        }
        let stages = stages_ms(timings);
        if let (Some(e), Some(d)) = (sc.expected_avg_denoise_ms, stages.get("DenoisingStage")) {
            check(
                "avg_denoise_step",
                d / steps.max(1) as f64,
                e,
                t.denoise_agg,
                PAD_MS,
            );
        }
        for (stage, &expected) in &sc.stages_ms {
            let Some(&actual) = stages.get(stage) else {
                continue;
            };
            let (tol, pad) = match stage.as_str() {
                "DenoisingStage" => (t.denoise_stage, STAGE_PAD_MS),
                s if s.ends_with("DecodingStage") => {
                    (t.non_denoise_stage.max(0.9), DECODING_PAD_MS)
                }
                _ => (t.non_denoise_stage, STAGE_PAD_MS),
            };
            check(stage, actual, expected, tol, pad);
        }
        r
    }
}

/// An answer's stage times in ms under SGLang's names.
fn stages_ms(timings: Option<&Value>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(t) = timings else {
        return out;
    };
    if let Some(given) = t["stages_ms"].as_object() {
        for (k, v) in given {
            if let Some(ms) = v.as_f64() {
                out.insert(k.clone(), ms);
            }
        }
    }
    for (ours, theirs) in STAGE_NAMES {
        if let Some(s) = t[*ours].as_f64() {
            out.entry((*theirs).to_string()).or_insert(s * 1000.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slow_means_over_the_larger_of_the_relative_and_absolute_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h100.json");
        std::fs::write(
            &p,
            json!({
                "tolerances": {"pr_test": {"e2e": 0.25, "denoise_stage": 0.25,
                    "non_denoise_stage": 0.8, "denoise_step": 0.3, "denoise_agg": 0.2}},
                "scenarios": {"a": {"expected_e2e_ms": 1000.0, "expected_avg_denoise_ms": 100.0,
                    "stages_ms": {"DenoisingStage": 1000.0, "DecodingStage": 10.0}}}
            })
            .to_string(),
        )
        .unwrap();
        let b = Baseline::load(&p, None).unwrap();
        let timings = json!({"denoising_s": 1.1, "decoding_s": 0.3});
        let ok = b.check("a", 1249.0, Some(&timings), 10);
        assert!(!ok.slow, "{ok:?}");
        assert_eq!(ok.checks.len(), 4);
        assert!(b.check("a", 1251.0, Some(&timings), 10).slow);
        // Decoding: 10 ms expected, 450 ms pad.
        assert!(
            b.check("a", 10.0, Some(&json!({"decoding_s": 0.5})), 10)
                .slow
        );
        assert!(!b.check("no-such-case", 1e9, None, 10).slow);
        let strict = Baseline::load(&p, Some(0.0)).unwrap();
        assert!(strict.check("a", 1021.0, None, 10).slow);
    }
}
