//! `cargo xtask consistency merge`: partitioned runs joined into one report.
//!
//! A report from disk is data, not a plan: every case id must be one the case file allows
//! (`cases::valid_id`), every file it names must be a plain name under that case's folder, and the
//! output folder may not be one of the inputs. All of it is checked before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::report::{CaseReport, Report};
use super::{print, render};
use crate::util::{read_regular_file, write_atomic};

/// The largest report.json merge reads (a report of thousands of cases is a few MiB).
const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Merge partitioned runs: concatenate their cases (a case id must not appear twice), copy their
/// per-case images, and write one report.
pub(super) fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    refuse_output_among_inputs(inputs, out)?;
    let mut cases = Vec::new();
    let mut copies = Vec::new();
    let mut seen = BTreeMap::new();
    let mut complete = true;
    let mut runs = Vec::new();
    for dir in inputs {
        let r = read_report(dir)?;
        runs.push((r.run.clone(), r.platform.clone()));
        if !r.complete {
            eprintln!(
                "warning: {} is a partial report (its run did not finish)",
                dir.join("report.json").display()
            );
            complete = false;
        }
        for c in r.cases {
            check_case(dir, &c)?;
            if let Some(prev) = seen.insert(c.id.clone(), dir.clone()) {
                bail!(
                    "case {} appears in both {} and {}",
                    c.id,
                    prev.display(),
                    dir.display()
                );
            }
            copies.extend(case_files(dir, &c.id)?);
            cases.push(c);
        }
    }
    for (src, rel) in &copies {
        let bytes = read_regular_file(src, u64::MAX)?;
        write_atomic(&out.join(rel), &bytes)?;
    }
    let mut report = Report::from_cases(cases);
    report.complete = complete;
    // Partitions of one run judged one case file on one target and platform: the merged report
    // says so too (and can be a baseline); runs that differ leave it unsaid.
    if let Some(first) = runs.first().filter(|f| runs.iter().all(|r| r == *f)) {
        (report.run, report.platform) = first.clone();
    } else {
        eprintln!("warning: the runs judged different case files, targets or platforms");
    }
    render::write_report(out, &report)?;
    print::table(&report);
    Ok(report.exit_code())
}

/// The output folder must not be an input: copying a run's files onto themselves truncates them.
fn refuse_output_among_inputs(inputs: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let Ok(out_real) = out.canonicalize() else {
        return Ok(()); // a new folder is none of the inputs
    };
    for dir in inputs {
        if dir.canonicalize().is_ok_and(|d| d == out_real) {
            bail!(
                "--out {} is one of the runs being merged: merge into a new folder",
                out.display()
            );
        }
    }
    Ok(())
}

fn read_report(dir: &Path) -> anyhow::Result<Report> {
    let path = dir.join("report.json");
    let bytes = read_regular_file(&path, MAX_REPORT_BYTES)?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a consistency report", path.display()))
}

/// A case's id and the files it names, as a run writes them: `cases/<id>/<plain name>`.
fn check_case(dir: &Path, c: &CaseReport) -> anyhow::Result<()> {
    let report = dir.join("report.json");
    if !cases::valid_id(&c.id) {
        bail!(
            "{}: case id {:?} is not a valid case id (letters, digits, `_`, `.`, `-`)",
            report.display(),
            c.id
        );
    }
    for rel in c.output.iter().chain(&c.inputs) {
        let file = rel
            .strip_prefix(&format!("cases/{}/", c.id))
            .filter(|name| plain_name(name));
        if file.is_none() {
            bail!(
                "{}: case {} names the file {rel:?}, which is not under cases/{}/",
                report.display(),
                c.id,
                c.id
            );
        }
    }
    Ok(())
}

/// The regular files of `dir/cases/<id>/` with plain names (links and folders are not copied),
/// each with where it goes under the output folder.
fn case_files(dir: &Path, id: &str) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let src = dir.join("cases").join(id);
    if !src.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(&src).with_context(|| format!("cannot list {}", src.display()))? {
        let e = e.with_context(|| format!("cannot list {}", src.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| plain_name(n)) else {
            continue;
        };
        if e.file_type().is_ok_and(|t| t.is_file()) {
            files.push((e.path(), Path::new("cases").join(id).join(name)));
        }
    }
    Ok(files)
}

/// A file name with no folder part: `[A-Za-z0-9_.-]`, not `.` or `..`.
fn plain_name(name: &str) -> bool {
    cases::valid_id(name)
}
