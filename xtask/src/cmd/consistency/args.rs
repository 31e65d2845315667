//! The command line of `cargo xtask consistency` (clap); `settings::Settings` is what a
//! run makes of it.

use std::path::PathBuf;

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
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub judging: JudgingArgs,
}

/// How close a pass is, and how far a run moved from a previous one (docs/formats.md, "Margins
/// and drift").
#[derive(clap::Args, Debug, Default)]
pub struct JudgingArgs {
    /// A previous run's report.json (or its folder): per case and metric the move since then; a
    /// case that moved by more than --drift-tolerance is marked drifted. It must have judged the
    /// same case file, target and platform (else exit 2, unless --baseline-any).
    #[arg(long, value_name = "REPORT", conflicts_with_all = ["gen_gt", "resolve_only"])]
    pub baseline: Option<PathBuf>,
    /// The largest move that is not drift, per metric (the metrics not named keep these
    /// defaults).
    #[arg(
        long,
        value_name = "clip=0.005,ssim=0.01,psnr=1.0,mean_abs_diff=0.5",
        requires = "baseline"
    )]
    pub drift_tolerance: Option<String>,
    /// Exit 1 when some case drifted, even when every case passed.
    #[arg(long, requires = "baseline")]
    pub fail_on_drift: bool,
    /// Compare with a baseline that judged another case file, target or platform (or does not
    /// say), recording the differences.
    #[arg(long, requires = "baseline")]
    pub baseline_any: bool,
    /// Mark a passing case `near_miss` when a margin is under this, per metric: a value in the
    /// metric's unit or a percentage (default 10%: of the threshold for psnr and mean_abs_diff,
    /// of 1 − threshold for clip and ssim), e.g. `psnr=2,ssim=5%`.
    #[arg(long, value_name = "METRIC=VALUE,…")]
    pub near_miss: Option<String>,
}

/// Judging servers that speak SGLang's image API instead of running the pipeline in process
/// (docs/formats.md, "Judging a server").
#[derive(clap::Args, Debug, Default)]
pub struct ServerArgs {
    /// Send each case to this server (`http://host:port`, repeatable): text to image to
    /// /v1/images/generations, image cases to /v1/images/edits. A case goes to a server whose
    /// /v1/models lists its model; --device/--dtype are then not used.
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// A file holding the servers' API key (sent as `Authorization: Bearer KEY`).
    #[arg(long, value_name = "FILE", requires = "servers")]
    pub api_key_file: Option<PathBuf>,
    /// Requests in flight at once per server.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub per_server: usize,
    /// Seconds to wait for each server's /health before the first case (upstream's 1200).
    #[arg(long, value_name = "S", default_value_t = 1200.0)]
    pub server_wait: f64,
    /// Seconds a request may take before its case fails (upstream's 1800).
    #[arg(long, value_name = "S", default_value_t = 1800.0)]
    pub request_timeout: f64,
    /// Serve a case's model under another id: `--model-map Qwen/Qwen-Image=qwen` (CASE_MODEL is
    /// the case's `model`, or a local folder's name). Repeatable.
    #[arg(
        long = "model-map",
        value_name = "CASE_MODEL=SERVED_ID",
        requires = "servers"
    )]
    pub model_map: Vec<String>,
    /// Send only what SGLang's tests send (prompt, n, size, output_format and the fields the case
    /// sets itself), so that the server's own defaults are judged too.
    #[arg(long, requires = "servers")]
    pub sglang_request: bool,
    /// SGLang's perf_baselines/<platform>.json: a case slower than its scenario by more than the
    /// file's `pr_test` tolerance (or --perf-tolerance) is marked slow.
    #[arg(long, value_name = "FILE", requires = "servers")]
    pub perf_baseline: Option<PathBuf>,
    /// Allowed slowdown over the baseline as a fraction (0.25) or a percentage (25%), for every
    /// timing, instead of the file's `pr_test` tolerances.
    #[arg(long, value_name = "P", requires = "perf_baseline")]
    pub perf_tolerance: Option<String>,
    /// Exit 1 when some case was slow.
    #[arg(long, requires = "perf_baseline")]
    pub fail_on_slow: bool,
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
