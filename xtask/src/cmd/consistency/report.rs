//! What `report.json` holds (the contract in docs/formats.md plus detail): the run, each case,
//! its GT files, probes, timings. Writing it is `render`'s job.

use cases::Case;
use metrics::{CaseThresholds, FrameMetrics};
use serde::{Deserialize, Serialize};
use torch_rng::CudaPlatform;

use super::margins::PerMetric;

/// The thresholds a case was held to (a serialisable copy of [`CaseThresholds`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ThresholdsReport {
    pub clip: f64,
    pub ssim: f64,
    pub psnr: f64,
    pub mean_abs_diff: f64,
}

impl From<CaseThresholds> for ThresholdsReport {
    fn from(t: CaseThresholds) -> Self {
        Self {
            clip: t.clip,
            ssim: t.ssim,
            psnr: t.psnr,
            mean_abs_diff: t.mean_abs_diff,
        }
    }
}

/// The whole run, as `report.json` holds it (docs/formats.md's contract plus extra detail).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// Cases listed with `skip = "reason"`: neither run nor counted as passed or failed.
    #[serde(default)]
    pub skipped: usize,
    /// Of the failed cases, those that could not run at all (an impossible size, latents of the
    /// wrong shape, a model that does not load): each has its `error`. Any makes the exit code 2.
    #[serde(default)]
    pub errors: usize,
    /// `false` while the run is going (the report is rewritten after every case), so that a run
    /// that was killed leaves a report that says it is partial; `true` once every case is in.
    #[serde(default = "finished")]
    pub complete: bool,
    /// The consistency platform and how it was decided (GT folder, thresholds, CUDA noise layout).
    #[serde(default)]
    pub platform: String,
    /// Cases slower than their `--perf-baseline` scenario (judged as usual otherwise).
    #[serde(default)]
    pub slow: usize,
    /// Passing cases marked `near_miss` (a margin under `--near-miss`).
    #[serde(default)]
    pub near_misses: usize,
    /// Cases marked `drifted` against `--baseline`.
    #[serde(default)]
    pub drifted: usize,
    /// What was judged: the case file, the target, the platform, the project's version.
    #[serde(flatten)]
    pub run: RunInfo,
    /// The run compared with (`--baseline`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInfo>,
    pub cases: Vec<CaseReport>,
}

/// What a run judged, recorded at the top of report.json so that a later run can tell whether it
/// is a fair baseline (`--baseline`): every field is absent in reports from before they existed.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct RunInfo {
    /// The case file(s) and their contents' hash.
    #[serde(default)]
    pub case_file: Option<CaseFileInfo>,
    /// What produced the outputs.
    #[serde(default)]
    pub target: Option<RunTarget>,
    /// The platform whose GT folder, threshold overlay and noise layout applied (`h100`, `b200`,
    /// `5090`; `h100` for a CPU run, upstream's fallback).
    #[serde(default)]
    pub gt_platform: Option<String>,
    /// The project's version (xtask's `CARGO_PKG_VERSION`).
    #[serde(default)]
    pub version: Option<String>,
}

/// The case file a run read: its path as given, and the sha256 of its bytes (of the embedded
/// default's three files: of their three sha256 lines, in order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseFileInfo {
    pub path: String,
    pub sha256: String,
}

/// What produced a run's outputs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunTarget {
    /// The pipeline in process.
    InProcess { device: String, dtype: String },
    /// Servers that speak SGLang's image API, by base URL.
    Servers { urls: Vec<String> },
}

impl std::fmt::Display for RunTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunTarget::InProcess { device, dtype } => write!(f, "in process on {device}/{dtype}"),
            RunTarget::Servers { urls } => write!(f, "server {}", urls.join(" ")),
        }
    }
}

/// The baseline a run was compared with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// Its report.json, as given.
    pub report: String,
    /// The moves allowed before a case is `drifted` (`--drift-tolerance`).
    pub tolerance: PerMetric,
    /// Differences from this run accepted with `--baseline-any`.
    #[serde(default)]
    pub accepted: Vec<String>,
}

/// One GT file used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GtFileReport {
    pub name: String,
    pub url: String,
}

/// One probe made while looking for GT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub url: String,
    pub answer: String,
    pub attempts: u32,
}

/// Seconds per stage.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Timings {
    pub load: f64,
    pub text_encoder: f64,
    /// Edit: preparing and VAE-encoding the input images.
    #[serde(default)]
    pub image_encoder: f64,
    pub denoise: f64,
    pub decode: f64,
    pub gt: f64,
    pub metrics: f64,
    /// A server target: the request's wall time, answer read (warm-up excluded).
    #[serde(default)]
    pub request: f64,
}

/// What produced a case's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetReport {
    /// The pipeline in this process.
    InProcess { device: String, dtype: String },
    /// A server speaking SGLang's image API.
    Server {
        /// Its base URL.
        url: String,
        /// The model id the request named (from its `/v1/models`).
        model: String,
        /// That model's `/v1/models` entry as the server gave it (version fields included).
        #[serde(default)]
        card: serde_json::Value,
        /// The answer's `id` (or `x-request-id`).
        #[serde(default)]
        request_id: Option<String>,
    },
}

/// A case's speed against SGLang's perf baseline (`--perf-baseline`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PerfReport {
    /// The request's wall time, ms.
    pub e2e_ms: f64,
    /// The answer's `timings` as the server gave them.
    #[serde(default)]
    pub server_timings: Option<serde_json::Value>,
    /// The baseline scenario compared with (the case id), if the file has one.
    #[serde(default)]
    pub scenario: Option<String>,
    /// Each timing compared: its name, what it took, the baseline and the allowed limit.
    #[serde(default)]
    pub checks: Vec<PerfCheck>,
    /// Some timing was over its limit.
    #[serde(default)]
    pub slow: bool,
}

/// One timing held to its baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerfCheck {
    pub name: String,
    pub actual_ms: f64,
    pub expected_ms: f64,
    /// `max(expected · (1 + tolerance), expected + absolute pad)`, as upstream bounds it.
    pub limit_ms: f64,
    pub tolerance: f64,
}

/// One case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseReport {
    pub id: String,
    pub passed: bool,
    /// "official" | "sglang" | "legacy" | "none".
    pub gt_source: String,
    pub gt_files: Vec<GtFileReport>,
    pub metrics: Vec<FrameMetrics>,
    pub thresholds: Option<ThresholdsReport>,
    pub failures: Vec<String>,
    /// Metrics that were not checked and why (e.g. CLIP model unavailable).
    #[serde(default)]
    pub skipped: Vec<String>,
    #[serde(default)]
    pub probes: Vec<ProbeReport>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub timings: Timings,
    /// How the initial noise was made (`seed 42 (generator torch-cpu)` or a latents file).
    #[serde(default)]
    pub latents: String,
    /// `"torch-cpu"` when the noise was drawn from a seed (torch's CPU generator, bit for bit).
    #[serde(default)]
    pub generator: Option<String>,
    /// Output image, relative to the report folder.
    #[serde(default)]
    pub output: Option<String>,
    /// Input images of an edit case as the pipeline read them, relative to the report folder.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Set for a case listed with `skip = "reason"`: it was not run.
    #[serde(default)]
    pub skip_reason: Option<String>,
    /// Set for a case that could not run (why): an error of the run, not a failed comparison.
    #[serde(default)]
    pub error: Option<String>,
    /// How an Edit case's prompt numbered its image tokens (`mrope` | `sequential`); absent for
    /// cases without input images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision_positions: Option<String>,
    /// What produced the output (a server, or in process with its device).
    #[serde(default)]
    pub target: Option<TargetReport>,
    /// A server target: the request's fields as sent (uploaded images by file name).
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// A server target: its timings, and against `--perf-baseline` whether it was slow.
    #[serde(default)]
    pub perf: Option<PerfReport>,
    /// Per metric, the worst frame's distance to its threshold (`clip − t`, `ssim − t`,
    /// `psnr − t`, `t − mean_abs_diff`): ≥ 0 passes. Absent when nothing was measured.
    #[serde(default)]
    pub margins: Option<PerMetric>,
    /// A passing case with some margin under `--near-miss`.
    #[serde(default)]
    pub near_miss: bool,
    /// Per metric, today's worst-frame value minus the baseline's (`--baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deltas: Option<PerMetric>,
    /// Some metric moved by more than `--drift-tolerance` against the baseline, passing or not.
    #[serde(default)]
    pub drifted: bool,
    /// A drifted case: the baseline run's output, copied beside today's (relative to the report
    /// folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_output: Option<String>,
}

/// Reports written before `complete` existed were only ever written at the end of a run.
fn finished() -> bool {
    true
}

impl CaseReport {
    /// A case that has not passed yet: no GT, no metrics, no failure, how its noise is made.
    pub fn new(case: &Case) -> Self {
        let latents = case.initial_latents();
        Self {
            id: case.id.clone(),
            passed: false,
            gt_source: "none".into(),
            gt_files: vec![],
            metrics: vec![],
            thresholds: None,
            failures: vec![],
            skipped: vec![],
            probes: vec![],
            notes: vec![],
            timings: Timings::default(),
            latents: latents.describe(),
            generator: latents.generator(),
            output: None,
            inputs: vec![],
            skip_reason: None,
            error: None,
            vision_positions: (!case.images.is_empty()).then(|| {
                match case.vision_positions {
                    pipeline::VisionPositions::Mrope => "mrope",
                    pipeline::VisionPositions::Sequential => "sequential",
                }
                .to_string()
            }),
            target: None,
            request: None,
            perf: None,
            margins: None,
            near_miss: false,
            deltas: None,
            drifted: false,
            baseline_output: None,
        }
    }

    /// Marked slow against the perf baseline.
    pub fn is_slow(&self) -> bool {
        self.perf.as_ref().is_some_and(|p| p.slow)
    }

    /// [`Self::new`] with the noise described for the run's CUDA layout, and a note of the
    /// fields the case took from defaults.
    pub fn for_run(case: &Case, cuda_layout: CudaPlatform) -> Self {
        let latents = case.initial_latents_on(cuda_layout);
        let mut r = Self::new(case);
        r.latents = latents.describe();
        r.generator = latents.generator();
        if !case.defaulted.is_empty() {
            let from = case
                .preset
                .map_or_else(|| "diffusers".to_string(), |p| p.class_name().to_string());
            r.notes.push(format!(
                "defaults from {from}: {}",
                case.defaulted.join(", ")
            ));
        }
        r
    }

    /// A case listed but not run (`skip = "reason"`).
    pub fn skipped(case: &Case, reason: &str) -> Self {
        Self {
            skip_reason: Some(reason.to_string()),
            ..Self::new(case)
        }
    }
}

impl Report {
    /// 2 when some case could not run (an error of the run), else 1 when some case failed, else 0.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.errors > 0 {
            std::process::ExitCode::from(2)
        } else if self.failed > 0 {
            std::process::ExitCode::from(1)
        } else {
            std::process::ExitCode::SUCCESS
        }
    }

    pub fn from_cases(mut cases: Vec<CaseReport>) -> Self {
        // Failures first: that is what a reader opens the report for.
        // Skipped cases last: nothing to look at but their reason.
        cases.sort_by(|a, b| {
            (a.skip_reason.is_some(), a.passed, &a.id).cmp(&(
                b.skip_reason.is_some(),
                b.passed,
                &b.id,
            ))
        });
        let skipped = cases.iter().filter(|c| c.skip_reason.is_some()).count();
        let passed = cases.iter().filter(|c| c.passed).count();
        let errors = cases.iter().filter(|c| c.error.is_some()).count();
        let slow = cases.iter().filter(|c| c.is_slow()).count();
        Self {
            passed,
            failed: cases.len() - passed - skipped,
            skipped,
            errors,
            complete: true,
            platform: String::new(),
            slow,
            near_misses: cases.iter().filter(|c| c.near_miss).count(),
            drifted: cases.iter().filter(|c| c.drifted).count(),
            run: RunInfo::default(),
            baseline: None,
            cases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case's `vision_positions` reaches report.json for a case with input images, and is absent
    /// for text to image.
    #[test]
    fn vision_positions_round_trip_into_the_report() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases/x.toml");
        let text = "[[case]]\nid = \"e\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n\
                    image = \"../e2e-edit/edit_input.jpg\"\nvision_positions = \"sequential\"\n\
                    [[case]]\nid = \"t\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n";
        let cases = cases::parse(text, &dir).unwrap();
        let json = |c| serde_json::to_value(CaseReport::new(c)).unwrap();
        let edit = json(&cases[0]);
        assert_eq!(edit["vision_positions"], "sequential");
        let back: CaseReport = serde_json::from_value(edit).unwrap();
        assert_eq!(back.vision_positions.as_deref(), Some("sequential"));
        assert!(json(&cases[1]).get("vision_positions").is_none());
    }
}
