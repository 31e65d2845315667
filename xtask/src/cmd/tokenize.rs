//! `cargo xtask tokenize`: ids, and which tokenizer path was chosen and why.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline folder (diffusers layout).
    #[arg(long)]
    pub model: PathBuf,
    /// Text to tokenize (as given: no template, no special tokens added).
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub text: Option<String>,
    /// File whose contents are tokenized.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print `{"path": "fast"|"slow", "reason": "...", "ids": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    super::not_implemented("tokenize")
}
