//! `cargo xtask`: the project's commands. Only this binary knows about every crate; the crates
//! stay independent of each other (see ARCHITECTURE.md).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backend;
mod cmd;
mod platform;
mod prefetch;
mod util;

/// Qwen-Image in Rust and the consistency testing around it.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run consistency cases end to end and compare with ground truth (default: the tiny official cases).
    Consistency(cmd::consistency::Args),
    /// Generate one image with the Qwen-Image pipeline.
    Generate(cmd::generate::Args),
    /// Run one model component on golden input tensors and write its output tensors.
    #[command(subcommand)]
    Forward(cmd::forward::Forward),
    /// Encode prompts the way diffusers' `_get_qwen_prompt_embeds` does.
    EncodePrompt(cmd::encode_prompt::Args),
    /// Caption an image as Qwen-Image-Layered does for an empty prompt (`get_image_caption`).
    Caption(cmd::caption::Args),
    /// Tokenize text with the tokenizer a pipeline declares, and say which path was chosen and why.
    Tokenize(cmd::tokenize::Args),
    /// Compare two images: SSIM, PSNR, mean absolute difference and CLIP similarity.
    Metrics(cmd::metrics::Args),
    /// Ground-truth lookups.
    #[command(subcommand)]
    Gt(cmd::gt::Gt),
    /// Regenerate testdata/ with the pinned Python reference oracle (xtask/reference/).
    Fixtures(cmd::fixtures::Args),
    /// Benchmarks and performance tables.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
    /// torch's seeded noise (`torch.randn` on a CPU or CUDA generator) as a safetensors file.
    Randn(cmd::randn::Args),
    /// Serve the pipeline behind SGLang's OpenAI-compatible image API (see docs/serve.md).
    Serve(cmd::serve::Args),
}

/// Every option of every subcommand takes a negative number as its value, so that `--seed -1`
/// says "invalid value '-1' for '--seed <SEED>'" instead of "unexpected argument '-1'" (which
/// does not name the option).
fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true)
        .mut_args(|a| {
            // `-inf` is a float to its parser, not an option `-i`: the parser and the range checks
            // after it say what is wrong with it.
            let float = [std::any::TypeId::of::<f32>(), std::any::TypeId::of::<f64>()]
                .iter()
                .any(|t| a.get_value_parser().type_id() == *t);
            if float {
                a.allow_hyphen_values(true)
            } else {
                a
            }
        })
        .mut_subcommands(allow_negative_numbers)
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = allow_negative_numbers(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Consistency(a) => cmd::consistency::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Forward(a) => cmd::forward::run(a),
        Command::EncodePrompt(a) => cmd::encode_prompt::run(a),
        Command::Caption(a) => cmd::caption::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Metrics(a) => cmd::metrics::run(a),
        Command::Gt(a) => cmd::gt::run(a),
        Command::Fixtures(a) => cmd::fixtures::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Randn(a) => cmd::randn::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", util::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
