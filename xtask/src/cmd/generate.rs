//! `cargo xtask generate`: one Qwen-Image picture.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::{Event, InitialLatents, Output, QwenImagePipeline, Request};

use crate::{backend, with_backend};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A diffusers-layout pipeline folder or an HF repo id (e.g. Qwen/Qwen-Image).
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
    /// Floored to a multiple of 16, as diffusers does.
    #[arg(long, default_value_t = 1024)]
    pub height: usize,
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    /// Seed for torch-compatible CPU noise (the same noise as diffusers with a CPU generator).
    #[arg(long, conflicts_with = "latents")]
    pub seed: Option<u64>,
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
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (device, precision) = backend::parse(&a.device, &a.dtype)?;
    let mut req = Request::new(a.prompt.clone(), a.height, a.width)
        .steps(a.steps)
        .max_sequence_length(a.max_sequence_length)
        .latents(InitialLatents::from_options(a.latents.as_deref(), a.seed));
    req.negative_prompt = a.negative_prompt.clone();
    req.true_cfg_scale = a.true_cfg_scale;
    req.guidance_scale = a.guidance_scale;
    with_backend!(device, precision, |B, dev| {
        let pipe = QwenImagePipeline::<B>::load_revision(&a.model, a.revision.as_deref(), &dev)
            .with_context(|| format!("loading the pipeline {}", a.model))?;
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

/// Ctrl-C sets the pipeline's cancel flag: the loop stops after the current step and nothing is
/// written. A second Ctrl-C exits at once.
pub fn install_ctrlc(flag: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after the current step (Ctrl-C again to quit now)");
    });
}

/// Run a request with a progress bar over the denoising steps.
pub fn generate_with_progress<B: Backend>(
    pipe: &QwenImagePipeline<B>,
    req: &Request,
    label: &str,
) -> anyhow::Result<Output<B>> {
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} steps {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let out = pipe.generate(req, &mut |e| match e {
        Event::Warning(w) => bar.println(format!("warning: {w}")),
        Event::Start { steps } => {
            bar.set_length(steps as u64);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Event::Step { index, .. } => bar.set_position(index as u64 + 1),
        Event::Decode => bar.set_message("decoding"),
    });
    bar.finish_and_clear();
    Ok(out?)
}

/// Save an image by extension, through a temp file renamed into place.
pub fn save_image(img: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    let format = image::ImageFormat::from_path(path).with_context(|| {
        format!(
            "{}: unknown image extension (use .png, .jpg or .webp)",
            path.display()
        )
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("img")
    ));
    let write = || -> anyhow::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        match format {
            // Upstream saves official JPEG GT at quality 75.
            image::ImageFormat::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 75).encode_image(img)?
            }
            _ => img.write_to(&mut f, format)?,
        }
        use std::io::Write;
        f.flush()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
