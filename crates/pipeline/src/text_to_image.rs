//! [`QwenImagePipeline`]: text to image, the stages of [`crate::stages`] in diffusers' order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::backend::Backend;
use qwen_image_vae::QwenImageVae;
use weights::PipelineDir;

use crate::kind::PipelineKind;
use crate::stages::{self, Components, Denoiser, Size, Warnings};
use crate::{Error, Event, Output, Request, StageTimings};

/// diffusers' default output side for text to image (`default_sample_size · vae_scale_factor`).
const DEFAULT_SIZE: usize = 1024;

/// The loaded pipeline: tokenizer + text encoder, transformer, VAE and scheduler config.
pub struct QwenImagePipeline<B: Backend> {
    c: Components<B>,
    vae: QwenImageVae<B>,
}

impl<B: Backend> std::fmt::Debug for QwenImagePipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImagePipeline")
            .field("scheduler", &self.c.scheduler)
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
        Ok(Self {
            c: Components::load(dir, device)?,
            vae: QwenImageVae::load(dir.component("vae")?, device)?,
        })
    }

    /// A flag that, once set (e.g. from a Ctrl-C handler), stops the loop after the current step
    /// with [`Error::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.c.cancel.clone()
    }

    /// Share one cancel flag between several pipelines (e.g. a run over many models, with one
    /// Ctrl-C handler).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.c.cancel = flag;
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
        let mut warnings = Warnings::default();
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
            warnings.warn(msg, on_event);
        }
        let guidance = req.guidance()?;
        warnings.negative_prompt_unused(req.negative_prompt.as_deref(), &guidance, on_event);

        let t0 = Instant::now();
        let prompts = stages::encode_prompts(
            &self.c.text,
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
            self.c.transformer.config().in_channels,
            &self.c.device,
        )?;
        let plan = stages::plan_loop(
            &self.c.scheduler,
            &self.c.transformer,
            req.num_inference_steps,
            size.num_tokens(),
            &[size.image_shape()],
            &prompts,
            &self.c.device,
        )?;

        let t1 = Instant::now();
        let denoised = Denoiser {
            transformer: &self.c.transformer,
            guidance: &guidance,
            prompts: &prompts,
            plan: &plan,
            cancel: &self.c.cancel,
            device: &self.c.device,
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
            warnings: warnings.into_vec(),
            layers: Vec::new(),
            caption: None,
        })
    }
}
