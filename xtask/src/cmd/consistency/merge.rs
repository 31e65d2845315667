//! `cargo xtask consistency merge`: partitioned runs joined into one report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::report::Report;
use super::{print, render};

/// Merge partitioned runs: concatenate their cases (a case id must not appear twice), copy their
/// per-case images, and write one report.
pub(super) fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    let mut cases = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    let mut complete = true;
    for dir in inputs {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let r: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a consistency report", path.display()))?;
        if !r.complete {
            eprintln!(
                "warning: {} is a partial report (its run did not finish)",
                path.display()
            );
            complete = false;
        }
        for c in r.cases {
            if let Some(prev) = seen.insert(c.id.clone(), dir.clone()) {
                bail!(
                    "case {} appears in both {} and {}",
                    c.id,
                    prev.display(),
                    dir.display()
                );
            }
            let src = dir.join("cases").join(&c.id);
            if src.is_dir() {
                let dst = out.join("cases").join(&c.id);
                std::fs::create_dir_all(&dst)?;
                for e in std::fs::read_dir(&src)? {
                    let e = e?;
                    std::fs::copy(e.path(), dst.join(e.file_name()))?;
                }
            }
            cases.push(c);
        }
    }
    let mut report = Report::from_cases(cases);
    report.complete = complete;
    render::write_report(out, &report)?;
    print::table(&report);
    Ok(report.exit_code())
}
