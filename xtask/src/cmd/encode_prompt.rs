//! `cargo xtask encode-prompt`: what the pipeline's `encode_prompt` returns — text-to-image
//! (`_get_qwen_prompt_embeds`, truncated to `--max-sequence-length`), or for an Edit / Edit-Plus
//! folder the prompts with `--image` files (template and drop count from the pipeline class).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use text_encoder::{PromptEmbeds, PromptEncoder, PromptTemplate, VisionPositions};

use crate::backend;
use crate::util::{MAX_IMAGE_BYTES, MAX_TEXT_BYTES, read_regular_text, regular_file_len};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipeline folder (diffusers layout), or an HF repo id read through the HF cache Python
    /// shares (HF_HUB_OFFLINE=1: cache only).
    #[arg(long)]
    pub model: PathBuf,
    /// JSON file `{"prompts": [...]}`.
    #[arg(long)]
    pub prompts: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 512)]
    pub max_sequence_length: usize,
    /// An input image for an Edit / Edit-Plus folder (PNG, JPEG, WebP; read as diffusers'
    /// `load_image`: EXIF orientation, RGBA/grayscale through PIL's `convert("RGB")`), given to
    /// `encode_prompt` as it is. Edit: one per prompt, or one for all; Edit-Plus: every prompt
    /// gets all of them ("Picture 1: …").
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Position ids of the image prompts: `mrope` (Qwen2.5-VL's 3-D M-RoPE, as the model runs
    /// under transformers 4.x or with diffusers' PR #14189) or `sequential` (what diffusers
    /// 0.42.1 with transformers ≥ 5.15 computes: diffusers issue #14194).
    #[arg(long, default_value = "mrope", value_parser = ["mrope", "sequential"])]
    pub vision_positions: String,
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

/// The Edit pipelines' `encode_prompt` on the `--image` files, each read by
/// [`read_condition_image`]. Images per prompt: Edit takes one each, in order (as its processor
/// consumes a list), or the single image for every prompt (the pipeline encodes the prompt and
/// the negative prompt with the same image); Edit-Plus names every image in every prompt.
fn encode_with_images<B: Backend>(
    args: &Args,
    encoder: &PromptEncoder<B>,
    prompts: &[String],
) -> anyhow::Result<PromptEmbeds<B>> {
    let images = args
        .images
        .iter()
        .map(|p| read_condition_image(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let per_prompt: Vec<Vec<image::RgbImage>> = match encoder.template() {
        PromptTemplate::Edit if images.len() == prompts.len() => {
            images.into_iter().map(|i| vec![i]).collect()
        }
        PromptTemplate::Edit if images.len() == 1 => vec![images; prompts.len()],
        PromptTemplate::Edit => bail!(
            "QwenImageEditPipeline takes one image per prompt (or one for all): {} prompts, {} \
             --image",
            prompts.len(),
            images.len()
        ),
        _ => vec![images; prompts.len()],
    };
    let positions = match args.vision_positions.as_str() {
        "sequential" => VisionPositions::Sequential,
        _ => VisionPositions::Mrope,
    };
    Ok(encoder.encode_with_images(prompts, &per_prompt, positions)?)
}

/// One `--image` file as RGB, as diffusers' `load_image` reads a path (the image is then handed
/// to the processor as it is; the pipeline's own condition resize is not part of
/// `encode_prompt`).
fn read_condition_image(path: &Path) -> anyhow::Result<image::RgbImage> {
    // A regular file under the cap (checked before it is opened): never a FIFO or a device.
    regular_file_len(path, MAX_IMAGE_BYTES).context("--image")?;
    text_encoder::load_image(path).with_context(|| format!("reading --image {}", path.display()))
}

fn read_prompts(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct PromptsFile {
        prompts: Vec<String>,
    }
    let text = read_regular_text(path, MAX_TEXT_BYTES)?;
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
    let out = if encoder.template().takes_images() {
        encode_with_images(args, &encoder, prompts)
    } else {
        if !args.images.is_empty() {
            bail!(
                "{model} is a text-to-image pipeline: --image needs an Edit or Edit-Plus folder \
                 (model_index.json `_class_name` QwenImageEditPipeline / QwenImageEditPlusPipeline)"
            );
        }
        encoder
            .encode(prompts, args.max_sequence_length)
            .map_err(anyhow::Error::from)
    }
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
    // Never leave a half-written file behind.
    crate::util::write_safetensors(&args.output, tensors, None)?;
    eprintln!(
        "{}: prompt_embeds {embeds_shape:?}, real rows per prompt {:?}",
        args.output.display(),
        out.lengths
    );
    Ok(())
}
