//! [`QwenImagePipeline`]: text to image, the stages of [`crate::stages`] in diffusers' order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::backend::Backend;
use flow_match::SchedulerConfig;
use qwen_image_dit::QwenImageTransformer;
use qwen_image_vae::QwenImageVae;
use text_encoder::PromptEncoder;
use weights::PipelineDir;

use crate::kind::PipelineKind;
use crate::stages::{self, Denoiser, Size};
use crate::{Error, Event, Output, Request, StageTimings};

/// diffusers' default output side for text to image (`default_sample_size · vae_scale_factor`).
const DEFAULT_SIZE: usize = 1024;

/// The loaded pipeline: tokenizer + text encoder, transformer, VAE and scheduler config.
pub struct QwenImagePipeline<B: Backend> {
    text: PromptEncoder<B>,
    transformer: QwenImageTransformer<B>,
    vae: QwenImageVae<B>,
    scheduler: SchedulerConfig,
    device: B::Device,
    cancel: Arc<AtomicBool>,
}

impl<B: Backend> std::fmt::Debug for QwenImagePipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImagePipeline")
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> QwenImagePipeline<B> {
    /// Load a local diffusers-layout folder or an HF repo id (through the shared HF cache).
    pub fn load(model: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        Self::load_revision(&model.as_ref().to_string_lossy(), None, device)
    }

    /// [`Self::load`] with an HF revision (branch, tag or commit) for a repo id; `None` = `main`.
    pub fn load_revision(
        model: &str,
        revision: Option<&str>,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let dir = weights::resolve_pipeline(model, revision)?;
        Self::from_dir(&dir, device)
    }

    /// Load from an opened pipeline folder. Every component must be present, and the folder must
    /// declare `QwenImagePipeline` (or no class); [`crate::Pipeline`] loads any kind.
    pub fn from_dir(dir: &PipelineDir, device: &B::Device) -> Result<Self, Error> {
        PipelineKind::of(dir)?.expect_one_of(
            &[PipelineKind::TextToImage],
            dir,
            "QwenImagePipeline",
        )?;
        let scheduler_dir = dir.component("scheduler")?;
        let scheduler = SchedulerConfig::from_file(scheduler_dir.join("scheduler_config.json"))?;
        let text = PromptEncoder::from_pipeline_dir(dir.root(), device)?;
        let transformer = QwenImageTransformer::load(&dir.component("transformer")?, device)?;
        let vae = QwenImageVae::load(dir.component("vae")?, device)?;
        Ok(Self {
            text,
            transformer,
            vae,
            scheduler,
            device: device.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A flag that, once set (e.g. from a Ctrl-C handler), stops the loop after the current step
    /// with [`Error::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Share one cancel flag between several pipelines (e.g. a run over many models, with one
    /// Ctrl-C handler).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// The VAE's spatial compression (8 for Qwen-Image); sizes are floored to twice this.
    pub fn vae_scale_factor(&self) -> usize {
        self.vae.config().scale_factor()
    }

    /// Run one generation.
    pub fn generate(
        &self,
        req: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Output<B>, Error> {
        let mut warnings = Vec::new();
        let mut warn = |msg: String, on_event: &mut dyn FnMut(Event)| {
            on_event(Event::Warning(msg.clone()));
            warnings.push(msg);
        };
        req.validate()?;
        if !req.images.is_empty() {
            return Err(Error::Request(format!(
                "{} input image(s) given, but this is a text-to-image pipeline \
                 (QwenImagePipeline): images need an Edit or Edit-Plus folder",
                req.images.len()
            )));
        }
        // diffusers: height or default_sample_size · vae_scale_factor (128 · 8).
        let (size, floored) = Size::floor(
            req.height.unwrap_or(DEFAULT_SIZE),
            req.width.unwrap_or(DEFAULT_SIZE),
            self.vae_scale_factor(),
        )?;
        if let Some(msg) = floored {
            warn(msg, on_event);
        }
        let guidance = req.guidance()?;
        if req.negative_prompt.is_some() && !guidance.is_enabled() {
            warn(
                "a negative prompt was given but the CFG scale is ≤ 1: CFG is off".into(),
                on_event,
            );
        }

        let t0 = Instant::now();
        let prompts = stages::encode_prompts(
            &self.text,
            &req.prompt,
            req.negative_prompt.as_deref(),
            &guidance,
            req.max_sequence_length,
        )?;
        let text_time = t0.elapsed();

        let latents = stages::initial_latents::<B>(
            &req.latents,
            size,
            self.vae.config().z_dim,
            self.transformer.config().in_channels,
            &self.device,
        )?;
        let plan = stages::plan_loop(
            &self.scheduler,
            &self.transformer,
            req.num_inference_steps,
            size.num_tokens(),
            &[size.image_shape()],
            &prompts,
            &self.device,
        )?;

        let t1 = Instant::now();
        let denoised = Denoiser {
            transformer: &self.transformer,
            guidance: &guidance,
            prompts: &prompts,
            plan: &plan,
            cancel: &self.cancel,
            device: &self.device,
        }
        .run(latents, None, on_event)?;
        let denoise_time = t1.elapsed();

        on_event(Event::Decode);
        let t2 = Instant::now();
        let image = stages::decode(&self.vae, denoised.latents, size)?;
        let decode_time = t2.elapsed();

        Ok(Output {
            image,
            height: size.height,
            width: size.width,
            latents_after_first_step: denoised.after_first_step,
            timings: StageTimings {
                text_encoder: text_time,
                denoise: denoise_time,
                decode: decode_time,
                ..StageTimings::default()
            },
            warnings,
            layers: Vec::new(),
            caption: None,
        })
    }
}
