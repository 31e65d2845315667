//! Judging one output: its GT found (official → ours → legacy, every probe logged), the image as
//! upstream sees it (a JPEG answer after PIL's decode), the metrics against the case's thresholds.

use std::time::Instant;

use anyhow::Context;
use cases::Case;
use gt_resolver::Resolution;
use image::RgbImage;
use image_io::JpegOptions;
use metrics::{CaseThresholds, FrameMetrics, ImageMetrics, Media, PixelMetrics};

use super::explain::{self, query_for};
use super::margins::{NearMiss, margins};
use super::render;
use super::report::{CaseReport, GtFileReport, ProbeReport};
use super::settings::{Clip, Compare, Settings};
use super::target::Produced;

/// Compare a produced image with its GT and give the verdict.
pub(super) fn compare(
    case: &Case,
    g: Produced,
    resolution: Resolution,
    c: &Compare,
    s: &Settings,
) -> anyhow::Result<CaseReport> {
    let t_gt = Instant::now();
    let mut report = CaseReport::for_run(case, s.cuda_layout);
    describe_output(&mut report, &g);
    record_resolution(&mut report, &resolution);
    // What upstream compares: the server's encoded output as PIL decodes it. For jpg that is our
    // image after PIL's save(quality=75) and decode, not its raw pixels; a server's answer
    // already is that (`raw_answer`), and is kept as it came.
    let raw = g.raw_answer;
    let image = if case.output_format == "jpg" && !raw {
        report.notes.push(explain::comparison(case));
        jpeg_as_pil_sees_it(&g.image)?
    } else {
        g.image
    };
    let found = match resolution.into_found(&query_for(case, s.platform)) {
        Ok(f) => f,
        Err(e) => {
            render::write_case_images(&s.out, &case.id, &image, None, raw)?;
            report.failures.push(format!("GT not found: {e}"));
            report.failures.push(format!(
                "generate GT for this case with: cargo xtask consistency --gen-gt --case {} --out DIR \
                 (writes DIR/gt/sglang_generated/ and a manifest)",
                case.id
            ));
            report.timings.gt = t_gt.elapsed().as_secs_f64();
            return Ok(report);
        }
    };
    let file = found.files.first().context("GT resolution with no file")?;
    let gt = metrics::load_rgb(&c.resolver.fetch(file)?)?;
    report.timings.gt = t_gt.elapsed().as_secs_f64();

    let t_m = Instant::now();
    render::write_case_images(&s.out, &case.id, &image, Some(&gt), raw)?;
    judge(
        &mut report,
        case,
        (&image, &gt),
        &file.url,
        c,
        &s.judging.near_miss,
    )?;
    report.timings.metrics = t_m.elapsed().as_secs_f64();
    Ok(report)
}

/// What was produced: the saved files, the Layered layers and caption, the stage times.
fn describe_output(report: &mut CaseReport, g: &Produced) {
    report.output = Some(g.output_rel.clone());
    report.inputs = g.inputs_rel.clone();
    if !g.layers_rel.is_empty() {
        report.notes.push(format!(
            "Layered: the first of {} RGBA layers is compared with its alpha dropped (upstream's \
             official GT and server test convert it to RGB), every layer is in {}",
            g.layers_rel.len(),
            g.layers_rel.join(", ")
        ));
    }
    if let Some(c) = &g.caption {
        report
            .notes
            .push(format!("the empty prompt was captioned: {c:?}"));
    }
    report.timings = g.timings.clone();
}

/// Where GT was looked for and what was found.
fn record_resolution(report: &mut CaseReport, resolution: &Resolution) {
    report.probes = resolution
        .probes
        .iter()
        .map(|p| ProbeReport {
            url: p.url.clone(),
            answer: p.answer.as_str().to_string(),
            attempts: p.attempts,
        })
        .collect();
    report.notes.extend(resolution.notes.iter().cloned());
    if let Some(source) = resolution.source {
        report.gt_source = source.as_str().to_string();
    }
    report.gt_files = resolution
        .files
        .iter()
        .map(|f| GtFileReport {
            name: f.name.clone(),
            url: f.url.clone(),
        })
        .collect();
}

/// The metrics of `image` against `gt` (from `gt_url`) held to the case's thresholds, with the
/// margins and whether a pass was a near miss.
fn judge(
    report: &mut CaseReport,
    case: &Case,
    (image, gt): (&RgbImage, &RgbImage),
    gt_url: &str,
    c: &Compare,
    near_miss: &NearMiss,
) -> anyhow::Result<()> {
    let pixel = match PixelMetrics::compute(image, gt) {
        Ok(p) => p,
        Err(e) => {
            report
                .failures
                .push(format!("cannot compare with {gt_url}: {e}"));
            return Ok(());
        }
    };
    let clip = match &c.clip {
        Clip::Ready(enc) => Some(enc.similarity(image, gt)?),
        Clip::Off => {
            report.skipped.push("clip: --no-clip".into());
            None
        }
        Clip::Unavailable(why) => {
            report.skipped.push(format!("clip: {why}"));
            None
        }
    };
    let frames = vec![FrameMetrics {
        frame: "image".into(),
        metrics: ImageMetrics::new(pixel, clip),
    }];
    let th: CaseThresholds = c.thresholds.for_case(&case.id, Media::Image);
    let verdict = th.check(&frames);
    report
        .failures
        .extend(verdict.failures.iter().map(|f| f.to_string()));
    let clip_unavailable = matches!(c.clip, Clip::Unavailable(_));
    report.passed = verdict.failures.is_empty() && verdict.frames > 0 && !clip_unavailable;
    if let Clip::Unavailable(why) = &c.clip {
        report
            .failures
            .push(format!("clip not computed ({why}): not a pass"));
    }
    if !report.passed {
        report.failures.push(format!("GT used: {gt_url}"));
    }
    let m = margins(&frames, &th);
    let near = near_miss.near(&m, &th);
    report.near_miss = report.passed && !near.is_empty();
    if report.near_miss {
        let names: Vec<&str> = near.iter().map(|m| m.name()).collect();
        report.notes.push(format!(
            "near miss: {} passed by less than --near-miss",
            names.join(", ")
        ));
    }
    report.margins = Some(m);
    report.metrics = frames;
    report.thresholds = Some(th.into());
    Ok(())
}

/// `img` encoded as PIL's `save(quality=75)` and decoded back as PIL decodes it.
fn jpeg_as_pil_sees_it(img: &RgbImage) -> anyhow::Result<RgbImage> {
    let back =
        image_io::jpeg_round_trip(&image_io::Image::from(img.clone()), JpegOptions::default())
            .context("JPEG round trip of the output")?
            .convert(image_io::Mode::Rgb)?;
    let (w, h) = back.size();
    RgbImage::from_raw(w, h, back.into_bytes())
        .context("JPEG round trip gave a buffer of the wrong size")
}
