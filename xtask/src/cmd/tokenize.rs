//! `cargo xtask tokenize`: ids, and which tokenizer path was chosen and why.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokenizer_loader::{HubOptions, QwenTokenizer};

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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tok = load(&args.model)?;
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give --text or --file"),
    };
    let ids = tok.encode(&text, false)?;
    let decision = tok.decision();
    if args.json {
        let out = serde_json::json!({
            "path": decision.path.as_str(),
            "reason": decision.reason,
            "ids": ids,
        });
        println!("{out}");
    } else {
        println!("path:   {}", decision.path);
        println!("reason: {}", decision.reason);
        println!("from:   {}", tok.location());
        println!("tokens: {}", ids.len());
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("ids:    [{}]", list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// A local pipeline folder (or a bare tokenizer folder), else a Hugging Face repo id whose
/// `tokenizer/` sub-folder is read through the shared HF cache.
fn load(model: &std::path::Path) -> anyhow::Result<QwenTokenizer> {
    if model.is_dir() {
        let is_pipeline =
            model.join("model_index.json").is_file() || model.join("tokenizer").is_dir();
        return Ok(if is_pipeline {
            QwenTokenizer::from_pipeline_dir(model)?
        } else {
            QwenTokenizer::from_folder(model)?
        });
    }
    let id = model.to_string_lossy();
    if model.is_relative() && id.split('/').count() == 2 && !id.starts_with('.') {
        return Ok(QwenTokenizer::from_hub(
            &id,
            Some("tokenizer"),
            &HubOptions::default(),
        )?);
    }
    anyhow::bail!(
        "--model {}: no such folder, and not an HF repo id (owner/name)",
        model.display()
    )
}
