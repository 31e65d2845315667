//! `cargo xtask tokenize`: ids, and which tokenizer path was chosen and why.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tokenizer_loader::{HubOptions, QwenTokenizer};

use crate::util::{MAX_TEXT_BYTES, read_regular_text};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline folder (diffusers layout), a bare tokenizer folder, or an HF repo id whose
    /// `tokenizer/` is read through the HF cache Python shares (HF_HUB_OFFLINE=1: cache only).
    #[arg(long)]
    pub model: PathBuf,
    /// Text to tokenize (as given: no template, no special tokens added).
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub text: Option<String>,
    /// File whose contents are tokenized (a regular UTF-8 file of at most 16 MiB).
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
        // A regular file under the cap: never a FIFO that blocks or a device without end.
        (None, Some(f)) => read_regular_text(f, MAX_TEXT_BYTES)?,
        (None, None) => anyhow::bail!("give --text or --file"),
    };
    let ids = tok.encode(&text, false)?;
    let decision = tok.decision();
    let out = if args.json {
        // A struct, not `json!`, so the keys come out in the contract's order.
        let report = Report {
            path: decision.path.as_str(),
            reason: &decision.reason,
            ids: &ids,
        };
        format!("{}\n", serde_json::to_string(&report)?)
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        format!(
            "path:   {}\nreason: {}\nfrom:   {}\ntokens: {}\nids:    [{}]\n",
            decision.path,
            decision.reason,
            tok.location(),
            ids.len(),
            list.join(", ")
        )
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        // `| head` closing the pipe early is not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    path: &'a str,
    reason: &'a str,
    ids: &'a [u32],
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
    if weights::is_repo_id(&id) {
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
