//! [`QwenImagePipeline`]: text to image, the stages of [`crate::stages`] in diffusers' order.

use std::time::Instant;

use burn::tensor::backend::Backend;
use qwen_image_vae::QwenImageVae;
use weights::PipelineDir;

use crate::error::Error;
use crate::request::{Event, Output, Request, StageTimings};
use crate::stages::{self, Components, Denoiser, Size, Warnings};

/// diffusers' default output side for text to image (`default_sample_size · vae_scale_factor`).
const DEFAULT_SIZE: usize = 1024;

/// A loaded text-to-image folder: tokenizer + text encoder, transformer, VAE decoder and
/// scheduler config. Loaded through [`crate::Pipeline`] (and taken out of it with `try_from`).
pub struct QwenImagePipeline<B: Backend> {
    pub(crate) c: Components<B>,
    vae: QwenImageVae<B>,
}

impl<B: Backend> std::fmt::Debug for QwenImagePipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImagePipeline")
            .field("c", &self.c)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> QwenImagePipeline<B> {
    /// The text-to-image pipeline of a folder whose shared parts are loaded: adds the VAE
    /// decoder (never the encoder).
    pub(crate) fn from_dir(c: Components<B>, dir: &PipelineDir) -> Result<Self, Error> {
        let vae = QwenImageVae::load(dir.component("vae")?, &c.device)?;
        Ok(Self { c, vae })
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
            self.c.vae_scale_factor,
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
        let schedule = self
            .c
            .scheduler
            .schedule(req.num_inference_steps, size.num_tokens())?;
        let plan = stages::plan_loop(
            schedule,
            &self.c.transformer,
            &[size.image_shape()],
            &prompts,
            &self.c.device,
        )?;

        let t1 = Instant::now();
        let denoised = Denoiser::new(&self.c, &guidance, &prompts, &plan)
            .run(latents, None, None, on_event)?;
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
