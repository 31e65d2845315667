//! The command line of `cargo xtask consistency` (clap); [`super::settings::Settings`] is what a
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
