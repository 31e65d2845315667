//! Driving a run: the report replaced at the start, every case produced by the target and then
//! judged (or written as GT), the partial report rewritten after each, a case that cannot run
//! reported as such while the others go on.

use std::time::Instant;

use cases::Case;
use gt_resolver::GtQuery;

use super::explain::query_for;
use super::report::{CaseReport, Report};
use super::settings::{Mode, Settings};
use super::target::{Misbehaved, Target};
use super::{compare, gt_write, print, render};

/// An exclusive lock on the output folder for the run (`OUT/.consistency.lock`), released when the
/// process ends, however it ends. A second run into the same folder is refused, naming the lock.
pub(super) fn lock_output(out: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = out.join(".consistency.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another consistency run is writing to {} (it holds {}); wait for it or pick \
             another --out",
            out.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
}

/// A case's files from a previous run (`OUT/cases/<id>/`) are removed when it starts, so that a
/// case that cannot run this time shows none of the last run's images.
fn clear_case_dir(out: &std::path::Path, id: &str) -> anyhow::Result<()> {
    let dir = out.join("cases").join(id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => anyhow::bail!("cannot clear {} from a previous run: {e}", dir.display()),
    }
}

/// The start of a run: the previous report in the output folder is replaced by an empty partial
/// one (a comparing run) or removed (`--gen-gt`, which writes none).
pub(super) fn start_report(s: &Settings, mode: &Mode) -> anyhow::Result<()> {
    if !mode.is_gen_gt() {
        return write_partial_report(s, &[]);
    }
    for name in ["report.json", "index.html"] {
        let p = s.out.join(name);
        if p.exists() {
            std::fs::remove_file(&p)
                .map_err(|e| anyhow::anyhow!("removing the previous {}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// The report so far, marked `"complete": false` (JSON and HTML, each written atomically), so
/// that a run stopped at any point leaves a true partial report.
fn write_partial_report(s: &Settings, so_far: &[CaseReport]) -> anyhow::Result<()> {
    let mut report = report_of(s, so_far.to_vec());
    report.complete = false;
    render::write_report(&s.out, &report)
}

/// The run's report of `cases`: the totals, what was judged (case file, target, platform,
/// version) and the baseline compared with.
pub(super) fn report_of(s: &Settings, cases: Vec<CaseReport>) -> Report {
    let mut report = Report::from_cases(cases);
    report.platform = s.run_platform.to_string();
    report.run = s.run.clone();
    report.baseline = s.judging.baseline.as_ref().map(|b| b.info.clone());
    report
}

/// A case that could not run (its values, its model, its generation): an error of the run (exit
/// 2), reported with its reason, never a failed comparison.
#[derive(Debug)]
pub(super) struct CouldNotRun(anyhow::Error);

impl std::fmt::Display for CouldNotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for CouldNotRun {}

pub(super) fn could_not_run(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(CouldNotRun(e))
}

/// A target's error: a failed case when the target answered wrongly ([`Misbehaved`]), else a
/// case that could not run.
fn produce_error(e: anyhow::Error) -> anyhow::Error {
    if e.is::<Misbehaved>() {
        e
    } else {
        could_not_run(e)
    }
}

/// Produce every case with `target`, then write it as GT or compare it, per `mode`.
pub(super) fn run_cases(
    target: &mut dyn Target,
    all: &[Case],
    s: &Settings,
    mode: &Mode,
) -> anyhow::Result<Vec<CaseReport>> {
    match mode {
        Mode::GenGt => {
            let mut manifest = Vec::new();
            let items = all.iter().map(|c| (c, ()));
            let reports = each_case(target, items, s, mode, |target, case, ()| {
                let g = target.produce(case, &s.out).map_err(produce_error)?;
                manifest.push(gt_write::write_gt(case, &g, s).map_err(could_not_run)?);
                Ok(gt_write::written_report(case, &g, s))
            });
            gt_write::write_manifest(s, &manifest)?;
            Ok(reports)
        }
        Mode::Compare(c) => {
            // Probe every case's GT up front, many cases in parallel (the resolver bounds the
            // pool), so a slow CDN costs one backoff for the whole run rather than one per case.
            let queries: Vec<GtQuery> = all.iter().map(|c| query_for(c, s.platform)).collect();
            let t_gt = Instant::now();
            let resolutions = c.resolver.resolve_many(&queries);
            let gt_probe_time = t_gt.elapsed().as_secs_f64() / all.len().max(1) as f64;
            Ok(each_case(
                target,
                all.iter().zip(resolutions),
                s,
                mode,
                |target, case, resolution| {
                    let g = target.produce(case, &s.out).map_err(produce_error)?;
                    // GT that could not be looked up (nothing asked offline) or fetched (a
                    // failed download) leaves the case unjudged: could not run, as `gt resolve`.
                    let resolution = resolution
                        .and_then(gt_resolver::Resolution::into_answered)
                        .map_err(|e| could_not_run(e.into()))?;
                    let mut report = compare::compare(case, g, resolution, c, s).map_err(|e| {
                        if e.is::<gt_resolver::Error>() {
                            could_not_run(e)
                        } else {
                            e
                        }
                    })?;
                    report.timings.gt += gt_probe_time;
                    Ok(report)
                },
            ))
        }
    }
}

/// Run `f` on every case under one progress bar: a case that fails becomes a failed report and
/// the run goes on; the target says in each report what produced it.
fn each_case<'c, T>(
    target: &mut dyn Target,
    items: impl ExactSizeIterator<Item = (&'c Case, T)>,
    s: &Settings,
    mode: &Mode,
    mut f: impl FnMut(&mut dyn Target, &'c Case, T) -> anyhow::Result<CaseReport>,
) -> Vec<CaseReport> {
    let gen_gt = mode.is_gen_gt();
    let overall = indicatif::ProgressBar::new(items.len() as u64);
    overall.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} cases")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    overall.set_prefix("consistency");
    let mut reports = Vec::new();
    for (case, item) in items {
        let mut report = clear_case_dir(&s.out, &case.id)
            .map_err(could_not_run)
            .and_then(|()| f(target, case, item))
            .unwrap_or_else(|e| match e.downcast::<CouldNotRun>() {
                Ok(CouldNotRun(e)) => CaseReport {
                    error: Some(format!("{e:#}")),
                    ..CaseReport::for_run(case, s.cuda_layout)
                },
                Err(e) => {
                    let mut r = CaseReport::for_run(case, s.cuda_layout);
                    r.failures.push(format!("{e:#}"));
                    r
                }
            });
        target.annotate(case, &mut report);
        if let Some(b) = &s.judging.baseline {
            b.judge(&mut report, &s.out);
        }
        overall.suspend(|| print::case_line(&report, gen_gt));
        overall.inc(1);
        reports.push(report);
        if !gen_gt && let Err(e) = write_partial_report(s, &reports) {
            overall.suspend(|| eprintln!("warning: cannot update the partial report: {e:#}"));
        }
    }
    overall.finish_and_clear();
    reports
}
