//! `cargo xtask consistency`: run cases end to end, resolve GT, compare, report.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `cargo xtask consistency`. With no arguments it runs the tiny official cases in
/// testdata/ on the CPU against the official GT in testdata/.
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
    #[arg(long)]
    pub gt_root: Option<String>,
    /// A local GT folder that replaces remote lookup (as SGLANG_CONSISTENCY_GT_DIR).
    #[arg(long, env = "SGLANG_CONSISTENCY_GT_DIR")]
    pub gt_dir: Option<PathBuf>,
    /// Threshold file (upstream's consistency_threshold JSON format).
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Platform folder for GT and threshold overlays (h100, b200, 5090 or an alias).
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM")]
    pub platform: Option<String>,
    /// Device to generate on.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output folder for images, report.json and index.html.
    #[arg(long, default_value = "consistency-out")]
    pub out: PathBuf,
    /// Run the K-th of N stable partitions of the cases (1-based), e.g. 2/4.
    #[arg(long)]
    pub partition: Option<String>,
    /// Write our outputs as GT (tree layout + manifest) instead of comparing.
    #[arg(long)]
    pub gen_gt: bool,
    /// Serve GT only from the cache and local folders.
    #[arg(long)]
    pub offline: bool,
    /// Skip the CLIP metric (reported as skipped, never as a pass).
    #[arg(long)]
    pub no_clip: bool,
}

/// `cargo xtask consistency merge OUT1 OUT2 …`
#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Merge the report.json of several partitioned runs into one report.
    Merge {
        /// Output folders of the runs to merge.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, default_value = "consistency-out")]
        out: PathBuf,
    },
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("consistency")
}
