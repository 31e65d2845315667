//! `cargo xtask encode-prompt`: what diffusers' `_get_qwen_prompt_embeds` returns, truncated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use text_encoder::PromptEncoder;

use crate::backend;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline folder (diffusers layout).
    #[arg(long)]
    pub model: PathBuf,
    /// JSON file `{"prompts": [...]}`.
    #[arg(long)]
    pub prompts: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 512)]
    pub max_sequence_length: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

/// Writes `prompt_embeds` [B, L, D] f32 and `prompt_embeds_mask` [B, L] i64 (always, even when
/// the pipeline would pass `None` for an all-ones mask).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let limit = text_encoder::MAX_SEQUENCE_LENGTH_LIMIT;
    if !(1..=limit).contains(&args.max_sequence_length) {
        bail!(
            "--max-sequence-length must be in 1..={limit} (diffusers' limit), got {}",
            args.max_sequence_length
        );
    }
    let prompts = read_prompts(&args.prompts)?;
    let (device, precision) = backend::parse(&args.device, &args.dtype)?;
    crate::with_backend!(device, precision, |B, dev| encode::<B>(
        &args, &prompts, &dev
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn read_prompts(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct PromptsFile {
        prompts: Vec<String>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PromptsFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"prompts\": [\"...\", ...]}}",
            path.display()
        )
    })?;
    if file.prompts.is_empty() {
        bail!("{}: `prompts` is empty", path.display());
    }
    Ok(file.prompts)
}

fn encode<B: Backend>(args: &Args, prompts: &[String], dev: &B::Device) -> anyhow::Result<()> {
    let model = args.model.to_string_lossy();
    let pipeline = weights::resolve_pipeline(&model, None)?;
    let encoder = PromptEncoder::<B>::from_pipeline_dir(pipeline.root(), dev)
        .with_context(|| format!("loading the tokenizer and text encoder of {model}"))?;
    let out = encoder
        .encode(prompts, args.max_sequence_length)
        .with_context(|| format!("encoding the prompts of {}", args.prompts.display()))?;

    let embeds_shape = out.embeds.dims().to_vec();
    let mask_shape = out.mask.dims().to_vec();
    let embeds = out.embeds.into_data().convert::<f32>();
    let embeds = embeds
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the embeddings back: {e:?}"))?;
    let embeds: Vec<u8> = embeds.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mask = out.mask.into_data().convert::<i64>();
    let mask = mask
        .as_slice::<i64>()
        .map_err(|e| anyhow::anyhow!("reading the mask back: {e:?}"))?;
    let mask: Vec<u8> = mask.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = [
        (
            "prompt_embeds",
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                embeds_shape.clone(),
                &embeds,
            )?,
        ),
        (
            "prompt_embeds_mask",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, mask_shape, &mask)?,
        ),
    ];
    // Never leave a half-written file behind: write beside it, then rename.
    let mut tmp = args.output.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    safetensors::serialize_to_file(tensors, None, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.output.display()))?;
    eprintln!(
        "{}: prompt_embeds {embeds_shape:?}, real rows per prompt {:?}",
        args.output.display(),
        out.lengths
    );
    Ok(())
}
