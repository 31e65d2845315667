//! `cargo xtask fixtures`: regenerate testdata/ with the pinned Python oracle.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("fixtures")
}
