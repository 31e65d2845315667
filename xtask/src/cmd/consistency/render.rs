//! Writing what a run found: `report.json`, the self-contained `index.html`, and each case's
//! output / GT / diff images.

use std::path::Path;

use base64::Engine;
use image::{Rgb, RgbImage};

use metrics::Metric;

use super::margins::PerMetric;
use super::print::{flags, fmt_margin, slow_lines};
use super::report::{CaseReport, Report, TargetReport};
use crate::util::write_atomic;

fn png_bytes(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)?;
    Ok(buf.into_inner())
}

/// A heat map of |output − GT| (mean over channels, ×4 so small drifts show): black → red →
/// yellow → white.
pub fn diff_heatmap(a: &RgbImage, b: &RgbImage) -> RgbImage {
    let (w, h) = a.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
        let d: f32 = (0..3)
            .map(|c| (p[c] as f32 - q[c] as f32).abs())
            .sum::<f32>()
            / 3.0;
        let t = (d * 4.0 / 255.0).clamp(0.0, 1.0) * 3.0;
        let ch = |v: f32| (v.clamp(0.0, 1.0) * 255.0) as u8;
        Rgb([ch(t), ch(t - 1.0), ch(t - 2.0)])
    })
}

/// Output | GT | diff side by side with a grey gutter.
pub fn comparison(output: &RgbImage, gt: &RgbImage, diff: &RgbImage) -> RgbImage {
    let gap = 8u32;
    let (w, h) = output.dimensions();
    let mut canvas = RgbImage::from_pixel(3 * w + 4 * gap, h + 2 * gap, Rgb([96, 96, 96]));
    for (i, img) in [output, gt, diff].into_iter().enumerate() {
        image::imageops::overlay(
            &mut canvas,
            img,
            (gap + i as u32 * (w + gap)) as i64,
            gap as i64,
        );
    }
    canvas
}

/// Per-case images next to the report: `cases/<id>/{output,gt,diff,comparison}.png`. With
/// `keep_png` an `output.png` already there (a server's PNG answer, as it came) is left alone.
pub fn write_case_images(
    out: &Path,
    id: &str,
    output: &RgbImage,
    gt: Option<&RgbImage>,
    keep_png: bool,
) -> anyhow::Result<()> {
    let dir = out.join("cases").join(id);
    if !(keep_png && dir.join("output.png").is_file()) {
        write_atomic(&dir.join("output.png"), &png_bytes(output)?)?;
    }
    if let Some(gt) = gt.filter(|g| g.dimensions() == output.dimensions()) {
        let diff = diff_heatmap(output, gt);
        write_atomic(&dir.join("gt.png"), &png_bytes(gt)?)?;
        write_atomic(&dir.join("diff.png"), &png_bytes(&diff)?)?;
        write_atomic(
            &dir.join("comparison.png"),
            &png_bytes(&comparison(output, gt, &diff))?,
        )?;
    } else if let Some(gt) = gt {
        write_atomic(&dir.join("gt.png"), &png_bytes(gt)?)?;
    }
    Ok(())
}

/// `PASSED`, `FAILED`, `ERROR` (could not run) or `SKIPPED`, as the table and the log say it.
pub fn result_word(c: &CaseReport) -> &'static str {
    match (c.skip_reason.is_some(), c.error.is_some(), c.passed) {
        (true, ..) => "SKIPPED",
        (false, true, _) => "ERROR",
        (false, false, true) => "PASSED",
        (false, false, false) => "FAILED",
    }
}

fn result_class(c: &CaseReport) -> &'static str {
    match (c.skip_reason.is_some(), c.passed) {
        (true, _) => "skip",
        (false, true) => "pass",
        (false, false) => "fail",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn data_uri(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn fmt_metric(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if x.is_infinite() => "∞".into(),
        Some(x) => format!("{x:.4}"),
    }
}

/// `report.json` and the self-contained `index.html` (images inlined as data URIs): a table of
/// cases, then per case output, GT and heat-map diff side by side, failures first. The page is
/// written first and report.json last, so that report.json never says more than the page shows:
/// if the page cannot be written (a full disk), report.json stays the previous, partial one.
pub fn write_report(out: &Path, report: &Report) -> anyhow::Result<()> {
    let mut h = String::new();
    head(&mut h, report);
    summary_table(&mut h, report);
    for c in &report.cases {
        case_section(&mut h, out, c);
    }
    h.push_str("</body></html>\n");
    write_atomic(&out.join("index.html"), h.as_bytes())?;
    write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )
}

/// The page head, its style, the run's totals and state.
fn head(h: &mut String, report: &Report) {
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str("<title>Qwen-Image consistency report</title>\n<style>\n");
    h.push_str("body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa;color:#222}\n");
    h.push_str("table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\n");
    h.push_str(".pass{color:#070}.fail{color:#b00}.flag{color:#a60}small{color:#666}.case{margin:2em 0;padding:1em;background:#fff;border:1px solid #ddd}\n");
    h.push_str("figure{display:inline-block;margin:0 1em 0 0}img{image-rendering:pixelated;min-width:128px;border:1px solid #999}\n");
    h.push_str("</style></head><body>\n");
    h.push_str(&format!(
        "<h1>Qwen-Image consistency: <span class=\"pass\">{} passed</span>, <span class=\"fail\">{} failed</span>, {} skipped</h1>\n",
        report.passed, report.failed, report.skipped
    ));
    if report.errors > 0 {
        h.push_str(&format!(
            "<p class=\"fail\">{} case(s) could not run (an error of the run, exit code 2)</p>\n",
            report.errors
        ));
    }
    if !report.complete {
        h.push_str(
            "<p class=\"fail\" id=\"partial\">partial report: the run has not finished (or was \
             stopped); only the cases below have run</p>\n",
        );
    }
    if !report.platform.is_empty() {
        h.push_str(&format!("<p>platform: {}</p>\n", esc(&report.platform)));
    }
    run_lines(h, report);
    if report.slow > 0 {
        h.push_str(&format!(
            "<p class=\"fail\">{} case(s) slower than their perf baseline</p>\n",
            report.slow
        ));
    }
}

/// What produced a case, in words.
fn target_line(t: &TargetReport) -> String {
    match t {
        TargetReport::InProcess { device, dtype } => format!("in process on {device}/{dtype}"),
        TargetReport::Server {
            url,
            model,
            request_id,
            ..
        } => format!(
            "server {url}, model {model}{}",
            request_id
                .as_deref()
                .map(|r| format!(", request {r}"))
                .unwrap_or_default()
        ),
    }
}

/// The case file, target, version and baseline of the run.
fn run_lines(h: &mut String, report: &Report) {
    let run = &report.run;
    if let Some(f) = &run.case_file {
        h.push_str(&format!(
            "<p>case file: <code>{}</code> (sha256 <code>{}</code>)</p>\n",
            esc(&f.path),
            esc(&f.sha256)
        ));
    }
    if let Some(t) = &run.target {
        h.push_str(&format!("<p>target: {}</p>\n", esc(&t.to_string())));
    }
    if let Some(v) = &run.version {
        h.push_str(&format!("<p>version: {}</p>\n", esc(v)));
    }
    if let Some(b) = &report.baseline {
        h.push_str(&format!(
            "<p>baseline: <code>{}</code>; <span class=\"flag\">{} drifted</span>{}</p>\n",
            esc(&b.report),
            report.drifted,
            b.accepted
                .iter()
                .map(|a| format!("; accepted with --baseline-any: {}", esc(a)))
                .collect::<String>()
        ));
    }
    if report.near_misses > 0 {
        h.push_str(&format!(
            "<p class=\"flag\">{} case(s) passed by less than --near-miss</p>\n",
            report.near_misses
        ));
    }
}

/// A metric's value and, below it, its margin to the threshold.
fn metric_cell(v: Option<f64>, margins: Option<&PerMetric>, metric: Metric) -> String {
    let margin = margins.map(|g| g.get(metric));
    match margin {
        Some(m) => format!(
            "<td>{} <small class=\"margin\">{}</small></td>",
            fmt_metric(v),
            fmt_margin(m)
        ),
        None => format!("<td>{}</td>", fmt_metric(v)),
    }
}

/// One row per case: result, GT source, metrics with their margins, flags.
fn summary_table(h: &mut String, report: &Report) {
    h.push_str("<table id=\"summary\"><tr><th>case</th><th>result</th><th>GT source</th><th>clip</th><th>ssim</th><th>psnr</th><th>mean abs diff</th><th>flags</th></tr>\n");
    for c in &report.cases {
        let m = c.metrics.first().map(|f| f.metrics);
        let g = c.margins.as_ref();
        h.push_str(&format!(
            "<tr data-case=\"{id}\"><td><a href=\"#case-{id}\">{id}</a></td><td class=\"{cls}\">{res}</td><td>{src}</td>{clip}{ssim}{psnr}{mad}<td class=\"flag\">{flags}</td></tr>\n",
            id = esc(&c.id),
            cls = result_class(c),
            res = result_word(c),
            src = esc(&c.gt_source),
            clip = metric_cell(m.and_then(|m| m.clip), g, Metric::Clip),
            ssim = metric_cell(m.map(|m| m.ssim), g, Metric::Ssim),
            psnr = metric_cell(m.map(|m| m.psnr), g, Metric::Psnr),
            mad = metric_cell(m.map(|m| m.mean_abs_diff), g, Metric::MeanAbsDiff),
            flags = flags(c).join(", "),
        ));
    }
    h.push_str("</table>\n");
}

/// `clip +0.0100, ssim …` of one [`PerMetric`].
fn per_metric_line(p: &PerMetric) -> String {
    Metric::ALL
        .iter()
        .map(|&m| format!("{} {}", m.name(), fmt_margin(p.get(m))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One case: what went wrong, its notes, GT and thresholds, then inputs | output | GT | diff.
fn case_section(h: &mut String, out: &Path, c: &CaseReport) {
    h.push_str(&format!(
        "<section class=\"case\" id=\"case-{id}\"><h2 class=\"{cls}\">{id}: {res}</h2>\n",
        id = esc(&c.id),
        cls = result_class(c),
        res = result_word(c),
    ));
    if let Some(why) = &c.skip_reason {
        h.push_str(&format!("<p>not run: {}</p>\n", esc(why)));
    }
    if let Some(why) = &c.error {
        h.push_str(&format!(
            "<p class=\"fail\">could not run: {}</p>\n",
            esc(why)
        ));
    }
    for f in &c.failures {
        h.push_str(&format!("<p class=\"fail\">{}</p>\n", esc(f)));
    }
    for s in &c.skipped {
        h.push_str(&format!("<p>skipped: {}</p>\n", esc(s)));
    }
    for n in &c.notes {
        h.push_str(&format!("<p>note: {}</p>\n", esc(n)));
    }
    for line in slow_lines(c) {
        h.push_str(&format!("<p class=\"fail\">{}</p>\n", esc(&line)));
    }
    if let Some(t) = &c.target {
        h.push_str(&format!("<p>produced by: {}</p>\n", esc(&target_line(t))));
    }
    h.push_str(&format!(
        "<p>GT: {} {}</p>\n",
        esc(&c.gt_source),
        c.gt_files
            .iter()
            .map(|f| format!("<code>{}</code>", esc(&f.url)))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    if let Some(t) = &c.thresholds {
        h.push_str(&format!(
            "<p>thresholds: clip ≥ {}, ssim ≥ {}, psnr ≥ {}, mean abs diff ≤ {}</p>\n",
            t.clip, t.ssim, t.psnr, t.mean_abs_diff
        ));
    }
    if let Some(m) = &c.margins {
        let near = if c.near_miss { " (near miss)" } else { "" };
        h.push_str(&format!(
            "<p class=\"margins\">margins: {}{near}</p>\n",
            per_metric_line(m)
        ));
    }
    if let Some(d) = &c.deltas {
        let (cls, word) = if c.drifted {
            ("flag", "drifted")
        } else {
            ("", "within tolerance")
        };
        h.push_str(&format!(
            "<p class=\"deltas {cls}\">since the baseline ({word}): {}</p>\n",
            per_metric_line(d)
        ));
    }
    // An edit's input images first, then output | GT | diff.
    for (k, rel) in c.inputs.iter().enumerate() {
        if let Some(uri) = data_uri(&out.join(rel)) {
            let label = format!("input {}", k + 1);
            h.push_str(&format!(
                "<figure class=\"input\"><img src=\"{uri}\" alt=\"{label}\"><figcaption>{label}</figcaption></figure>\n"
            ));
        }
    }
    let dir = out.join("cases").join(&c.id);
    // A drifted case: the baseline's output beside today's (only the copy this run made).
    let baseline = c
        .baseline_output
        .as_ref()
        .map(|_| ("baseline_output.png", "baseline output"));
    for (file, label) in baseline.into_iter().chain([
        ("output.png", "output"),
        ("gt.png", "ground truth"),
        ("diff.png", "|output − GT| ×4"),
    ]) {
        if let Some(uri) = data_uri(&dir.join(file)) {
            h.push_str(&format!(
                "<figure><img src=\"{uri}\" alt=\"{label}\"><figcaption>{label}</figcaption></figure>\n"
            ));
        }
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page that cannot be written (here a folder in its place; on a full disk, no space) leaves
    /// report.json as it was: never `"complete": true` beside a stale page.
    #[test]
    fn report_json_is_written_after_the_page_and_only_if_it_was() {
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(out.path().join("index.html")).unwrap();
        let report = Report::from_cases(Vec::new());
        assert!(report.complete);
        assert!(write_report(out.path(), &report).is_err());
        assert!(!out.path().join("report.json").exists());
    }
}
