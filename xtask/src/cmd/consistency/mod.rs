//! `cargo xtask consistency`: run cases end to end, resolve GT, compare, report.
//!
//! Every case runs whatever happened to the previous one; failures are collected. Exit 0 when
//! every case passed, 1 when some case failed (or could not be checked: no GT, no CLIP), 2 when
//! the run could not start (bad case file, bad options, a threshold file with an impossible value)
//! or some case could not run (an impossible size, latents of the wrong shape, a model that does
//! not load: listed in the report with its `error`, the other cases still run). The report is
//! replaced at the start and rewritten after every case with `"complete": false` until the end.
//!
//! One job per module: the command line (`args`) becomes [`settings::Settings`] once (`settings`); a
//! [`target::Target`] turns a case into an output image (`target`: today in process on a
//! backend); `runner` drives the cases; `compare` judges one output against its GT; `gt_write`
//! is `--gen-gt`; `explain` is `--resolve-only`; `report` and `print` say what happened;
//! `merge` joins partitioned runs; `selection` picks the cases.

mod args;
mod compare;
mod explain;
mod gt_write;
mod merge;
mod print;
mod render;
mod report;
mod runner;
mod selection;
mod settings;
mod target;

use std::process::ExitCode;

pub use args::{Args, Sub};
use report::{CaseReport, Report};
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
    // A previous run's report must not stand next to this run's images: replace it at once with
    // an empty partial one (`"complete": false`), rewritten after every case.
    runner::start_report(&s, &mode)?;
    // Listed with `skip = "reason"`: reported, never run, never silently dropped.
    let (skipped, runnable): (Vec<_>, Vec<_>) =
        s.cases.iter().cloned().partition(|c| c.skip.is_some());
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
    let mut reports = target::in_process(&s, |t| runner::run_cases(t, &runnable, &s, &mode))?;
    for case in &skipped {
        let r = CaseReport::skipped(case, case.skip.as_deref().unwrap_or_default());
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
    let mut report = Report::from_cases(reports);
    report.platform = s.run_platform.to_string();
    render::write_report(&s.out, &report)?;
    print::table(&report);
    eprintln!(
        "report: {} and {}",
        s.out.join("report.json").display(),
        s.out.join("index.html").display()
    );
    Ok(report.exit_code())
}
