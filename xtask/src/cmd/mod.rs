//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod caption;
pub mod consistency;
pub mod encode_prompt;
pub mod fixtures;
pub mod forward;
pub mod generate;
pub mod gt;
pub mod metrics;
pub mod randn;
pub mod serve;
pub mod tokenize;
