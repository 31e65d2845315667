//! What the terminal shows: a line per case as it finishes, the table at the end.

use metrics::Metric;

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
    if c.near_miss || c.drifted {
        eprintln!("    {}", flags(c).join(", "));
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

/// A margin with its sign (`+0.0123`, `-1.5000`, `+inf`), `-` when not measured.
pub(super) fn fmt_margin(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.is_infinite() => if x > 0.0 { "+inf" } else { "-inf" }.into(),
        Some(x) => format!("{x:+.4}"),
    }
}

/// `near miss`, `drifted`, `slow`: what else a reader should know of a case, in words.
pub(super) fn flags(c: &CaseReport) -> Vec<&'static str> {
    let mut f = Vec::new();
    if c.near_miss {
        f.push("near miss");
    }
    if c.drifted {
        f.push("drifted");
    }
    if c.is_slow() {
        f.push("slow");
    }
    f
}

/// The whole run as a table (stdout): each metric and its margin to the threshold (the worst
/// frame's; negative fails), then the case's flags.
pub(super) fn table(r: &Report) {
    println!();
    println!(
        "{:<28} {:<6} {:<9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8}  flags",
        "case",
        "result",
        "gt",
        "clip",
        "margin",
        "ssim",
        "margin",
        "psnr",
        "margin",
        "mad",
        "margin"
    );
    for c in &r.cases {
        let m = c.metrics.first().map(|f| f.metrics);
        let margin = |metric| fmt_margin(c.margins.as_ref().and_then(|g| g.get(metric)));
        let line = format!(
            "{:<28} {:<6} {:<9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8}  {}",
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
            margin(Metric::Clip),
            m.map(|m| fmt(m.ssim)).unwrap_or_else(|| "-".into()),
            margin(Metric::Ssim),
            m.map(|m| fmt(m.psnr)).unwrap_or_else(|| "-".into()),
            margin(Metric::Psnr),
            m.map(|m| fmt(m.mean_abs_diff))
                .unwrap_or_else(|| "-".into()),
            margin(Metric::MeanAbsDiff),
            flags(c).join(", "),
        );
        println!("{}", line.trim_end());
    }
    println!(
        "{} passed, {} failed ({} could not run), {} skipped{}{}{}",
        r.passed,
        r.failed,
        r.errors,
        r.skipped,
        count_of(
            r.near_misses,
            "near miss(es): passed by less than --near-miss"
        ),
        count_of(r.drifted, "drifted against the baseline"),
        count_of(r.slow, "slow against the perf baseline"),
    );
    if !r.complete {
        println!("partial: not every case has run");
    }
}

/// `; N what` when N > 0.
fn count_of(n: usize, what: &str) -> String {
    if n > 0 {
        format!("; {n} {what}")
    } else {
        String::new()
    }
}
