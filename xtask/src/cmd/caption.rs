//! `cargo xtask caption`: the automatic caption `QwenImageLayeredPipeline` makes of its input
//! image when the prompt is empty (`get_image_caption`), on an image file.
//!
//! The image is read as upstream's GT script hands it to the pipeline (`Image.open(path)
//! .convert("RGBA")`), resized to the resolution bucket as the pipeline does before captioning
//! (`calculate_dimensions(res², w / h)`, Lanczos), and composited onto white by the processor;
//! then the text encoder generates with its own `generation_config.json` (text_encoder::caption).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use image::DynamicImage;
use image_io::convert_to_rgb;
use image_io::{LayeredResolution, Mode, qwen_layered_image};
use text_encoder::{CaptionLanguage, Captioner, DEFAULT_MAX_NEW_TOKENS, StopReason};

use crate::backend;
use crate::util::{MAX_TEXT_BYTES, read_regular_text};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Qwen-Image-Layered pipeline folder (diffusers layout: `text_encoder/` with the vision
    /// tower and LM head, `processor/`), or an HF repo id, of which only those two folders are
    /// fetched (into the HF cache Python shares; HF_HUB_OFFLINE=1: cache only).
    #[arg(long)]
    pub model: PathBuf,
    /// The input image (PNG, JPEG, WebP), converted to RGBA as the pipeline receives it.
    #[arg(long)]
    pub image: PathBuf,
    /// Caption prompt: `en` (`use_en_prompt=True`) or `zh` (the pipeline's default).
    #[arg(long, default_value = "zh", value_parser = ["en", "zh"])]
    pub lang: String,
    /// Upper bound on the generated tokens (the pipeline's: 512).
    #[arg(long, default_value_t = DEFAULT_MAX_NEW_TOKENS)]
    pub max_new_tokens: usize,
    /// The pipeline's `resolution` bucket, which sizes the image the caption sees.
    #[arg(long, default_value_t = 640)]
    pub resolution: u32,
    /// Print `{"caption": "...", "ids": [...]}` instead of the caption alone.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let Some(resolution) = LayeredResolution::from_pixels(args.resolution) else {
        bail!(
            "--resolution must be 640 or 1024 (the pipeline's buckets), got {}",
            args.resolution
        );
    };
    let lang: CaptionLanguage = args.lang.parse().map_err(anyhow::Error::msg)?;
    // Read the image before loading any model: a bad file fails fast.
    let prompt_image = read_prompt_image(&args.image, resolution)?;
    let root = resolve(&args.model)?;
    let (device, precision) = backend::parse(&args.device, &args.dtype)?;
    let out = crate::with_backend!(device, precision, |B, dev| caption::<B>(
        &root,
        &prompt_image,
        lang,
        args.max_new_tokens,
        &dev
    ))?;
    let (text, ids, stop, prompt_tokens) = out;
    eprintln!(
        "{}: {prompt_tokens} prompt tokens, {} generated ({}), prompt image {}x{}",
        args.image.display(),
        ids.len(),
        match stop {
            StopReason::Eos(id) => format!("ended by eos {id}"),
            StopReason::MaxNewTokens => "cut at --max-new-tokens".to_owned(),
        },
        prompt_image.width(),
        prompt_image.height()
    );
    if args.json {
        println!("{}", serde_json::json!({ "caption": text, "ids": ids }));
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The pipeline's `prompt_image`: the RGBA input resized to the bucket, then the processor's
/// `convert_to_rgb` (alpha composited onto white).
fn read_prompt_image(
    path: &Path,
    resolution: LayeredResolution,
) -> anyhow::Result<image::RgbImage> {
    // A regular file under the cap: never a FIFO that blocks or a device without end.
    let img = metrics::read_image(path).context("--image")?;
    let img = img
        .convert(Mode::Rgba)
        .with_context(|| format!("converting {} to RGBA", path.display()))?;
    let resized = qwen_layered_image(&img, resolution).with_context(|| {
        format!(
            "resizing {} to the {} bucket",
            path.display(),
            resolution.pixels()
        )
    })?;
    let rgba = resized
        .condition
        .to_rgba_image()
        .context("the resized prompt image is not RGBA")?;
    Ok(convert_to_rgb(&DynamicImage::ImageRgba8(rgba)))
}

/// A local folder as it is; a repo id: only what captioning reads (model_index.json,
/// text_encoder/ with its weights, processor/, tokenizer/ when processor/ has no tokenizer).
fn resolve(model: &Path) -> anyhow::Result<PathBuf> {
    if model.is_dir() {
        return Ok(model.to_path_buf());
    }
    let name = model.to_string_lossy();
    if !weights::is_repo_id(&name) {
        bail!("--model {name}: not a folder, and not an HF repo id of the form owner/name");
    }
    let repo = weights::HubRepo::new(&name, None)?;
    let index = repo.get("model_index.json")?;
    repo.get("text_encoder/config.json")?;
    // The processor's settings in either layout: preprocessor_config.json (released), or
    // processor_config.json (what transformers ≥ 5 saves).
    if repo.find("processor/preprocessor_config.json")?.is_none() {
        repo.get("processor/processor_config.json")?;
    }
    repo.find("text_encoder/generation_config.json")?;
    repo.get_safetensors("text_encoder")?;
    let mut has_tokenizer = false;
    for f in [
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.json",
        "added_tokens.json",
    ] {
        has_tokenizer |=
            repo.find(&format!("processor/{f}"))?.is_some() && f != "tokenizer_config.json";
    }
    if !has_tokenizer {
        for f in [
            "tokenizer_config.json",
            "vocab.json",
            "merges.txt",
            "tokenizer.json",
            "added_tokens.json",
        ] {
            repo.find(&format!("tokenizer/{f}"))?;
        }
    }
    Ok(index.parent().map(Path::to_path_buf).unwrap_or_default())
}

type Captioned = (String, Vec<u32>, StopReason, usize);

fn caption<B: Backend>(
    root: &Path,
    image: &image::RgbImage,
    lang: CaptionLanguage,
    max_new_tokens: usize,
    dev: &B::Device,
) -> anyhow::Result<Captioned> {
    let processor = root.join("processor");
    if !["preprocessor_config.json", "processor_config.json"]
        .iter()
        .any(|f| processor.join(f).is_file())
    {
        bail!(
            "{} has no processor/preprocessor_config.json or processor/processor_config.json: \
             captioning needs a Qwen-Image-Layered folder (its Qwen2VLProcessor and a text \
             encoder with the vision tower)",
            root.display()
        );
    }
    let index = root.join("model_index.json");
    if let Ok(text) = read_regular_text(&index, MAX_TEXT_BYTES) {
        let class = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["_class_name"].as_str().map(str::to_owned));
        if let Some(class) = class.filter(|c| c != "QwenImageLayeredPipeline") {
            eprintln!(
                "note: {} declares {class}; captioning with QwenImageLayeredPipeline's prompts \
                 anyway",
                index.display()
            );
        }
    }
    let captioner = Captioner::<B>::from_pipeline_dir(root, dev)
        .with_context(|| format!("loading the captioner of {}", root.display()))?;
    let caption = captioner
        .caption(image, lang, max_new_tokens)
        .context("captioning")?;
    Ok((
        caption.text,
        caption.ids,
        caption.stop,
        caption.prompt_tokens,
    ))
}
