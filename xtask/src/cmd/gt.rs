//! `cargo xtask gt resolve`.

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Gt {
    /// Find a case's GT files: chosen source, files with URLs, every probe with its answer.
    Resolve(ResolveArgs),
}

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    #[arg(long)]
    pub case: String,
    /// An http(s) base or a local folder holding official_generated/ and sglang_generated/.
    #[arg(long)]
    pub gt_root: String,
    #[arg(long, default_value_t = 1)]
    pub num_gpus: u32,
    #[arg(long)]
    pub video: bool,
    #[arg(long)]
    pub output_format: Option<String>,
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM")]
    pub platform: Option<String>,
    #[arg(long)]
    pub offline: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: Gt) -> anyhow::Result<ExitCode> {
    match g {
        Gt::Resolve(_) => super::not_implemented("gt resolve"),
    }
}
