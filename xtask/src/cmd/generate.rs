//! `cargo xtask generate`: one Qwen-Image picture (text to image, or an edit of `--image` files
//! with an Edit / Edit-Plus folder; the pipeline follows the folder's `_class_name`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use pipeline::{InitialLatents, Pipeline, Request};
use text_encoder::VisionPositions;
use torch_rng::{CudaPlatform, GeneratorDevice};

use crate::platform::{RunPlatform, parse_cuda_layout};
use crate::util::{generate_with_progress, install_ctrlc, load_input_images, save_image};
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
    #[arg(long)]
    pub prompt: String,
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
    /// Output image (png, jpg or webp by extension).
    #[arg(long)]
    pub out: PathBuf,
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
    let mut req = Request::edit(a.prompt.clone(), images)
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
    // Sizes, steps and scales are refused before a single weight is read.
    req.validate()?;
    with_backend!(device, precision, |B, dev| {
        let pipe = Pipeline::<B>::load_revision(&a.model, a.revision.as_deref(), &dev)
            .with_context(|| format!("loading the pipeline {}", a.model))?;
        if pipe.kind().takes_images() && a.images.is_empty() {
            bail!(
                "{} is a {} folder: give the picture to edit with --image PATH|URL",
                a.model,
                pipe.kind()
            );
        }
        install_ctrlc(pipe.cancel_flag());
        let out = generate_with_progress(&pipe, &req, "generate")?;
        save_image(&out.image, &a.out)?;
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
