//! The command line turned into a run's settings once ([`Settings::from_args`]): the cases
//! selected, the platform, where GT and thresholds come from, the CLIP model; then what a
//! comparing run loads from them ([`Mode`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use cases::{Case, Suite};
use gt_resolver::{GtRoot, Platform, Resolver};
use metrics::{ClipImageEncoder, Thresholds};
use torch_rng::CudaPlatform;

use super::args::{Args, JudgingArgs, ServerArgs};
use super::baseline::{Baseline, DriftTolerance};
use super::margins::NearMiss;
use super::report::{CaseFileInfo, RunInfo, RunTarget};
use super::selection;
use crate::backend;
use crate::platform::RunPlatform;
use crate::prefetch::{InputFetcher, Prefetched};
use crate::util::{
    MAX_TEXT_BYTES, check_gt_download, read_regular_text, repo_root, warn_resolver_settings,
};

/// The embedded default: the tiny official suites, text to image then edit then Layered.
const DEFAULT_CASE_FILES: &[&str] = &[
    "testdata/cases/tiny.toml",
    "testdata/cases/tiny_edit.toml",
    "testdata/cases/tiny_layered.toml",
];

/// Everything a run needs to know, decided once from [`Args`].
pub(super) struct Settings {
    /// The selected cases (`--case`, `--partition`), skipped ones included, in file order.
    pub cases: Vec<Case>,
    /// How the case file(s) are named in messages.
    pub case_file: String,
    pub out: PathBuf,
    pub run_platform: RunPlatform,
    /// The GT folder / threshold overlay platform.
    pub platform: Platform,
    /// The CUDA generator's launch layout for `generator = "cuda"` cases (the platform's GPU).
    pub cuda_layout: CudaPlatform,
    pub device: String,
    pub dtype: String,
    /// `device/dtype`, as the report and the manifest say it.
    pub device_label: String,
    /// Where GT is looked up.
    pub gt: GtSettings,
    /// The threshold file and the `<platform>.json` overlay next to it, if any.
    pub thresholds: Option<(PathBuf, Option<PathBuf>)>,
    /// The CLIP model (`None`: `--no-clip`).
    pub clip_model: Option<String>,
    pub offline: bool,
    pub gen_gt: bool,
    pub resolve_only: bool,
    pub json: bool,
    /// `--server …`: the servers that produce the outputs (`None`: in process on `device`).
    pub server: Option<ServerSettings>,
    /// What this run judges, as report.json records it.
    pub run: RunInfo,
    /// A `--gt-dir` that `gt prefetch` filled: its input images and CLIP model are used too.
    pub prefetched: Option<Prefetched>,
    /// Margins and drift.
    pub judging: Judging,
}

/// How a comparing run judges beyond pass and fail: near misses, drift against a baseline.
pub(super) struct Judging {
    pub near_miss: NearMiss,
    /// `--baseline`, checked and loaded.
    pub baseline: Option<Baseline>,
    pub fail_on_drift: bool,
}

/// How a run talks to the servers it judges (`--server` and the options around it).
pub(super) struct ServerSettings {
    /// Base URLs (`http://host:port`, no trailing slash), in the order given.
    pub urls: Vec<String>,
    pub api_key: Option<String>,
    /// Requests in flight at once per server (at least 1).
    pub per_server: usize,
    /// How long each server's /health is waited for.
    pub wait: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// `--model-map CASE_MODEL=SERVED_ID`.
    pub model_map: Vec<(String, String)>,
    /// `--sglang-request`: only what SGLang's tests send.
    pub sglang_request: bool,
    /// `--perf-baseline` and the tolerance that replaces the file's (a fraction).
    pub perf_baseline: Option<PathBuf>,
    pub perf_tolerance: Option<f64>,
    pub fail_on_slow: bool,
}

/// The GT lookup of a run: `--gt-root`, else the suite's `gt_root`, else (default cases)
/// testdata/gt; `--gt-dir` / SGLANG_CONSISTENCY_GT_DIR replaces them all.
pub(super) struct GtSettings {
    pub root: Option<String>,
    pub dir: Option<PathBuf>,
    pub allow_floating: bool,
    pub offline: bool,
}

impl Settings {
    /// Read the case file(s), select the cases and decide every setting of the run.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let root = repo_root();
        let embedded = args.cases.is_none();
        let (suite, case_file) = match &args.cases {
            Some(f) => (cases::load_suite(f)?, f.display().to_string()),
            None => (default_suite(&root)?, DEFAULT_CASE_FILES.join(" + ")),
        };
        let case_files: Vec<PathBuf> = match &args.cases {
            Some(f) => vec![f.clone()],
            None => DEFAULT_CASE_FILES.iter().map(|f| root.join(f)).collect(),
        };
        let cases = select(&suite, &case_file, &args.case, args.partition.as_deref())?;
        // Checked before anything runs, so that a typo is not met after the first case.
        backend::parse(&args.device, &args.dtype)?;
        let run_platform = RunPlatform::decide(args.platform.as_deref(), &args.device)?;
        let platform = run_platform.effective();
        let thresholds = threshold_files(args.thresholds.as_ref(), &suite, platform);
        let gt = GtSettings {
            root: args
                .gt_root
                .clone()
                .or_else(|| suite.gt_root.clone())
                .or_else(|| embedded.then(|| path_string(&root.join("testdata/gt")))),
            dir: args.gt_dir.clone(),
            allow_floating: args.allow_floating,
            offline: args.offline,
        };
        let prefetched = match &args.gt_dir {
            Some(d) => Prefetched::open(d).with_context(|| format!("--gt-dir {}", d.display()))?,
            None => None,
        };
        let clip_model = (!args.no_clip).then(|| {
            let wanted = args.clip_model.clone().unwrap_or_else(|| {
                if embedded {
                    path_string(&root.join("testdata/metrics/tiny-clip"))
                } else {
                    metrics::DEFAULT_CLIP_MODEL.to_string()
                }
            });
            match prefetched.as_ref().and_then(|p| p.clip_model(&wanted)) {
                Some(snapshot) => {
                    eprintln!("CLIP model {wanted}: prefetched, {}", snapshot.display());
                    path_string(&snapshot)
                }
                None => wanted,
            }
        });
        let server = ServerSettings::from_args(&args.server)?;
        let device_label = match &server {
            Some(sv) => format!("server {}", sv.urls.join(" ")),
            None => format!("{}/{}", args.device, args.dtype),
        };
        let run = RunInfo {
            case_file: Some(case_file_info(&case_file, &case_files)?),
            target: Some(match &server {
                Some(sv) => RunTarget::Servers {
                    urls: sv.urls.clone(),
                },
                None => RunTarget::InProcess {
                    device: args.device.clone(),
                    dtype: args.dtype.clone(),
                },
            }),
            gt_platform: Some(platform.as_str().to_string()),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        };
        let judging = Judging::from_args(&args.judging, &run, &args.out)?;
        Ok(Settings {
            cases,
            case_file,
            out: args.out,
            cuda_layout: run_platform.cuda_layout(),
            platform,
            run_platform,
            device_label,
            device: args.device,
            dtype: args.dtype,
            gt,
            thresholds,
            clip_model,
            offline: args.offline,
            gen_gt: args.gen_gt,
            resolve_only: args.resolve_only,
            json: args.json,
            server,
            run,
            prefetched,
            judging,
        })
    }

    /// The fetcher of input images given as URLs: a prefetched `--gt-dir` first, then the GT
    /// files' verified cache (`--offline`: served from it only).
    pub fn image_fetcher(&self) -> InputFetcher {
        InputFetcher::new(self.offline, self.prefetched.as_ref())
    }
}

impl ServerSettings {
    /// The server options checked (URLs, counts, durations, the key file, the model map);
    /// `None` without `--server`.
    fn from_args(a: &ServerArgs) -> anyhow::Result<Option<Self>> {
        if a.servers.is_empty() {
            return Ok(None);
        }
        let urls = a
            .servers
            .iter()
            .map(|u| server_url(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if a.per_server == 0 {
            bail!("--per-server must be at least 1");
        }
        let api_key = match &a.api_key_file {
            None => None,
            Some(f) => {
                let key = read_regular_text(f, MAX_TEXT_BYTES).context("--api-key-file")?;
                Some(key.trim().to_string()).filter(|k| !k.is_empty())
            }
        };
        let model_map = a
            .model_map
            .iter()
            .map(|m| match m.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                    Ok((k.trim().to_string(), v.trim().to_string()))
                }
                _ => bail!("--model-map `{m}`: expected CASE_MODEL=SERVED_ID"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(Self {
            urls,
            api_key,
            per_server: a.per_server,
            wait: seconds("--server-wait", a.server_wait)?,
            request_timeout: seconds("--request-timeout", a.request_timeout)?,
            model_map,
            sglang_request: a.sglang_request,
            perf_baseline: a.perf_baseline.clone(),
            perf_tolerance: a.perf_tolerance.as_deref().map(tolerance).transpose()?,
            fail_on_slow: a.fail_on_slow,
        }))
    }
}

impl Judging {
    /// `--near-miss`, and `--baseline` read and checked against `run` (before any case runs).
    fn from_args(a: &JudgingArgs, run: &RunInfo, out: &Path) -> anyhow::Result<Self> {
        let near_miss = a
            .near_miss
            .as_deref()
            .map_or_else(|| Ok(NearMiss::default()), NearMiss::parse)?;
        let tolerance = a
            .drift_tolerance
            .as_deref()
            .map_or_else(|| Ok(DriftTolerance::default()), DriftTolerance::parse)?;
        let baseline = a
            .baseline
            .as_deref()
            .map(|b| Baseline::load(b, run, a.baseline_any, tolerance, out))
            .transpose()?;
        Ok(Self {
            near_miss,
            baseline,
            fail_on_drift: a.fail_on_drift,
        })
    }
}

/// The case file(s) as named in messages, and the sha256 of their bytes (of several files: of
/// their sha256 lines, in order).
fn case_file_info(shown: &str, files: &[PathBuf]) -> anyhow::Result<CaseFileInfo> {
    use sha2::{Digest, Sha256};
    let mut lines = String::new();
    for f in files {
        let bytes = crate::util::read_regular_file(f, MAX_TEXT_BYTES)?;
        lines.push_str(&hex::encode(Sha256::digest(&bytes)));
        lines.push('\n');
    }
    let sha256 = match files {
        [_] => lines.trim_end().to_string(),
        _ => hex::encode(Sha256::digest(lines.as_bytes())),
    };
    Ok(CaseFileInfo {
        path: shown.to_string(),
        sha256,
    })
}

/// A `--server` value as a base URL: http(s), a host, no query; the trailing slash dropped.
fn server_url(given: &str) -> anyhow::Result<String> {
    let u = given.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['?', '#', ' ']) => {
            Ok(u.to_string())
        }
        _ => bail!("--server `{given}`: not a server URL (expected http://HOST:PORT)"),
    }
}

fn seconds(flag: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} {s}: expected a positive number of seconds"))
}

/// `0.25` or `25%` as a fraction.
fn tolerance(s: &str) -> anyhow::Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    };
    v.ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .with_context(|| {
            format!("--perf-tolerance `{s}`: expected a fraction (0.25) or a percentage (25%)")
        })
}

impl GtSettings {
    /// The GT resolver and the parsed root (none with only a local `--gt-dir`).
    pub fn resolver(&self) -> anyhow::Result<(Resolver, Option<GtRoot>)> {
        // A GT file enters the cache only once it decodes as the image its name says.
        let mut b = Resolver::builder()
            .local_override(self.dir.clone())
            .offline(self.offline)
            .progress(true)
            .verify(check_gt_download);
        let parsed = match &self.root {
            Some(r) => {
                let parsed = GtRoot::parse(r, self.allow_floating)?;
                b = b.root(&parsed);
                Some(parsed)
            }
            None if self.dir.is_some() => None,
            None => bail!(
                "no ground truth given: pass --gt-root URL|DIR (a folder or http(s) base holding \
                 official_generated/ and sglang_generated/) or --gt-dir DIR, or give the case file a \
                 gt_root"
            ),
        };
        let resolver = b.build()?;
        warn_resolver_settings(&resolver);
        Ok((resolver, parsed))
    }
}

/// What a run does with the images it generates.
pub(super) enum Mode {
    /// `--gen-gt`: write them as GT (tree layout + manifest); nothing is compared.
    GenGt,
    /// Compare each with its GT and hold it to its thresholds.
    Compare(Box<Compare>),
}

/// What a comparing run loads once: the GT resolver, the thresholds and the CLIP model.
pub(super) struct Compare {
    pub resolver: Resolver,
    pub thresholds: Thresholds,
    pub clip: Clip,
}

/// The CLIP metric for the whole run.
pub(super) enum Clip {
    Ready(Box<ClipImageEncoder<backend::Cpu>>),
    /// `--no-clip`: not computed, reported as skipped, and no obstacle to a pass.
    Off,
    /// Wanted but the model could not be loaded: reported, and no case can pass without it.
    Unavailable(String),
}

impl Mode {
    /// `--gen-gt`, or a comparing run's resolver, thresholds and CLIP model.
    pub fn for_run(s: &Settings) -> anyhow::Result<Self> {
        if s.gen_gt {
            return Ok(Mode::GenGt);
        }
        let thresholds = match &s.thresholds {
            None => Thresholds::builtin(),
            Some((base, overlay)) => Thresholds::load(base, overlay.as_deref())?,
        };
        // A misspelt key leaves the default threshold in force: say so before the run.
        for w in thresholds.warnings() {
            eprintln!("warning: {}", crate::util::printable(w));
        }
        let (resolver, _) = s.gt.resolver()?;
        let clip = match &s.clip_model {
            None => Clip::Off,
            Some(model) => match ClipImageEncoder::load(model, &Default::default()) {
                Ok(enc) => Clip::Ready(Box::new(enc)),
                Err(e) => {
                    eprintln!("warning: CLIP cannot be computed, so no case can pass: {e}");
                    Clip::Unavailable(e.to_string())
                }
            },
        };
        Ok(Mode::Compare(Box::new(Compare {
            resolver,
            thresholds,
            clip,
        })))
    }

    pub fn is_gen_gt(&self) -> bool {
        matches!(self, Mode::GenGt)
    }
}

/// `--case` (each must exist) then `--partition`.
fn select(
    suite: &Suite,
    case_file: &str,
    ids: &[String],
    partition: Option<&str>,
) -> anyhow::Result<Vec<Case>> {
    let mut all = suite.cases.clone();
    if !ids.is_empty() {
        for id in ids {
            if !all.iter().any(|c| &c.id == id) {
                bail!("--case {id}: no such case in {case_file}");
            }
        }
        all.retain(|c| ids.contains(&c.id));
    }
    if let Some(p) = partition {
        all = selection::partition(all, p)?;
    }
    Ok(all)
}

/// The threshold file a run uses (`--thresholds`, else the suite's) and the `<platform>.json`
/// overlay next to it, as upstream lays `{platform}.json` over `h100.json`.
fn threshold_files(
    given: Option<&PathBuf>,
    suite: &Suite,
    platform: Platform,
) -> Option<(PathBuf, Option<PathBuf>)> {
    let base = given.cloned().or_else(|| suite.thresholds.clone())?;
    let overlay = base.with_file_name(format!("{}.json", platform.as_str()));
    let overlay = (overlay != base && overlay.is_file()).then_some(overlay);
    Some((base, overlay))
}

/// The embedded default: every suite of [`DEFAULT_CASE_FILES`] in one (suite-level keys from the
/// first; a case id may appear once).
fn default_suite(root: &Path) -> anyhow::Result<Suite> {
    let mut files = DEFAULT_CASE_FILES.iter();
    let first = files.next().context("no default case file")?;
    let mut suite = cases::load_suite(&root.join(first))?;
    for f in files {
        for c in cases::load_suite(&root.join(f))?.cases {
            if suite.cases.iter().any(|x| x.id == c.id) {
                bail!("case id {} appears in two default case files", c.id);
            }
            suite.cases.push(c);
        }
    }
    Ok(suite)
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
