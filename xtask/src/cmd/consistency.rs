//! `cargo xtask consistency`: run cases end to end, resolve GT, compare, report.
//!
//! Every case runs whatever happened to the previous one; failures are collected. Exit 0 when
//! every case passed, 1 when some case failed (or could not be checked), 2 when the run could not
//! start (bad case file, bad options, unreadable threshold file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};
use metrics::{
    CaseThresholds, ClipImageEncoder, FrameMetrics, ImageMetrics, Media, PixelMetrics, Thresholds,
};
use pipeline::{InitialLatents, QwenImagePipeline, Request};
use sha2::{Digest, Sha256};

use super::fixtures::repo_root;
use super::generate::{generate_with_progress, install_ctrlc};
use crate::consistency::cases::{self, Case};
use crate::consistency::report::{self, CaseReport, GtFileReport, ProbeReport, Report, Timings};
use crate::{backend, with_backend};

/// Options of `cargo xtask consistency`. With no arguments it runs the tiny official cases in
/// testdata/ on the CPU against the official GT in testdata/ (the embedded default).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub merge: Option<Sub>,
    /// Case file (TOML). Default: testdata/cases/tiny.toml.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Run only these case ids (repeatable).
    #[arg(long = "case")]
    pub case: Vec<String>,
    /// GT root: an http(s) base or a local folder holding official_generated/ and sglang_generated/.
    /// Default with the default cases: testdata/gt.
    #[arg(long)]
    pub gt_root: Option<String>,
    /// A local GT folder that replaces remote lookup (as SGLANG_CONSISTENCY_GT_DIR).
    #[arg(long, env = "SGLANG_CONSISTENCY_GT_DIR")]
    pub gt_dir: Option<PathBuf>,
    /// Allow a GT root on a floating branch (e.g. main) instead of a pinned commit.
    #[arg(long)]
    pub allow_floating: bool,
    /// Threshold file (upstream's consistency_threshold JSON format). A `<platform>.json` next to it
    /// is laid over it, as upstream does with h100.json + <platform>.json.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Platform folder for GT and threshold overlays (h100, b200, 5090 or an alias).
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM")]
    pub platform: Option<String>,
    /// Device to generate on.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type on the device (f32 on the CPU; f32 or bf16 on CUDA).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Output folder for images, report.json and index.html.
    #[arg(long, default_value = "consistency-out")]
    pub out: PathBuf,
    /// Run the K-th of N stable partitions of the cases (1-based), e.g. 2/4.
    #[arg(long)]
    pub partition: Option<String>,
    /// Write our outputs as GT (tree layout + manifest under OUT/gt) instead of comparing.
    #[arg(long)]
    pub gen_gt: bool,
    /// Serve GT only from the cache and local folders.
    #[arg(long)]
    pub offline: bool,
    /// Skip the CLIP metric (reported as skipped, never as a pass).
    #[arg(long)]
    pub no_clip: bool,
    /// CLIP model for the similarity metric: a folder or an HF repo id. Default:
    /// openai/clip-vit-large-patch14 (the tiny CLIP in testdata for the default cases).
    #[arg(long)]
    pub clip_model: Option<String>,
}

/// `cargo xtask consistency merge OUT1 OUT2 …`
#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Merge the reports of several partitioned runs into one report.
    Merge {
        /// Output folders of the runs to merge.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, default_value = "consistency-out")]
        out: PathBuf,
    },
}

struct Settings {
    out: PathBuf,
    resolver: Option<Resolver>,
    platform: Platform,
    thresholds: Thresholds,
    clip: ClipState,
    gen_gt: bool,
    device_label: String,
}

enum ClipState {
    Ready(Box<ClipImageEncoder<burn::backend::Flex<f32>>>),
    Skipped(String),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Sub::Merge { inputs, out }) = &args.merge {
        return merge(inputs, out);
    }
    let root = repo_root();
    let embedded = args.cases.is_none();
    let case_file = args
        .cases
        .clone()
        .unwrap_or_else(|| root.join("testdata/cases/tiny.toml"));
    let mut all = cases::load(&case_file)?;
    if !args.case.is_empty() {
        for id in &args.case {
            if !all.iter().any(|c| &c.id == id) {
                bail!("--case {id}: no such case in {}", case_file.display());
            }
        }
        all.retain(|c| args.case.contains(&c.id));
    }
    if let Some(p) = &args.partition {
        all = cases::partition(all, p)?;
    }
    let (device, precision) = backend::parse(&args.device, &args.dtype)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::default(),
    };

    let thresholds = match &args.thresholds {
        None => Thresholds::builtin(),
        Some(base) => {
            let overlay = base.with_file_name(format!("{}.json", platform.as_str()));
            let overlay = (overlay != *base && overlay.is_file()).then_some(overlay);
            Thresholds::load(base, overlay.as_deref())?
        }
    };

    let resolver = if args.gen_gt {
        None
    } else {
        let gt_root = args
            .gt_root
            .clone()
            .or_else(|| embedded.then(|| root.join("testdata/gt").to_string_lossy().into_owned()));
        let mut b = Resolver::builder()
            .local_override(args.gt_dir.clone())
            .offline(args.offline)
            .progress(true);
        match &gt_root {
            Some(r) => b = b.root(&GtRoot::parse(r, args.allow_floating)?),
            None if args.gt_dir.is_some() => {}
            None => bail!(
                "no ground truth given: pass --gt-root URL|DIR (a folder or http(s) base holding \
                 official_generated/ and sglang_generated/) or --gt-dir DIR"
            ),
        }
        Some(b.build()?)
    };

    let clip = if args.no_clip || args.gen_gt {
        ClipState::Skipped("--no-clip".into())
    } else {
        let model = args.clip_model.clone().unwrap_or_else(|| {
            if embedded {
                root.join("testdata/metrics/tiny-clip")
                    .to_string_lossy()
                    .into_owned()
            } else {
                metrics::DEFAULT_CLIP_MODEL.to_string()
            }
        });
        match ClipImageEncoder::load(&model, &Default::default()) {
            Ok(enc) => ClipState::Ready(Box::new(enc)),
            Err(e) => {
                eprintln!("warning: CLIP is skipped: {e}");
                ClipState::Skipped(format!("CLIP model {model} unavailable: {e}"))
            }
        }
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let settings = Settings {
        out: args.out.clone(),
        resolver,
        platform,
        thresholds,
        clip,
        gen_gt: args.gen_gt,
        device_label: format!("{}/{}", args.device, args.dtype),
    };
    eprintln!(
        "running {} case(s) from {} on {}",
        all.len(),
        case_file.display(),
        settings.device_label
    );
    let reports = with_backend!(device, precision, |B, dev| run_cases::<B>(
        &all, &settings, &dev
    ))?;
    if settings.gen_gt {
        return Ok(ExitCode::SUCCESS);
    }
    let report = Report::from_cases(reports);
    report::write_report(&settings.out, &report)?;
    print_table(&report);
    eprintln!(
        "report: {} and {}",
        settings.out.join("report.json").display(),
        settings.out.join("index.html").display()
    );
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_cases<B: Backend>(
    all: &[Case],
    s: &Settings,
    dev: &B::Device,
) -> anyhow::Result<Vec<CaseReport>> {
    let mut pipes: HashMap<String, Result<QwenImagePipeline<B>, String>> = HashMap::new();
    let mut reports = Vec::new();
    // Probe every case's GT up front, many cases in parallel (the resolver bounds the pool), so
    // a slow CDN costs one backoff for the whole run rather than one per case.
    let queries: Vec<GtQuery> = all.iter().map(|c| query_for(c, s.platform)).collect();
    let t_gt = Instant::now();
    let mut resolutions: HashMap<String, anyhow::Result<gt_resolver::Resolution>> =
        match &s.resolver {
            Some(r) => all
                .iter()
                .zip(r.resolve_many(&queries))
                .map(|(c, res)| (c.id.clone(), res.map_err(anyhow::Error::from)))
                .collect(),
            None => HashMap::new(),
        };
    let gt_probe_time = t_gt.elapsed().as_secs_f64() / all.len().max(1) as f64;
    let mut manifest = Vec::new();
    let overall = indicatif::ProgressBar::new(all.len() as u64);
    overall.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} cases")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    overall.set_prefix("consistency");
    // One Ctrl-C handler for the whole run, shared by every pipeline it loads.
    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrlc(cancel.clone());
    for case in all {
        let t_load = Instant::now();
        let pipe = pipes.entry(case.model.clone()).or_insert_with(|| {
            QwenImagePipeline::<B>::load(&case.model, dev)
                .map(|p| p.with_cancel_flag(cancel.clone()))
                .map_err(|e| format!("cannot load the pipeline {}: {e}", case.model))
        });
        let load = t_load.elapsed().as_secs_f64();
        let report = match pipe {
            Ok(pipe) => run_case(
                pipe,
                case,
                s,
                load,
                resolutions.remove(&case.id),
                gt_probe_time,
                &mut manifest,
            ),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        let report = report.unwrap_or_else(|e| CaseReport {
            id: case.id.clone(),
            passed: false,
            gt_source: "none".into(),
            gt_files: vec![],
            metrics: vec![],
            thresholds: None,
            failures: vec![format!("{e:#}")],
            skipped: vec![],
            probes: vec![],
            notes: vec![],
            timings: Timings::default(),
            latents: initial_latents(case).describe(),
            generator: initial_latents(case).generator().map(String::from),
            output: None,
        });
        overall.suspend(|| print_case_line(&report, s.gen_gt));
        overall.inc(1);
        reports.push(report);
    }
    overall.finish_and_clear();
    if s.gen_gt {
        write_manifest(s, &manifest)?;
    }
    Ok(reports)
}

fn query_for(case: &Case, platform: Platform) -> GtQuery {
    GtQuery::image(
        case.id.clone(),
        case.num_gpus,
        Some(&case.output_format),
        platform,
    )
}

fn initial_latents(case: &Case) -> InitialLatents {
    InitialLatents::from_options(case.latents.as_deref(), case.seed)
}

fn request(case: &Case) -> Request {
    let mut r = Request::new(case.prompt.clone(), case.height, case.width)
        .steps(case.num_inference_steps)
        .latents(initial_latents(case));
    r.negative_prompt = case.negative_prompt.clone();
    r.true_cfg_scale = case.true_cfg_scale;
    r.guidance_scale = case.guidance_scale;
    r
}

fn run_case<B: Backend>(
    pipe: &QwenImagePipeline<B>,
    case: &Case,
    s: &Settings,
    load: f64,
    resolution: Option<anyhow::Result<gt_resolver::Resolution>>,
    gt_probe_time: f64,
    manifest: &mut Vec<serde_json::Value>,
) -> anyhow::Result<CaseReport> {
    let out = generate_with_progress(pipe, &request(case), &case.id)?;
    let mut timings = Timings {
        load,
        text_encoder: out.timings.text_encoder.as_secs_f64(),
        denoise: out.timings.denoise.as_secs_f64(),
        decode: out.timings.decode.as_secs_f64(),
        ..Timings::default()
    };
    let output_rel = format!("cases/{}/output.{}", case.id, case.output_format);
    super::generate::save_image(&out.image, &s.out.join(&output_rel))?;

    if s.gen_gt {
        let name = format!("{}_{}gpu.{}", case.id, case.num_gpus, case.output_format);
        let path = s.out.join("gt/sglang_generated").join(&name);
        super::generate::save_image(&out.image, &path)?;
        let bytes = std::fs::read(&path)?;
        manifest.push(serde_json::json!({
            "case": case.id,
            "file": name,
            "sha256": hex::encode(Sha256::digest(&bytes)),
            "prompt": case.prompt,
            "negative_prompt": case.negative_prompt,
            "true_cfg_scale": case.true_cfg_scale,
            "guidance_scale": case.guidance_scale,
            "height": out.height,
            "width": out.width,
            "num_inference_steps": case.num_inference_steps,
            "seed": case.seed,
            "generator": initial_latents(case).generator(),
            "latents_sha256": case.latents.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| hex::encode(Sha256::digest(b))),
            "model": case.model,
            "model_revision": model_revision(&case.model),
        }));
        return Ok(CaseReport {
            id: case.id.clone(),
            passed: true,
            gt_source: "generated".into(),
            gt_files: vec![GtFileReport {
                name: name.clone(),
                url: path.display().to_string(),
            }],
            metrics: vec![],
            thresholds: None,
            failures: vec![],
            skipped: vec![],
            probes: vec![],
            notes: vec![],
            timings,
            latents: initial_latents(case).describe(),
            generator: initial_latents(case).generator().map(String::from),
            output: Some(output_rel),
        });
    }

    // Ground truth: official → ours → legacy, every probe logged.
    let t_gt = Instant::now();
    let resolver = s.resolver.as_ref().context("no GT resolver")?;
    let query = query_for(case, s.platform);
    let resolution = match resolution {
        Some(r) => r?,
        None => resolver.resolve(&query)?,
    };
    let probes: Vec<ProbeReport> = resolution
        .probes
        .iter()
        .map(|p| ProbeReport {
            url: p.url.clone(),
            answer: p.answer.as_str().to_string(),
            attempts: p.attempts,
        })
        .collect();
    let notes = resolution.notes.clone();
    let mut base = CaseReport {
        id: case.id.clone(),
        passed: false,
        gt_source: resolution
            .source
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| "none".into()),
        gt_files: resolution
            .files
            .iter()
            .map(|f| GtFileReport {
                name: f.name.clone(),
                url: f.url.clone(),
            })
            .collect(),
        metrics: vec![],
        thresholds: None,
        failures: vec![],
        skipped: vec![],
        probes,
        notes,
        timings: Timings::default(),
        latents: initial_latents(case).describe(),
        generator: initial_latents(case).generator().map(String::from),
        output: Some(output_rel),
    };
    let found = match resolution.into_found(&query) {
        Ok(f) => f,
        Err(e) => {
            report::write_case_images(&s.out, &case.id, &out.image, None)?;
            base.failures.push(format!("GT not found: {e}"));
            base.failures.push(format!(
                "generate GT for this case with: cargo xtask consistency --gen-gt --case {} --out DIR \
                 (writes DIR/gt/sglang_generated/ and a manifest)",
                case.id
            ));
            timings.gt = t_gt.elapsed().as_secs_f64();
            base.timings = timings;
            return Ok(base);
        }
    };
    let file = found.files.first().context("GT resolution with no file")?;
    let gt_path = resolver.fetch(file)?;
    let gt = metrics::load_rgb(&gt_path)?;
    timings.gt = gt_probe_time + t_gt.elapsed().as_secs_f64();

    // Metrics and verdict.
    let t_m = Instant::now();
    report::write_case_images(&s.out, &case.id, &out.image, Some(&gt))?;
    let pixel = match PixelMetrics::compute(&out.image, &gt) {
        Ok(p) => p,
        Err(e) => {
            base.failures
                .push(format!("cannot compare with {}: {e}", file.url));
            base.timings = timings;
            return Ok(base);
        }
    };
    let clip = match &s.clip {
        ClipState::Ready(enc) => Some(enc.similarity(&out.image, &gt)?),
        ClipState::Skipped(why) => {
            base.skipped.push(format!("clip: {why}"));
            None
        }
    };
    let frames = vec![FrameMetrics {
        frame: "image".into(),
        metrics: ImageMetrics::new(pixel, clip),
    }];
    let th: CaseThresholds = s.thresholds.for_case(&case.id, Media::Image);
    let verdict = th.check(&frames);
    base.failures
        .extend(verdict.failures.iter().map(|f| f.to_string()));
    // An explicitly skipped CLIP (--no-clip) does not block a pass; an unavailable one does.
    let clip_blocks = matches!(&s.clip, ClipState::Skipped(w) if w != "--no-clip");
    base.passed = verdict.failures.is_empty() && verdict.frames > 0 && !clip_blocks;
    if clip_blocks {
        base.failures
            .push("clip could not be computed: not a pass".into());
    }
    if !base.passed {
        base.failures.push(format!("GT used: {}", file.url));
    }
    base.metrics = frames;
    base.thresholds = Some(th.into());
    timings.metrics = t_m.elapsed().as_secs_f64();
    base.timings = timings;
    Ok(base)
}

fn model_revision(model: &str) -> String {
    if Path::new(model).is_dir() {
        format!("local folder {model}")
    } else {
        format!("{model}@main")
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn write_manifest(s: &Settings, cases: &[serde_json::Value]) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "generator": "qwen-image-rs",
        "git_commit": git_commit(),
        "device": s.device_label,
        "crate_versions": {"xtask": env!("CARGO_PKG_VERSION")},
        "cases": cases,
    });
    let path = s.out.join("gt/manifest.json");
    report::write_atomic(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    eprintln!(
        "wrote GT for {} case(s) under {} (tree layout: sglang_generated/<case>_<n>gpu.<ext>) and {}",
        cases.len(),
        s.out.join("gt").display(),
        path.display()
    );
    Ok(())
}

fn fmt(v: f64) -> String {
    if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.4}")
    }
}

fn print_case_line(c: &CaseReport, gen_gt: bool) {
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
}

fn print_table(r: &Report) {
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
            if c.passed { "PASS" } else { "FAIL" },
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
    println!("{} passed, {} failed", r.passed, r.failed);
}

/// Merge partitioned runs: concatenate their cases (a case id must not appear twice), copy their
/// per-case images, and write one report.
fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    let mut cases = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for dir in inputs {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let r: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a consistency report", path.display()))?;
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
    let report = Report::from_cases(cases);
    report::write_report(out, &report)?;
    print_table(&report);
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
