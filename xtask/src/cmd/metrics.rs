//! `cargo xtask metrics OUT.png GT.png`: SSIM, PSNR, mean absolute difference and CLIP similarity
//! of one output image against its ground truth, as upstream's consistency check computes them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use metrics::{ClipImageEncoder, Error, ImageMetrics, PixelMetrics, RgbImage, load_rgb};

use crate::backend;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Generated image.
    pub output: PathBuf,
    /// Ground-truth image.
    pub gt: PathBuf,
    /// CLIP model: a local folder or an HF repo id (default openai/clip-vit-large-patch14).
    #[arg(long)]
    pub clip_model: Option<String>,
    /// Print `{"ssim": x, "psnr": x, "mean_abs_diff": x, "clip": x|null}`.
    #[arg(long)]
    pub json: bool,
}

/// CLIP similarity, or why there is none. A model that cannot be had (offline, not cached) is a
/// skip with its reason; a model that is there but broken is an error.
fn clip_similarity(
    model: &str,
    output: &RgbImage,
    gt: &RgbImage,
) -> anyhow::Result<Result<f64, String>> {
    let encoder = match ClipImageEncoder::<backend::Cpu>::load(model, &Default::default()) {
        Ok(e) => e,
        Err(e @ Error::ModelUnavailable { .. }) => return Ok(Err(e.to_string())),
        Err(e) => return Err(e).with_context(|| format!("loading CLIP model {model}")),
    };
    let similarity = encoder
        .similarity(output, gt)
        .context("computing the CLIP similarity")?;
    Ok(Ok(similarity))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let output = load_rgb(&args.output)?;
    let gt = load_rgb(&args.gt)?;
    let pixel = PixelMetrics::compute(&output, &gt)?;
    let model = args
        .clip_model
        .as_deref()
        .unwrap_or(metrics::DEFAULT_CLIP_MODEL);
    let clip = clip_similarity(model, &output, &gt)?;
    let metrics = ImageMetrics::new(pixel, clip.as_ref().ok().copied());

    if args.json {
        // The JSON shape is a contract (docs/formats.md): the skip reason goes to stderr, not into it.
        if let Err(reason) = &clip {
            eprintln!("clip: skipped: {reason}");
        }
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        println!("ssim           {:.6}", metrics.ssim);
        if metrics.psnr.is_infinite() {
            println!("psnr           inf (identical images)");
        } else {
            println!("psnr           {:.4} dB", metrics.psnr);
        }
        println!("mean_abs_diff  {:.6}", metrics.mean_abs_diff);
        match &clip {
            Ok(c) => println!("clip           {c:.6}  ({model})"),
            Err(reason) => println!("clip           skipped, not checked: {reason}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
