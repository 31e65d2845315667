//! `cargo xtask bench`: performance tables.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// Print the GPU table from a gpu-report.json.
    Gpu {
        #[arg(default_value = "ci/out/gpu-report.json")]
        report: PathBuf,
    },
}

pub fn run(b: Bench) -> anyhow::Result<ExitCode> {
    match b {
        Bench::Gpu { .. } => super::not_implemented("bench gpu"),
    }
}
