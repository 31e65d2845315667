//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod consistency;
pub mod encode_prompt;
pub mod fixtures;
pub mod forward;
pub mod generate;
pub mod gt;
pub mod metrics;
pub mod tokenize;

use std::process::ExitCode;

/// What a subcommand that has not landed yet does: say so and exit 2 ("could not run").
pub fn not_implemented(what: &str) -> anyhow::Result<ExitCode> {
    eprintln!("`cargo xtask {what}`: not implemented yet");
    Ok(ExitCode::from(2))
}
