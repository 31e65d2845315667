//! What the terminal shows: a line per case as it finishes, the table at the end.

use super::report::{CaseReport, Report};

fn fmt(v: f64) -> String {
    if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.4}")
    }
}

/// One case as it finishes (stderr, under the progress bar).
pub(super) fn case_line(c: &CaseReport, gen_gt: bool) {
    if let Some(why) = &c.skip_reason {
        eprintln!("[{}] SKIPPED: {why}", c.id);
        return;
    }
    if let Some(why) = &c.error {
        eprintln!("[{}] ERROR (could not run): {why}", c.id);
        return;
    }
    if gen_gt {
        let what = if c.failures.is_empty() {
            "GT written"
        } else {
            "FAILED"
        };
        eprintln!("[{}] {what}", c.id);
        for f in &c.failures {
            eprintln!("    {f}");
        }
        return;
    }
    let m = c.metrics.first().map(|f| f.metrics);
    eprintln!(
        "[{}] {} (GT {}): clip {} ssim {} psnr {} mad {}",
        c.id,
        if c.passed { "PASSED" } else { "FAILED" },
        c.gt_source,
        m.and_then(|m| m.clip)
            .map(fmt)
            .unwrap_or_else(|| "skipped".into()),
        m.map(|m| fmt(m.ssim)).unwrap_or_else(|| "-".into()),
        m.map(|m| fmt(m.psnr)).unwrap_or_else(|| "-".into()),
        m.map(|m| fmt(m.mean_abs_diff))
            .unwrap_or_else(|| "-".into()),
    );
    for f in &c.failures {
        eprintln!("    {f}");
    }
    for line in slow_lines(c) {
        eprintln!("    {line}");
    }
}

/// A slow case's timings over their limits (`--perf-baseline`).
pub(super) fn slow_lines(c: &CaseReport) -> Vec<String> {
    let Some(p) = c.perf.as_ref().filter(|p| p.slow) else {
        return Vec::new();
    };
    p.checks
        .iter()
        .filter(|k| k.actual_ms > k.limit_ms)
        .map(|k| {
            format!(
                "slow: {} {:.0} ms > {:.0} ms (baseline {:.0} ms + {:.0}%)",
                k.name,
                k.actual_ms,
                k.limit_ms,
                k.expected_ms,
                k.tolerance * 100.0
            )
        })
        .collect()
}

/// The whole run as a table (stdout).
pub(super) fn table(r: &Report) {
    println!();
    println!(
        "{:<28} {:<7} {:<9} {:>7} {:>7} {:>8} {:>7}",
        "case", "result", "gt", "clip", "ssim", "psnr", "mad"
    );
    for c in &r.cases {
        let m = c.metrics.first().map(|f| f.metrics);
        println!(
            "{:<28} {:<7} {:<9} {:>7} {:>7} {:>8} {:>7}",
            c.id,
            match (c.skip_reason.is_some(), c.error.is_some(), c.passed) {
                (true, ..) => "SKIP",
                (false, true, _) => "ERROR",
                (false, false, true) => "PASS",
                (false, false, false) => "FAIL",
            },
            c.gt_source,
            m.and_then(|m| m.clip)
                .map(fmt)
                .unwrap_or_else(|| "-".into()),
            m.map(|m| fmt(m.ssim)).unwrap_or_else(|| "-".into()),
            m.map(|m| fmt(m.psnr)).unwrap_or_else(|| "-".into()),
            m.map(|m| fmt(m.mean_abs_diff))
                .unwrap_or_else(|| "-".into()),
        );
    }
    println!(
        "{} passed, {} failed ({} could not run), {} skipped{}",
        r.passed,
        r.failed,
        r.errors,
        r.skipped,
        if r.slow > 0 {
            format!("; {} slow against the perf baseline", r.slow)
        } else {
            String::new()
        }
    );
    if !r.complete {
        println!("partial: not every case has run");
    }
}
