//! `--baseline PREVIOUS/report.json`: per case and metric the move since that run, a case that
//! moved by more than `--drift-tolerance` marked `drifted` (passing or not), and its baseline
//! output copied beside today's for the HTML report.
//!
//! A baseline is data from disk: it must say what it judged (case file, target, platform) and
//! that must be what this run judges, unless `--baseline-any`; the only files taken from its folder
//! are regular files at `cases/<case id>/output.png` (no link, nothing outside that folder), and
//! they must decode as PNG images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use metrics::Metric;

use super::margins::{PerMetric, index, non_negative, per_metric_items, worst};
use super::report::{BaselineInfo, CaseReport, Report, RunInfo};
use crate::util::{MAX_IMAGE_BYTES, read_regular_file, write_atomic};

/// The largest baseline report.json read (as `merge`'s limit).
const MAX_REPORT_BYTES: u64 = 256 << 20;

/// `--drift-tolerance`: per metric the largest move that is not drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftTolerance([f64; 4]);

impl Default for DriftTolerance {
    /// clip 0.005, ssim 0.01, psnr 1.0 dB, mean_abs_diff 0.5.
    fn default() -> Self {
        Self([0.005, 0.01, 1.0, 0.5])
    }
}

impl DriftTolerance {
    /// `clip=0.005,ssim=0.01,psnr=1.0,mean_abs_diff=0.5`; the metrics not named keep the default.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut t = Self::default().0;
        for (metric, v) in per_metric_items("--drift-tolerance", text)? {
            t[index(metric)] = non_negative("--drift-tolerance", metric, v)?;
        }
        Ok(Self(t))
    }

    pub fn get(&self, metric: Metric) -> f64 {
        self.0[index(metric)]
    }

    /// The metrics of `deltas` that moved by more than the tolerance (a NaN move counts).
    pub fn moved(&self, deltas: &PerMetric) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|&m| {
                deltas
                    .get(m)
                    .is_some_and(|d| d.is_nan() || d.abs() > self.get(m))
            })
            .collect()
    }
}

/// The move of one metric: `today − before`, 0 when both are the same infinity (an infinite PSNR
/// on both sides is no move).
pub fn delta(today: f64, before: f64) -> f64 {
    if today.is_infinite() && today == before {
        0.0
    } else {
        today - before
    }
}

/// A previous run, checked and loaded.
pub(super) struct Baseline {
    /// Its folder (report.json's).
    dir: PathBuf,
    cases: BTreeMap<String, CaseReport>,
    tolerance: DriftTolerance,
    /// For this run's report.
    pub info: BaselineInfo,
}

impl Baseline {
    /// Read `given` (a report.json or the folder holding one) and check that it judged what this
    /// run judges (`run`): the same case file (by content), target and platform. A difference, or
    /// a report that does not say, is refused with the reason unless `any` (then recorded).
    /// `out` is this run's folder, which a baseline may not be (the run replaces it).
    pub fn load(
        given: &Path,
        run: &RunInfo,
        any: bool,
        tolerance: DriftTolerance,
        out: &Path,
    ) -> anyhow::Result<Self> {
        let path = if given.is_dir() {
            given.join("report.json")
        } else {
            given.to_path_buf()
        };
        let bytes = read_regular_file(&path, MAX_REPORT_BYTES).context("--baseline")?;
        let report: Report = serde_json::from_slice(&bytes)
            .with_context(|| format!("--baseline {}: not a consistency report", path.display()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if same_folder(&dir, out) {
            bail!(
                "--baseline {}: that is this run's --out folder, which the run replaces; copy the \
                 previous run elsewhere first (cp -r {} previous-run)",
                path.display(),
                dir.display()
            );
        }
        let differences = differences(run, &report.run);
        if !differences.is_empty() && !any {
            bail!(
                "--baseline {} is not a baseline for this run: {} (--baseline-any compares anyway)",
                path.display(),
                differences.join("; ")
            );
        }
        if !report.complete {
            eprintln!(
                "warning: --baseline {} is a partial report (its run did not finish)",
                path.display()
            );
        }
        let cases = report
            .cases
            .into_iter()
            .filter(|c| cases::valid_id(&c.id))
            .map(|c| (c.id.clone(), c))
            .collect();
        Ok(Self {
            dir,
            cases,
            tolerance,
            info: BaselineInfo {
                report: path.display().to_string(),
                tolerance: PerMetric::from_fn(|m| Some(tolerance.get(m))),
                accepted: differences,
            },
        })
    }

    /// Compare a judged case with its baseline: its deltas, `drifted`, and for a drifted case the
    /// baseline's output copied to `out/cases/<id>/baseline_output.png`. A case without metrics
    /// here or there gets a note, never a drift.
    pub fn judge(&self, report: &mut CaseReport, out: &Path) {
        if report.metrics.is_empty() {
            return;
        }
        let Some(before) = self.cases.get(&report.id).filter(|b| !b.metrics.is_empty()) else {
            report
                .notes
                .push("baseline: this case has no metrics in the baseline run".into());
            return;
        };
        let deltas = PerMetric::from_fn(|m| {
            Some(delta(
                worst(&report.metrics, m)?,
                worst(&before.metrics, m)?,
            ))
        });
        let moved = self.tolerance.moved(&deltas);
        report.deltas = Some(deltas);
        report.drifted = !moved.is_empty();
        if !report.drifted {
            return;
        }
        let names: Vec<&str> = moved.iter().map(|m| m.name()).collect();
        report.notes.push(format!(
            "drifted against the baseline: {} moved by more than the tolerance",
            names.join(", ")
        ));
        match self.copy_output(&report.id, out) {
            Ok(rel) => report.baseline_output = Some(rel),
            Err(e) => report
                .notes
                .push(format!("baseline output not shown: {e:#}")),
        }
    }

    /// The baseline's `cases/<id>/output.png`, checked (a regular file really under that
    /// folder, a PNG that decodes), copied into this run's folder; its path relative to `out`.
    fn copy_output(&self, id: &str, out: &Path) -> anyhow::Result<String> {
        if !cases::valid_id(id) {
            bail!("{id:?} is not a case id");
        }
        let src = self.dir.join("cases").join(id).join("output.png");
        // No link anywhere below the baseline folder: the file must be where its name says.
        let expected = self
            .dir
            .canonicalize()
            .with_context(|| format!("cannot read {}", self.dir.display()))?
            .join("cases")
            .join(id)
            .join("output.png");
        let real = src
            .canonicalize()
            .with_context(|| format!("cannot read {}", src.display()))?;
        let is_link = std::fs::symlink_metadata(&src).is_ok_and(|m| m.file_type().is_symlink());
        if real != expected || is_link {
            bail!(
                "{} is a link: only files in the baseline's folder are read",
                src.display()
            );
        }
        let bytes = read_regular_file(&src, MAX_IMAGE_BYTES)?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            bail!("{} is not a PNG image", src.display());
        }
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .with_context(|| format!("{} does not decode", src.display()))?;
        let rel = format!("cases/{id}/baseline_output.png");
        write_atomic(&out.join(&rel), &bytes)?;
        Ok(rel)
    }
}

/// Both paths name one existing folder.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Why `before` is not a baseline for `run`: what it does not say, what differs (the version is
/// allowed to: comparing versions is what a baseline is for).
pub fn differences(run: &RunInfo, before: &RunInfo) -> Vec<String> {
    let mut why = Vec::new();
    match (&run.case_file, &before.case_file) {
        (_, None) => why.push("it does not say which case file it judged".to_string()),
        (Some(a), Some(b)) if a.sha256 != b.sha256 => why.push(format!(
            "it judged another case file ({} sha256 {}, this run {} sha256 {})",
            b.path, b.sha256, a.path, a.sha256
        )),
        _ => {}
    }
    match (&run.target, &before.target) {
        (_, None) => why.push("it does not say what produced its outputs".to_string()),
        (Some(a), Some(b)) if a != b => why.push(format!("its target was {b}, this run's is {a}")),
        _ => {}
    }
    match (&run.gt_platform, &before.gt_platform) {
        (_, None) => why.push("it does not say its platform".to_string()),
        (Some(a), Some(b)) if a != b => {
            why.push(format!("its platform was {b}, this run's is {a}"))
        }
        _ => {}
    }
    if before.version.is_none() {
        why.push("it does not say the project's version".to_string());
    }
    why
}

#[cfg(test)]
mod tests {
    use super::super::report::{CaseFileInfo, RunTarget};
    use super::*;

    fn run(sha: &str, device: &str, platform: &str) -> RunInfo {
        RunInfo {
            case_file: Some(CaseFileInfo {
                path: "cases.toml".into(),
                sha256: sha.into(),
            }),
            target: Some(RunTarget::InProcess {
                device: device.into(),
                dtype: "f32".into(),
            }),
            gt_platform: Some(platform.into()),
            version: Some("0.1.0".into()),
        }
    }

    #[test]
    fn a_baseline_must_have_judged_the_same_case_file_target_and_platform() {
        let here = run("aa", "cpu", "h100");
        assert!(differences(&here, &here).is_empty());
        let other_version = RunInfo {
            version: Some("9.9.9".into()),
            ..here.clone()
        };
        assert!(differences(&here, &other_version).is_empty());
        assert_eq!(differences(&here, &run("bb", "cpu", "h100")).len(), 1);
        assert_eq!(differences(&here, &run("aa", "cuda", "h100")).len(), 1);
        assert_eq!(differences(&here, &run("aa", "cpu", "b200")).len(), 1);
        assert_eq!(differences(&here, &RunInfo::default()).len(), 4);
    }

    #[test]
    fn moves_past_the_tolerance_drift_and_infinity_on_both_sides_does_not() {
        let t = DriftTolerance::default();
        assert_eq!(delta(f64::INFINITY, f64::INFINITY), 0.0);
        assert_eq!(delta(f64::INFINITY, 40.0), f64::INFINITY);
        assert_eq!(delta(40.0, f64::INFINITY), f64::NEG_INFINITY);
        let d = PerMetric {
            clip: Some(0.005),
            ssim: Some(-0.0100001),
            psnr: Some(f64::NEG_INFINITY),
            mean_abs_diff: None,
        };
        assert_eq!(t.moved(&d), vec![Metric::Ssim, Metric::Psnr]);
        let t = DriftTolerance::parse("psnr=2, mad=0.1").unwrap();
        assert_eq!(
            (t.get(Metric::Psnr), t.get(Metric::MeanAbsDiff)),
            (2.0, 0.1)
        );
        assert_eq!(t.get(Metric::Clip), 0.005);
        assert!(DriftTolerance::parse("psnr=x").is_err());
    }
}
