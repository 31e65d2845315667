//! `cargo xtask forward dit|vae-decode`: golden tensors in, tensors out.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Forward {
    /// QwenImageTransformer2DModel forward.
    Dit(Common),
    /// AutoencoderKLQwenImage decode.
    VaeDecode(Common),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Folder with config.json and the component's safetensors (sharded or not).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub inputs: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

pub fn run(f: Forward) -> anyhow::Result<ExitCode> {
    match f {
        Forward::Dit(_) => super::not_implemented("forward dit"),
        Forward::VaeDecode(_) => super::not_implemented("forward vae-decode"),
    }
}
