//! `cargo xtask consistency`: run cases end to end, resolve GT, compare, report.
//!
//! Every case runs whatever happened to the previous one; failures are collected. Exit 0 when
//! every case passed, 1 when some case failed (or could not be checked: no GT, no CLIP), 2 when
//! the run could not start (bad case file, bad options, a threshold file with an impossible value)
//! or some case could not run (an impossible size, latents of the wrong shape, a model that does
//! not load: listed in the report with its `error`, the other cases still run). The report is
//! replaced at the start and rewritten after every case with `"complete": false` until the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};
use image_io::JpegOptions;
use metrics::{
    CaseThresholds, ClipImageEncoder, FrameMetrics, ImageMetrics, Media, PixelMetrics, Thresholds,
};
use pipeline::case::{self, Case, Suite};
use pipeline::{Output, Pipeline};
use sha2::{Digest, Sha256};
use torch_rng::CudaPlatform;

use crate::consistency::report::{self, CaseReport, GtFileReport, ProbeReport, Report, Timings};
use crate::consistency::{cases, resolve};
use crate::platform::{RunPlatform, gt_case_id};
use crate::util::{
    generate_with_progress, install_ctrlc, repo_root, save_image, save_rgba_png, write_atomic,
};
use crate::{backend, with_backend};

/// The embedded default: the tiny official suites, text to image then edit.
const DEFAULT_CASE_FILES: &[&str] = &[
    "testdata/cases/tiny.toml",
    "testdata/cases/tiny_edit.toml",
    "testdata/cases/tiny_layered.toml",
];

/// Options of `cargo xtask consistency`. With no arguments it runs the tiny official cases in
/// testdata/ on the CPU against the official GT in testdata/ (the embedded default).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub merge: Option<Sub>,
    /// Case file (TOML). Default: testdata/cases/tiny.toml, tiny_edit.toml and tiny_layered.toml.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Run only these case ids (repeatable).
    #[arg(long = "case")]
    pub case: Vec<String>,
    /// GT root: an http(s) base or a local folder holding official_generated/ and sglang_generated/.
    /// Default: the case file's `gt_root`; with the default cases, testdata/gt.
    #[arg(long)]
    pub gt_root: Option<String>,
    /// A local GT folder that replaces remote lookup (as SGLANG_CONSISTENCY_GT_DIR).
    #[arg(long, env = "SGLANG_CONSISTENCY_GT_DIR")]
    pub gt_dir: Option<PathBuf>,
    /// Allow a GT root on a floating branch (e.g. main) instead of a pinned commit.
    #[arg(long)]
    pub allow_floating: bool,
    /// Threshold file (upstream's consistency_threshold JSON format). A `<platform>.json` next to it
    /// is laid over it, as upstream does with h100.json + <platform>.json. Default: the case
    /// file's `thresholds`, else the built-in defaults.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Platform folder for GT, threshold overlay and CUDA noise layout (h100, b200, 5090 or an
    /// alias: sm90, hopper, sm100, blackwell, sm120, rtx5090). Default: detected from the CUDA
    /// device (compute capability 12.x → 5090, 10.x → b200, else h100); none on the CPU.
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
    /// Load no model: say which GT file each case (skipped ones too) would be compared with, and
    /// why. Exit 0 when every case has GT, 1 when some has none, 2 when the lookup cannot run.
    #[arg(long, conflicts_with = "gen_gt")]
    pub resolve_only: bool,
    /// With --resolve-only: print JSON instead of the table.
    #[arg(long, requires = "resolve_only")]
    pub json: bool,
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
    platform: Platform,
    /// The CUDA generator's launch layout for `generator = "cuda"` cases (the platform's GPU).
    cuda_layout: CudaPlatform,
    device_label: String,
    mode: Mode,
    /// Downloads the input images cases give as URLs (through the GT files' verified cache).
    inputs: Resolver,
    /// The report's `platform` line (its partial versions carry it too).
    report_platform: String,
}

/// What a run does with the images it generates.
enum Mode {
    /// `--gen-gt`: write them as GT (tree layout + manifest); nothing is compared.
    GenGt,
    /// Compare each with its GT and hold it to its thresholds.
    Compare(Box<Compare>),
}

struct Compare {
    resolver: Resolver,
    thresholds: Thresholds,
    clip: Clip,
}

/// The CLIP metric for the whole run.
enum Clip {
    Ready(Box<ClipImageEncoder<backend::Cpu>>),
    /// `--no-clip`: not computed, reported as skipped, and no obstacle to a pass.
    Off,
    /// Wanted but the model could not be loaded: reported, and no case can pass without it.
    Unavailable(String),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Sub::Merge { inputs, out }) = &args.merge {
        return merge(inputs, out);
    }
    let root = repo_root();
    let embedded = args.cases.is_none();
    let (suite, case_file) = match &args.cases {
        Some(f) => (case::load_suite(f)?, f.display().to_string()),
        None => (default_suite(&root)?, DEFAULT_CASE_FILES.join(" + ")),
    };
    let mut all = suite.cases.clone();
    if !args.case.is_empty() {
        for id in &args.case {
            if !all.iter().any(|c| &c.id == id) {
                bail!("--case {id}: no such case in {case_file}");
            }
        }
        all.retain(|c| args.case.contains(&c.id));
    }
    if let Some(p) = &args.partition {
        all = cases::partition(all, p)?;
    }
    let (device, precision) = backend::parse(&args.device, &args.dtype)?;
    let run_platform = RunPlatform::decide(args.platform.as_deref(), &args.device)?;
    let platform = run_platform.effective();
    if args.resolve_only {
        return resolve_only(&args, &root, embedded, &suite, &all, &run_platform);
    }
    let mode = if args.gen_gt {
        Mode::GenGt
    } else {
        Mode::Compare(Box::new(compare_settings(
            &args, &root, embedded, &suite, platform,
        )?))
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let settings = Settings {
        out: args.out.clone(),
        platform,
        cuda_layout: run_platform.cuda_layout(),
        device_label: format!("{}/{}", args.device, args.dtype),
        mode,
        inputs: input_fetcher(&args)?,
        report_platform: run_platform.to_string(),
    };
    // A previous run's report must not stand next to this run's images: replace it at once with
    // an empty partial one (`"complete": false`), rewritten after every case.
    start_report(&settings)?;
    // Listed with `skip = "reason"`: reported, never run, never silently dropped.
    let (skipped, runnable): (Vec<Case>, Vec<Case>) =
        all.into_iter().partition(|c| c.skip.is_some());
    eprintln!(
        "running {} case(s) from {} on {}, platform {run_platform}{}",
        runnable.len(),
        case_file,
        settings.device_label,
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; {} listed case(s) skipped", skipped.len())
        }
    );
    let mut reports = with_backend!(device, precision, |B, dev| run_cases::<B>(
        &runnable, &settings, &dev
    ))?;
    for case in &skipped {
        let r = CaseReport::skipped(case, case.skip.as_deref().unwrap_or_default());
        print_case_line(&r, matches!(settings.mode, Mode::GenGt));
        reports.push(r);
    }
    if let Mode::GenGt = settings.mode {
        return Ok(if reports.iter().any(|r| r.error.is_some()) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut report = Report::from_cases(reports);
    report.platform = run_platform.to_string();
    report::write_report(&settings.out, &report)?;
    print_table(&report);
    eprintln!(
        "report: {} and {}",
        settings.out.join("report.json").display(),
        settings.out.join("index.html").display()
    );
    Ok(exit_code(&report))
}

/// 2 when some case could not run (an error of the run), else 1 when some case failed, else 0.
fn exit_code(report: &Report) -> ExitCode {
    if report.errors > 0 {
        ExitCode::from(2)
    } else if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The start of a run: the previous report in the output folder is replaced by an empty partial
/// one (a comparing run) or removed (`--gen-gt`, which writes none).
fn start_report(s: &Settings) -> anyhow::Result<()> {
    match s.mode {
        Mode::Compare(_) => write_partial_report(s, &[]),
        Mode::GenGt => {
            for name in ["report.json", "index.html"] {
                let p = s.out.join(name);
                if p.exists() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing the previous {}", p.display()))?;
                }
            }
            Ok(())
        }
    }
}

/// The report so far, marked `"complete": false` (JSON and HTML, each written atomically), so
/// that a run stopped at any point leaves a true partial report.
fn write_partial_report(s: &Settings, so_far: &[CaseReport]) -> anyhow::Result<()> {
    let mut report = Report::from_cases(so_far.to_vec());
    report.platform = s.report_platform.clone();
    report.complete = false;
    report::write_report(&s.out, &report)
}

/// A case that could not run (its values, its model, its generation): an error of the run (exit
/// 2), reported with its reason, never a failed comparison.
#[derive(Debug)]
struct CouldNotRun(anyhow::Error);

impl std::fmt::Display for CouldNotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for CouldNotRun {}

fn could_not_run(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(CouldNotRun(e))
}

/// The threshold file a run uses (`--thresholds`, else the suite's) and the `<platform>.json`
/// overlay next to it, as upstream lays `{platform}.json` over `h100.json`.
fn threshold_files(
    args: &Args,
    suite: &Suite,
    platform: Platform,
) -> Option<(PathBuf, Option<PathBuf>)> {
    let base = args
        .thresholds
        .clone()
        .or_else(|| suite.thresholds.clone())?;
    let overlay = base.with_file_name(format!("{}.json", platform.as_str()));
    let overlay = (overlay != base && overlay.is_file()).then_some(overlay);
    Some((base, overlay))
}

/// The GT resolver of a run: `--gt-root`, else the suite's `gt_root`, else (default cases)
/// testdata/gt; `--gt-dir` / SGLANG_CONSISTENCY_GT_DIR replaces them all.
fn gt_resolver(
    args: &Args,
    root: &Path,
    embedded: bool,
    suite: &Suite,
) -> anyhow::Result<(Resolver, Option<GtRoot>)> {
    let gt_root = args
        .gt_root
        .clone()
        .or_else(|| suite.gt_root.clone())
        .or_else(|| embedded.then(|| root.join("testdata/gt").to_string_lossy().into_owned()));
    let mut b = Resolver::builder()
        .local_override(args.gt_dir.clone())
        .offline(args.offline)
        .progress(true);
    let parsed = match &gt_root {
        Some(r) => {
            let parsed = GtRoot::parse(r, args.allow_floating)?;
            b = b.root(&parsed);
            Some(parsed)
        }
        None if args.gt_dir.is_some() => None,
        None => bail!(
            "no ground truth given: pass --gt-root URL|DIR (a folder or http(s) base holding \
             official_generated/ and sglang_generated/) or --gt-dir DIR, or give the case file a \
             gt_root"
        ),
    };
    Ok((b.build()?, parsed))
}

/// Thresholds, the GT resolver and the CLIP model of a comparing run.
fn compare_settings(
    args: &Args,
    root: &Path,
    embedded: bool,
    suite: &Suite,
    platform: Platform,
) -> anyhow::Result<Compare> {
    let thresholds = match threshold_files(args, suite, platform) {
        None => Thresholds::builtin(),
        Some((base, overlay)) => Thresholds::load(&base, overlay.as_deref())?,
    };
    // A misspelt key leaves the default threshold in force: say so before the run.
    for w in thresholds.warnings() {
        eprintln!("warning: {w}");
    }
    let (resolver, _) = gt_resolver(args, root, embedded, suite)?;

    let clip = if args.no_clip {
        Clip::Off
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
            Ok(enc) => Clip::Ready(Box::new(enc)),
            Err(e) => {
                eprintln!("warning: CLIP cannot be computed, so no case can pass: {e}");
                Clip::Unavailable(e.to_string())
            }
        }
    };
    Ok(Compare {
        resolver,
        thresholds,
        clip,
    })
}

/// `--resolve-only`: resolve every selected case (skipped ones too) and say which GT file it
/// would be compared with and why; no model is loaded.
fn resolve_only(
    args: &Args,
    root: &Path,
    embedded: bool,
    suite: &Suite,
    cases: &[Case],
    run_platform: &RunPlatform,
) -> anyhow::Result<ExitCode> {
    let platform = run_platform.effective();
    let (resolver, gt_root) = gt_resolver(args, root, embedded, suite)?;
    let root_url = match (&args.gt_dir, &gt_root) {
        (None, Some(r)) => Some(r.base.url()),
        _ => None,
    };
    let queries: Vec<GtQuery> = cases.iter().map(|c| query_for(c, platform)).collect();
    let resolutions = resolver.resolve_many(&queries);
    let mut rows = Vec::new();
    for ((case, query), resolution) in cases.iter().zip(&queries).zip(resolutions) {
        let resolution = resolution.with_context(|| format!("resolving GT for {}", case.id))?;
        rows.push(resolve::explain(
            case,
            query,
            &resolution,
            root_url.as_deref(),
        ));
    }
    let thresholds = match threshold_files(args, suite, platform) {
        None => "built-in defaults (upstream's code defaults)".to_string(),
        Some((base, None)) => base.display().to_string(),
        Some((base, Some(o))) => format!("{} overlaid with {}", base.display(), o.display()),
    };
    let report = resolve::ResolveReport {
        gt_root: match (&args.gt_dir, &gt_root) {
            (Some(d), _) => format!("{} (local override)", d.display()),
            (None, Some(r)) => r.base.url(),
            (None, None) => String::new(),
        },
        revision: gt_root.and_then(|r| r.revision),
        platform: platform.to_string(),
        platform_why: run_platform.why.clone(),
        thresholds,
        cases: rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        resolve::print(&report);
    }
    Ok(if report.cases.iter().all(|c| c.file.is_some()) {
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
    let mut generator = Generator::<B>::new(dev, s.cuda_layout, &s.inputs);
    match &s.mode {
        Mode::GenGt => {
            let mut manifest = Vec::new();
            let reports = each_case(all.iter().map(|c| (c, ())), s, |case, ()| {
                let g = generator.generate(case, &s.out).map_err(could_not_run)?;
                manifest.push(write_gt(case, &g, s).map_err(could_not_run)?);
                Ok(gt_written_report(case, &g, s))
            });
            write_manifest(s, &manifest)?;
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
                all.iter().zip(resolutions),
                s,
                |case, resolution| {
                    let g = generator.generate(case, &s.out).map_err(could_not_run)?;
                    let mut report = compare(case, g, resolution?, c, s)?;
                    report.timings.gt += gt_probe_time;
                    Ok(report)
                },
            ))
        }
    }
}

/// Run `f` on every case under one progress bar: a case that fails becomes a failed report and
/// the run goes on.
fn each_case<'c, T>(
    items: impl ExactSizeIterator<Item = (&'c Case, T)>,
    s: &Settings,
    mut f: impl FnMut(&'c Case, T) -> anyhow::Result<CaseReport>,
) -> Vec<CaseReport> {
    let gen_gt = matches!(s.mode, Mode::GenGt);
    let overall = indicatif::ProgressBar::new(items.len() as u64);
    overall.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} cases")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    overall.set_prefix("consistency");
    let mut reports = Vec::new();
    for (case, item) in items {
        let report = f(case, item).unwrap_or_else(|e| match e.downcast::<CouldNotRun>() {
            Ok(CouldNotRun(e)) => CaseReport {
                error: Some(format!("{e:#}")),
                ..case_report(case, s)
            },
            Err(e) => {
                let mut r = case_report(case, s);
                r.failures.push(format!("{e:#}"));
                r
            }
        });
        overall.suspend(|| print_case_line(&report, gen_gt));
        overall.inc(1);
        reports.push(report);
        if !gen_gt && let Err(e) = write_partial_report(s, &reports) {
            overall.suspend(|| eprintln!("warning: cannot update the partial report: {e:#}"));
        }
    }
    overall.finish_and_clear();
    reports
}

/// Loads each model once for the run, with one Ctrl-C handler shared by every pipeline.
struct Generator<'d, B: Backend> {
    pipes: HashMap<String, Result<Pipeline<B>, String>>,
    cancel: Arc<AtomicBool>,
    device: &'d B::Device,
    /// The CUDA generator layout of `generator = "cuda"` cases.
    cuda_layout: CudaPlatform,
    /// Fetches input images given as URLs.
    inputs: &'d Resolver,
}

/// One case's generated image, saved under `OUT/cases/<id>/output.<ext>`.
struct Generated<B: Backend> {
    out: Output<B>,
    timings: Timings,
    /// The saved output, relative to the output folder.
    output_rel: String,
    /// The input images as the pipeline read them (`cases/<id>/input_<k>.png`), relative to the
    /// output folder.
    inputs_rel: Vec<String>,
    /// Layered: every RGBA layer (`cases/<id>/layer_<k>.png`), relative to the output folder.
    layers_rel: Vec<String>,
}

impl<'d, B: Backend> Generator<'d, B> {
    fn new(device: &'d B::Device, cuda_layout: CudaPlatform, inputs: &'d Resolver) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        install_ctrlc(cancel.clone());
        Self {
            pipes: HashMap::new(),
            cancel,
            device,
            cuda_layout,
            inputs,
        }
    }

    fn generate(&mut self, case: &Case, out_dir: &Path) -> anyhow::Result<Generated<B>> {
        // Sizes, steps and scales are refused before the case's model is loaded.
        case.validate()?;
        // Input images given as URLs come through the GT files' verified cache (offline: only
        // from it), before any model is loaded.
        let inputs = self.inputs;
        let images = case.load_images(&mut |url| fetch_input(inputs, url))?;
        // The inputs as the pipeline reads them, for the report.
        let mut inputs_rel = Vec::with_capacity(images.len());
        for (k, img) in images.iter().enumerate() {
            let rel = format!("cases/{}/input_{k}.png", case.id);
            save_image(&img.to_rgb(), &out_dir.join(&rel))?;
            inputs_rel.push(rel);
        }
        let request = case.request_on(self.cuda_layout).images(images);
        let t_load = Instant::now();
        let pipe = self.pipes.entry(case.model.clone()).or_insert_with(|| {
            Pipeline::<B>::load(&case.model, self.device)
                .map(|p| p.with_cancel_flag(self.cancel.clone()))
                .map_err(|e| format!("cannot load the pipeline {}: {e}", case.model))
        });
        let load = t_load.elapsed().as_secs_f64();
        let pipe = pipe.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = generate_with_progress(pipe, &request, &case.id)?;
        let timings = Timings {
            load,
            text_encoder: out.timings.text_encoder.as_secs_f64(),
            image_encoder: out.timings.image_encoder.as_secs_f64(),
            denoise: out.timings.denoise.as_secs_f64(),
            decode: out.timings.decode.as_secs_f64(),
            ..Timings::default()
        };
        let output_rel = format!("cases/{}/output.{}", case.id, case.output_format);
        // Layered: `out.image` is the first layer without its alpha, what upstream compares;
        // every RGBA layer is kept beside it.
        save_image(&out.image, &out_dir.join(&output_rel))?;
        let mut layers_rel = Vec::with_capacity(out.layers.len());
        for (k, layer) in out.layers.iter().enumerate() {
            let rel = format!("cases/{}/layer_{k}.png", case.id);
            save_rgba_png(layer, &out_dir.join(&rel))?;
            layers_rel.push(rel);
        }
        Ok(Generated {
            out,
            timings,
            output_rel,
            inputs_rel,
            layers_rel,
        })
    }
}

/// The embedded default: every suite of [`DEFAULT_CASE_FILES`] in one (suite-level keys from the
/// first; a case id may appear once).
fn default_suite(root: &Path) -> anyhow::Result<Suite> {
    let mut files = DEFAULT_CASE_FILES.iter();
    let first = files.next().context("no default case file")?;
    let mut suite = case::load_suite(&root.join(first))?;
    for f in files {
        for c in case::load_suite(&root.join(f))?.cases {
            if suite.cases.iter().any(|x| x.id == c.id) {
                bail!("case id {} appears in two default case files", c.id);
            }
            suite.cases.push(c);
        }
    }
    Ok(suite)
}

/// The GT files' verified download cache, for input images (`--offline`: served from it only).
fn input_fetcher(args: &Args) -> anyhow::Result<Resolver> {
    Ok(Resolver::builder()
        .offline(args.offline)
        .progress(true)
        .build_for_downloads()?)
}

/// A local copy of an input image URL.
fn fetch_input(inputs: &Resolver, url: &str) -> Result<PathBuf, String> {
    inputs.fetch_url(url).map_err(|e| e.to_string())
}

/// The GT lookup of a case: under its upstream alias (`CONSISTENCY_GT_CASE_ALIASES`), for its
/// num_gpus and output format, platform folder first.
fn query_for(case: &Case, platform: Platform) -> GtQuery {
    GtQuery::image(
        gt_case_id(&case.id),
        case.num_gpus,
        Some(&case.output_format),
        platform,
    )
}

/// A not-yet-passed report whose noise description names the run's CUDA layout.
fn case_report(case: &Case, s: &Settings) -> CaseReport {
    let latents = case.initial_latents_on(s.cuda_layout);
    let mut r = CaseReport::new(case);
    r.latents = latents.describe();
    r.generator = latents.generator();
    if !case.defaulted.is_empty() {
        let from = case
            .preset
            .map_or_else(|| "diffusers".to_string(), |p| p.class_name().to_string());
        r.notes.push(format!(
            "defaults from {from}: {}",
            case.defaulted.join(", ")
        ));
    }
    r
}

/// `--gen-gt`: the image as `OUT/gt/sglang_generated/<id>_<n>gpu.<ext>`, and its manifest entry.
fn write_gt<B: Backend>(
    case: &Case,
    g: &Generated<B>,
    s: &Settings,
) -> anyhow::Result<serde_json::Value> {
    let out = &s.out;
    let name = gt_file_name(case);
    let path = out.join("gt/sglang_generated").join(&name);
    save_image(&g.out.image, &path)?;
    let bytes = std::fs::read(&path)?;
    Ok(serde_json::json!({
        "case": case.id,
        "file": name,
        "sha256": hex::encode(Sha256::digest(&bytes)),
        "prompt": case.prompt,
        "negative_prompt": case.negative_prompt,
        "true_cfg_scale": case.true_cfg_scale,
        "guidance_scale": case.guidance_scale,
        "height": g.out.height,
        "width": g.out.width,
        "num_inference_steps": case.num_inference_steps,
        "seed": case.seed,
        "generator": case.initial_latents_on(s.cuda_layout).generator(),
        "latents_sha256": case.latents.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| hex::encode(Sha256::digest(b))),
        "model": case.model,
        "model_revision": model_revision(&case.model),
    }))
}

fn gt_file_name(case: &Case) -> String {
    format!("{}_{}gpu.{}", case.id, case.num_gpus, case.output_format)
}

fn gt_written_report<B: Backend>(case: &Case, g: &Generated<B>, s: &Settings) -> CaseReport {
    let name = gt_file_name(case);
    let url = s.out.join("gt/sglang_generated").join(&name);
    CaseReport {
        passed: true,
        gt_source: "generated".into(),
        gt_files: vec![GtFileReport {
            name,
            url: url.display().to_string(),
        }],
        timings: g.timings.clone(),
        output: Some(g.output_rel.clone()),
        inputs: g.inputs_rel.clone(),
        ..case_report(case, s)
    }
}

/// Compare a generated image with its GT (official → ours → legacy, every probe logged) and
/// give the verdict.
fn compare<B: Backend>(
    case: &Case,
    g: Generated<B>,
    resolution: gt_resolver::Resolution,
    c: &Compare,
    s: &Settings,
) -> anyhow::Result<CaseReport> {
    let t_gt = Instant::now();
    let mut report = case_report(case, s);
    report.output = Some(g.output_rel);
    report.inputs = g.inputs_rel;
    if !g.layers_rel.is_empty() {
        report.notes.push(format!(
            "Layered: the first of {} RGBA layers is compared with its alpha dropped (upstream's \
             official GT and server test convert it to RGB), every layer is in {}",
            g.layers_rel.len(),
            g.layers_rel.join(", ")
        ));
    }
    if let Some(c) = &g.out.caption {
        report
            .notes
            .push(format!("the empty prompt was captioned: {:?}", c.text));
    }
    report.timings = g.timings;
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
    // What upstream compares: the server's encoded output as PIL decodes it. For jpg that is our
    // image after PIL's save(quality=75) and decode, not its raw pixels.
    let decoded;
    let image = if case.output_format == "jpg" {
        decoded = jpeg_as_pil_sees_it(&g.out.image)?;
        report.notes.push(resolve::comparison(case));
        &decoded
    } else {
        &g.out.image
    };
    let found = match resolution.into_found(&query_for(case, s.platform)) {
        Ok(f) => f,
        Err(e) => {
            report::write_case_images(&s.out, &case.id, image, None)?;
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
    report::write_case_images(&s.out, &case.id, image, Some(&gt))?;
    let pixel = match PixelMetrics::compute(image, &gt) {
        Ok(p) => p,
        Err(e) => {
            report
                .failures
                .push(format!("cannot compare with {}: {e}", file.url));
            return Ok(report);
        }
    };
    let clip = match &c.clip {
        Clip::Ready(enc) => Some(enc.similarity(image, &gt)?),
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
        report.failures.push(format!("GT used: {}", file.url));
    }
    report.metrics = frames;
    report.thresholds = Some(th.into());
    report.timings.metrics = t_m.elapsed().as_secs_f64();
    Ok(report)
}

/// `img` encoded as PIL's `save(quality=75)` and decoded back as PIL decodes it.
fn jpeg_as_pil_sees_it(img: &image::RgbImage) -> anyhow::Result<image::RgbImage> {
    let back =
        image_io::jpeg_round_trip(&image_io::Image::from(img.clone()), JpegOptions::default())
            .context("JPEG round trip of the output")?
            .convert(image_io::Mode::Rgb)?;
    let (w, h) = back.size();
    image::RgbImage::from_raw(w, h, back.into_bytes())
        .context("JPEG round trip gave a buffer of the wrong size")
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
    write_atomic(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
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
        "{} passed, {} failed ({} could not run), {} skipped",
        r.passed, r.failed, r.errors, r.skipped
    );
    if !r.complete {
        println!("partial: not every case has run");
    }
}

/// Merge partitioned runs: concatenate their cases (a case id must not appear twice), copy their
/// per-case images, and write one report.
fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
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
    report::write_report(out, &report)?;
    print_table(&report);
    Ok(exit_code(&report))
}
