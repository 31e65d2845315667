//! `cargo xtask metrics OUT.png GT.png`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Generated image.
    pub output: PathBuf,
    /// Ground-truth image.
    pub gt: PathBuf,
    /// CLIP model: a local folder or an HF repo id (default openai/clip-vit-large-patch14).
    #[arg(long)]
    pub clip_model: Option<String>,
    /// Print `{"ssim": x, "psnr": x, "mean_abs_diff": x, "clip": x|null}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("metrics")
}
