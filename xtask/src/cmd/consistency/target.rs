//! What produces a case's output: a [`Target`] turns a case into the image that is judged: the
//! pipeline in process on a backend ([`InProcess`]), or servers that speak SGLang's image API
//! (`server`). The same comparison and report follow either.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::backend::Backend;
use cases::Case;
use image::RgbImage;
use pipeline::Pipeline;
use torch_rng::CudaPlatform;

use super::report::{CaseReport, TargetReport, Timings};
use super::settings::Settings;
use crate::prefetch::InputFetcher;
use crate::util::{generate_with_progress, install_ctrlc, save_image, save_rgba_png};
use crate::{backend, with_backend};

/// One case's output, saved under `OUT/cases/<id>/`.
pub(super) struct Produced {
    /// The image that is judged (Layered: the first layer without its alpha, what upstream's
    /// consistency test compares).
    pub image: RgbImage,
    pub height: usize,
    pub width: usize,
    /// Layered: the caption used when the prompt was empty.
    pub caption: Option<String>,
    pub timings: Timings,
    /// The saved output, relative to the output folder.
    pub output_rel: String,
    /// The input images as the target read them (`cases/<id>/input_<k>.png`), relative to the
    /// output folder.
    pub inputs_rel: Vec<String>,
    /// Layered: every RGBA layer (`cases/<id>/layer_<k>.png`), relative to the output folder.
    pub layers_rel: Vec<String>,
    /// `output_rel` holds the encoded bytes the target answered and `image` is them as PIL
    /// decodes them: judged as they are (a JPEG answer is not encoded again) and kept as they are.
    pub raw_answer: bool,
}

/// Turns cases into outputs.
pub(super) trait Target {
    /// Generate `case` and save what it gave under `out_dir/cases/<id>/`.
    fn produce(&mut self, case: &Case, out_dir: &Path) -> anyhow::Result<Produced>;

    /// Say in `report` what produced `case` (and, for a server, what was sent and how long it
    /// took), whether it was produced, failed or could not run.
    fn annotate(&mut self, case: &Case, report: &mut CaseReport);
}

/// A target that answered, wrongly (an HTTP error status, a body that is not an image, no answer
/// in time): the case failed, as opposed to a case that could not run.
#[derive(Debug)]
pub(super) struct Misbehaved(pub String);

impl std::fmt::Display for Misbehaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Misbehaved {}

/// Run `f` with the in-process target on the run's device and dtype.
pub(super) fn in_process<T>(
    s: &Settings,
    f: impl FnOnce(&mut dyn Target) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (device, precision) = backend::parse(&s.device, &s.dtype)?;
    let label = TargetReport::InProcess {
        device: s.device.clone(),
        dtype: s.dtype.clone(),
    };
    with_backend!(device, precision, |B, dev| f(&mut InProcess::<B>::new(
        &dev,
        s.cuda_layout,
        s.image_fetcher(),
        label
    )))
}

/// The pipelines in this process: each model loaded once for the run, with one Ctrl-C handler
/// shared by every pipeline.
struct InProcess<'d, B: Backend> {
    pipes: HashMap<String, Result<Pipeline<B>, String>>,
    cancel: Arc<AtomicBool>,
    device: &'d B::Device,
    /// The CUDA generator layout of `generator = "cuda"` cases.
    cuda_layout: CudaPlatform,
    /// Fetches input images given as URLs.
    inputs: InputFetcher,
    /// The device and dtype, as the report names them.
    label: TargetReport,
}

impl<'d, B: Backend> InProcess<'d, B> {
    fn new(
        device: &'d B::Device,
        cuda_layout: CudaPlatform,
        inputs: InputFetcher,
        label: TargetReport,
    ) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        install_ctrlc(cancel.clone());
        Self {
            pipes: HashMap::new(),
            cancel,
            device,
            cuda_layout,
            inputs,
            label,
        }
    }
}

impl<B: Backend> Target for InProcess<'_, B> {
    fn annotate(&mut self, _case: &Case, report: &mut CaseReport) {
        report.target = Some(self.label.clone());
    }

    fn produce(&mut self, case: &Case, out_dir: &Path) -> anyhow::Result<Produced> {
        // Sizes, steps and scales are refused before the case's model is loaded.
        case.validate()?;
        // Input images given as URLs come through the GT files' verified cache (offline: only
        // from it), before any model is loaded.
        let inputs = &mut self.inputs;
        let images =
            case.load_images(&mut |url| inputs.fetch(url).map_err(|e| format!("{e:#}")))?;
        // The inputs as the pipeline reads them, for the report.
        let mut inputs_rel = Vec::with_capacity(images.len());
        for (k, img) in images.iter().enumerate() {
            let rel = format!("cases/{}/input_{k}.png", case.id);
            save_image(&img.to_rgb(), &out_dir.join(&rel))?;
            inputs_rel.push(rel);
        }
        let request = case.request_on(self.cuda_layout).images(images);
        let t_load = Instant::now();
        let pipe = self.pipes.entry(case.model.clone()).or_insert_with(|| {
            Pipeline::<B>::load(&case.model, self.device)
                .map(|p| p.with_cancel_flag(self.cancel.clone()))
                .map_err(|e| format!("cannot load the pipeline {}: {e}", case.model))
        });
        let load = t_load.elapsed().as_secs_f64();
        let pipe = pipe.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = generate_with_progress(pipe, &request, &case.id)?;
        let timings = Timings {
            load,
            text_encoder: out.timings.text_encoder.as_secs_f64(),
            image_encoder: out.timings.image_encoder.as_secs_f64(),
            denoise: out.timings.denoise.as_secs_f64(),
            decode: out.timings.decode.as_secs_f64(),
            ..Timings::default()
        };
        let output_rel = format!("cases/{}/output.{}", case.id, case.output_format);
        // Layered: `out.image` is the first layer without its alpha, what upstream compares;
        // every RGBA layer is kept beside it.
        save_image(&out.image, &out_dir.join(&output_rel))?;
        let mut layers_rel = Vec::with_capacity(out.layers.len());
        for (k, layer) in out.layers.iter().enumerate() {
            let rel = format!("cases/{}/layer_{k}.png", case.id);
            save_rgba_png(layer, &out_dir.join(&rel))?;
            layers_rel.push(rel);
        }
        Ok(Produced {
            caption: out.caption.map(|c| c.text),
            image: out.image,
            height: out.height,
            width: out.width,
            timings,
            output_rel,
            inputs_rel,
            layers_rel,
            raw_answer: false,
        })
    }
}
