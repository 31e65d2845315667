//! `cargo xtask generate`: one Qwen-Image picture.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A diffusers-layout pipeline folder or an HF repo id.
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub prompt: String,
    /// Negative prompt; without one CFG is off, as in diffusers.
    #[arg(long)]
    pub negative_prompt: Option<String>,
    #[arg(long)]
    pub true_cfg_scale: Option<f32>,
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    #[arg(long, default_value_t = 1024)]
    pub height: usize,
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    /// Seed for torch-compatible CPU noise.
    #[arg(long, conflicts_with = "latents")]
    pub seed: Option<u64>,
    /// Exact initial packed latents [1, N, 4*z] under key "latents".
    #[arg(long)]
    pub latents: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value_t = 512)]
    pub max_sequence_length: usize,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("generate")
}
