//! `cargo xtask generate`: one Qwen-Image picture (text to image, an edit of `--image` files with
//! an Edit / Edit-Plus folder, or the RGBA layers of one `--image` with a Layered folder; the
//! pipeline follows the folder's `_class_name`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use image_io::LayeredResolution;
use pipeline::{InitialLatents, Output, Pipeline, PipelineKind, Request};
use text_encoder::VisionPositions;
use torch_rng::{CudaPlatform, GeneratorDevice};

use crate::platform::{RunPlatform, parse_cuda_layout};
use crate::util::{
    generate_with_progress, install_ctrlc, load_input_images, save_image, save_rgba_png,
};
use crate::{backend, with_backend};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A diffusers-layout pipeline folder or an HF repo id (e.g. Qwen/Qwen-Image), read through
    /// the HF cache Python shares (HF_HUB_CACHE / HF_HOME; HF_HUB_OFFLINE=1 uses only the cache).
    #[arg(long)]
    pub model: String,
    /// HF revision (branch, tag or commit) when --model is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
    /// The prompt. Required but for a Layered folder, where a missing, empty or " " prompt is
    /// replaced by a caption of the input image (printed), as diffusers does.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Negative prompt; without one CFG is off, as in diffusers (the official README uses " ").
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// CFG scale (diffusers' default 4.0 applies when a negative prompt is given without one).
    #[arg(long)]
    pub true_cfg_scale: Option<f32>,
    /// Used as the CFG scale when --true-cfg-scale is absent (upstream SGLang's fallback).
    #[arg(long)]
    pub guidance_scale: Option<f32>,
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Input image of an Edit / Edit-Plus folder (repeatable, in order; Edit takes one): a PNG,
    /// JPEG or WebP file, or an http(s) URL downloaded through the GT files' verified cache.
    /// Read as diffusers' load_image does (EXIF orientation, then PIL's convert("RGB")).
    #[arg(long = "image", value_name = "PATH|URL")]
    pub images: Vec<String>,
    /// Floored to a multiple of 16, as diffusers does. Default: 1024 for text to image; for an
    /// edit, the 1024²-area size at the last input image's aspect ratio.
    #[arg(long)]
    pub height: Option<usize>,
    /// As --height.
    #[arg(long)]
    pub width: Option<usize>,
    /// Seed for torch-compatible noise (the same noise as diffusers with the `--generator`'s
    /// `torch.Generator(...).manual_seed(seed)`).
    #[arg(long, conflicts_with = "latents")]
    pub seed: Option<u64>,
    /// Which torch.Generator draws the seed's noise: `cpu` (diffusers' default in our tests, bit
    /// for bit) or `cuda` (upstream's official GT and SGLang; a GPU's launch layout, to a few ulps).
    #[arg(long, value_enum, default_value_t = GeneratorArg::Cpu)]
    pub generator: GeneratorArg,
    /// The GPU whose launch layout `--generator cuda` reproduces: h100, h200, b200, 5090 or an
    /// upstream alias (sm90, hopper, blackwell, sm120). Default: the consistency platform
    /// (SGLANG_DIFFUSION_CONSISTENCY_PLATFORM), else the CUDA device's, else h100.
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM", value_parser = parse_cuda_layout)]
    pub platform: Option<CudaPlatform>,
    /// Exact initial packed latents [1, N, 4*z] under key "latents".
    #[arg(long)]
    pub latents: Option<PathBuf>,
    /// Output image (png, jpg or webp by extension); for a Layered folder a folder, which receives
    /// layer_0.png … layer_{N-1}.png (RGBA).
    #[arg(long)]
    pub out: PathBuf,
    /// Layered: number of RGBA layers (diffusers' default 4).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Layered: the resolution bucket, 640 (diffusers' default) or 1024; the output keeps the
    /// input's aspect ratio at about that many pixels squared.
    #[arg(long, value_parser = parse_resolution)]
    pub resolution: Option<LayeredResolution>,
    /// Layered: caption an empty prompt in English (else Chinese, diffusers' default).
    #[arg(long)]
    pub use_en_prompt: bool,
    /// Layered: rescale the CFG combination to the conditional prediction's norm (diffusers'
    /// default off; SGLang's Layered default on).
    #[arg(long)]
    pub cfg_normalize: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value_t = 512)]
    pub max_sequence_length: usize,
    /// Positions of an edit prompt's image tokens in the text encoder: Qwen2.5-VL's 3-D M-RoPE
    /// (the model as trained) or the sequential ones of diffusers ≤ 0.42.1 with transformers ≥
    /// 5.15 (diffusers#14194).
    #[arg(long, default_value = "mrope", value_parser = ["mrope", "sequential"])]
    pub vision_positions: String,
    /// Serve --image URLs only from the cache (no network).
    #[arg(long)]
    pub offline: bool,
}

fn parse_resolution(s: &str) -> Result<LayeredResolution, String> {
    s.parse::<u32>()
        .ok()
        .and_then(LayeredResolution::from_pixels)
        .ok_or_else(|| format!("`{s}` is not a resolution bucket: use 640 or 1024"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorArg {
    Cpu,
    Cuda,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (device, precision) = backend::parse(&a.device, &a.dtype)?;
    let latents = match (a.latents.as_deref(), a.seed, a.generator) {
        (Some(p), _, _) => InitialLatents::File(p.to_path_buf()),
        (None, seed, GeneratorArg::Cpu) => {
            // An explicit --platform belongs to the CUDA generator; from the environment it is
            // the consistency platform, which a CPU draw simply does not use.
            if a.platform.is_some()
                && std::env::var("SGLANG_DIFFUSION_CONSISTENCY_PLATFORM").is_err()
            {
                bail!("--platform picks the CUDA generator's layout: use it with --generator cuda");
            }
            InitialLatents::from_options(None, seed)
        }
        (None, seed, GeneratorArg::Cuda) => {
            let layout = match a.platform {
                Some(p) => p,
                None => RunPlatform::decide(None, &a.device)?.cuda_layout(),
            };
            InitialLatents::seeded(seed.unwrap_or(0), GeneratorDevice::Cuda(layout))
        }
    };
    eprintln!("noise: {}", latents.describe());
    let images = load_input_images(&a.images, a.offline)?;
    let mut req = Request::edit(a.prompt.clone().unwrap_or_default(), images)
        .steps(a.steps)
        .max_sequence_length(a.max_sequence_length)
        .latents(latents);
    if let Some(p) = &a.negative_prompt {
        req = req.negative_prompt(p);
    }
    if let Some(s) = a.true_cfg_scale {
        req = req.true_cfg_scale(s);
    }
    if let Some(s) = a.guidance_scale {
        req = req.guidance_scale(s);
    }
    if let Some(h) = a.height {
        req = req.height(h);
    }
    if let Some(w) = a.width {
        req = req.width(w);
    }
    if a.vision_positions == "sequential" {
        req = req.vision_positions(VisionPositions::Sequential);
    }
    if let Some(n) = a.layers {
        req = req.layers(n);
    }
    if let Some(r) = a.resolution {
        req = req.resolution(r);
    }
    req = req
        .use_en_prompt(a.use_en_prompt)
        .cfg_normalize(a.cfg_normalize);
    // Sizes, steps and scales are refused before a single weight is read.
    req.validate()?;
    // The folder's class decides which options apply: checked before any weight is read.
    let dir = weights::resolve_pipeline(&a.model, a.revision.as_deref())
        .with_context(|| format!("loading the pipeline {}", a.model))?;
    check_kind_options(&a, PipelineKind::of(&dir)?)?;
    with_backend!(device, precision, |B, dev| {
        let pipe = Pipeline::<B>::from_dir(&dir, &dev)
            .with_context(|| format!("loading the pipeline {}", a.model))?;
        install_ctrlc(pipe.cancel_flag());
        let out = generate_with_progress(&pipe, &req, "generate")?;
        if pipe.kind() == PipelineKind::Layered {
            save_layers(&out, &a.out)?;
        } else {
            save_image(&out.image, &a.out)?;
        }
        eprintln!(
            "wrote {} ({}×{}; text {:.2}s, denoise {:.2}s, decode {:.2}s)",
            a.out.display(),
            out.width,
            out.height,
            out.timings.text_encoder.as_secs_f64(),
            out.timings.denoise.as_secs_f64(),
            out.timings.decode.as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The options that only some pipeline kinds take, refused for the others (before any work).
fn check_kind_options(a: &Args, kind: PipelineKind) -> anyhow::Result<()> {
    if kind.takes_images() && a.images.is_empty() {
        let what = match kind {
            PipelineKind::Layered => "the picture to decompose",
            _ => "the picture to edit",
        };
        bail!(
            "{} is a {kind} folder: give {what} with --image PATH|URL",
            a.model
        );
    }
    if a.vision_positions == "sequential"
        && !matches!(kind, PipelineKind::Edit | PipelineKind::EditPlus)
    {
        bail!(
            "--vision-positions applies to the prompt images of an Edit or Edit-Plus folder; {} \
             is a {kind} folder",
            a.model
        );
    }
    let layered_options =
        a.layers.is_some() || a.resolution.is_some() || a.use_en_prompt || a.cfg_normalize;
    match kind {
        PipelineKind::Layered => {
            if a.height.is_some() || a.width.is_some() {
                bail!(
                    "--height/--width do not apply to a {kind} folder: the size follows the \
                     input's aspect ratio in the --resolution bucket"
                );
            }
            if a.out.is_file() {
                bail!(
                    "--out {} is a file: a {kind} folder writes layer_0.png … into a folder",
                    a.out.display()
                );
            }
        }
        _ => {
            if layered_options {
                bail!(
                    "--layers, --resolution, --use-en-prompt and --cfg-normalize apply to a \
                     QwenImageLayeredPipeline folder; {} is a {kind} folder",
                    a.model
                );
            }
            if a.prompt.is_none() {
                bail!("--prompt is required for a {kind} folder");
            }
        }
    }
    Ok(())
}

/// Layered: `OUT/layer_k.png` (RGBA PNG, each written to a temp name and renamed), and the
/// caption that replaced an empty prompt.
fn save_layers<B: burn::tensor::backend::Backend>(
    out: &Output<B>,
    dir: &Path,
) -> anyhow::Result<()> {
    if let Some(c) = &out.caption {
        // The caption on stdout (the one thing a script wants), what it cost on stderr.
        eprintln!(
            "the prompt was empty: captioned the input ({} new tokens, {})",
            c.ids.len(),
            match c.stop {
                text_encoder::StopReason::Eos(_) => "ended on eos",
                text_encoder::StopReason::MaxNewTokens => "cut at max_new_tokens",
            },
        );
        println!("caption: {}", c.text);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (k, layer) in out.layers.iter().enumerate() {
        save_rgba_png(layer, &dir.join(format!("layer_{k}.png")))?;
    }
    eprintln!(
        "wrote {} RGBA layer(s) layer_0.png … in {}",
        out.layers.len(),
        dir.display()
    );
    Ok(())
}
