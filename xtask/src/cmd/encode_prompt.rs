//! `cargo xtask encode-prompt`: what diffusers' `_get_qwen_prompt_embeds` returns, truncated.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline folder (diffusers layout).
    #[arg(long)]
    pub model: PathBuf,
    /// JSON file `{"prompts": [...]}`.
    #[arg(long)]
    pub prompts: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 512)]
    pub max_sequence_length: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("encode-prompt")
}
