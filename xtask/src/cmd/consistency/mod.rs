//! `cargo xtask consistency`: run cases end to end, resolve GT, compare, report.
//!
//! Every case runs whatever happened to the previous one; failures are collected. Exit 0 when
//! every case passed, 1 when some case failed (or could not be checked: no GT, no CLIP; or, with
//! `--fail-on-drift`, drifted from `--baseline`; with `--fail-on-slow`, was slow), 2 when
//! the run could not start (bad case file, bad options, a threshold file with an impossible value)
//! or some case could not run (an impossible size, latents of the wrong shape, a model that does
//! not load: listed in the report with its `error`, the other cases still run). The report is
//! replaced at the start and rewritten after every case with `"complete": false` until the end.
//!
//! One job per module: the command line (`args`) becomes [`settings::Settings`] once (`settings`); a
//! [`target::Target`] turns a case into an output image (`target`: in process on a backend;
//! `server`: servers that speak SGLang's image API, `perf` their baseline); `runner` drives the
//! cases; `compare` judges one output against its GT (`margins`: how close a pass was);
//! `baseline` compares with a previous run; `gt_write` is `--gen-gt`; `explain` is
//! `--resolve-only`; `report` and `print` say what happened; `merge` joins partitioned runs;
//! `selection` picks the cases.

mod args;
mod baseline;
mod compare;
mod explain;
mod gt_write;
mod margins;
mod merge;
mod perf;
mod print;
mod render;
mod report;
mod runner;
mod selection;
mod server;
mod settings;
mod target;

use std::process::ExitCode;

use cases::Case;

pub use args::{Args, Sub};
use report::CaseReport;
use settings::{Mode, Settings};

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Sub::Merge { inputs, out }) = &args.merge {
        return merge::merge(inputs, out);
    }
    let s = Settings::from_args(args)?;
    if s.resolve_only {
        return explain::resolve_only(&s);
    }
    let mode = Mode::for_run(&s)?;
    std::fs::create_dir_all(&s.out)
        .map_err(|e| anyhow::anyhow!("creating the output folder {}: {e}", s.out.display()))?;
    // Two runs into one folder would interleave their reports: the second is refused.
    let _lock = runner::lock_output(&s.out)?;
    // A previous run's report must not stand next to this run's images: replace it at once with
    // an empty partial one (`"complete": false`), rewritten after every case.
    runner::start_report(&s, &mode)?;
    let (server, runnable, skipped) = targets(&s)?;
    eprintln!(
        "running {} case(s) from {} on {}, platform {}{}",
        runnable.len(),
        s.case_file,
        s.device_label,
        s.run_platform,
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; {} listed case(s) skipped", skipped.len())
        }
    );
    let mut reports = match server {
        Some(mut t) => runner::run_cases(&mut t, &runnable, &s, &mode)?,
        None => target::in_process(&s, |t| runner::run_cases(t, &runnable, &s, &mode))?,
    };
    for (case, why) in &skipped {
        let r = CaseReport::skipped(case, why);
        print::case_line(&r, mode.is_gen_gt());
        reports.push(r);
    }
    if mode.is_gen_gt() {
        return Ok(if reports.iter().any(|r| r.error.is_some()) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let report = runner::report_of(&s, reports);
    render::write_report(&s.out, &report)?;
    print::table(&report);
    eprintln!(
        "report: {} and {}",
        s.out.join("report.json").display(),
        s.out.join("index.html").display()
    );
    let slow_fails = s.server.as_ref().is_some_and(|sv| sv.fail_on_slow) && report.slow > 0;
    let drift_fails = s.judging.fail_on_drift && report.drifted > 0;
    Ok(
        if report.errors == 0 && report.failed == 0 && (slow_fails || drift_fails) {
            ExitCode::from(1)
        } else {
            report.exit_code()
        },
    )
}

/// The cases to run, the server target when there is one, and the cases skipped with why:
/// listed with `skip = "reason"` (reported, never run, never silently dropped), or not sendable
/// to the servers.
#[allow(clippy::type_complexity)]
fn targets(
    s: &Settings,
) -> anyhow::Result<(Option<server::ServerTarget>, Vec<Case>, Vec<(Case, String)>)> {
    let (listed, runnable): (Vec<_>, Vec<_>) =
        s.cases.iter().cloned().partition(|c| c.skip.is_some());
    let mut skipped: Vec<(Case, String)> = listed
        .into_iter()
        .map(|c| {
            let why = c.skip.clone().unwrap_or_default();
            (c, why)
        })
        .collect();
    if s.server.is_none() {
        return Ok((None, runnable, skipped));
    }
    let (target, not_sent) = server::ServerTarget::connect(s, &runnable)?;
    let sent = runnable
        .into_iter()
        .filter(|c| !not_sent.iter().any(|(n, _)| n.id == c.id))
        .collect();
    skipped.extend(not_sent);
    Ok((Some(target), sent, skipped))
}
