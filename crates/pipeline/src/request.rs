//! What a generation is asked ([`Request`]) and what it answers ([`Output`], [`Event`]).

use std::time::Duration;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use cfg::Guidance;
use image::{RgbImage, RgbaImage};
use text_encoder::{Caption, VisionPositions};

use crate::Error;
use crate::input::InputImage;
use crate::latents::InitialLatents;
use crate::layered::LayeredOptions;

/// diffusers' default `true_cfg_scale`, used when a negative prompt is given with no scale at all.
const DEFAULT_TRUE_CFG_SCALE: f32 = 4.0;

/// One generation's settings: [`Request::new`] (text to image) or [`Request::edit`] (Edit /
/// Edit-Plus), then the chained setters.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) prompt: String,
    pub(crate) negative_prompt: Option<String>,
    pub(crate) true_cfg_scale: Option<f32>,
    pub(crate) guidance_scale: Option<f32>,
    /// `None`: the pipeline's default (text to image 1024; Edit: from the last input image).
    pub(crate) height: Option<usize>,
    pub(crate) width: Option<usize>,
    pub(crate) num_inference_steps: usize,
    pub(crate) max_sequence_length: usize,
    pub(crate) latents: InitialLatents,
    /// The input images of an Edit / Edit-Plus request, in order (empty for text to image).
    pub(crate) images: Vec<InputImage>,
    /// How the text encoder numbers the tokens of a prompt with images.
    pub(crate) vision_positions: VisionPositions,
    /// The Layered settings (layers, resolution bucket, CFG normalisation, caption language).
    pub(crate) layered: LayeredOptions,
}

impl Request {
    /// A request with diffusers' defaults: 50 steps, no negative prompt (CFG off), 512 text rows,
    /// seed 0.
    pub fn new(prompt: impl Into<String>, height: usize, width: usize) -> Self {
        Self::edit(prompt, Vec::new()).height(height).width(width)
    }

    /// An Edit / Edit-Plus request on `images` (Edit: exactly one; Edit-Plus: one or more), with
    /// the same defaults; the output size follows the last image unless [`Self::height`] /
    /// [`Self::width`] set it, as in diffusers.
    pub fn edit(prompt: impl Into<String>, images: Vec<InputImage>) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: None,
            true_cfg_scale: None,
            guidance_scale: None,
            height: None,
            width: None,
            num_inference_steps: 50,
            max_sequence_length: 512,
            latents: InitialLatents::Seed(0),
            images,
            vision_positions: VisionPositions::default(),
            layered: LayeredOptions::default(),
        }
    }

    /// Output height (floored to a multiple of 16, as diffusers does).
    pub fn height(mut self, h: usize) -> Self {
        self.height = Some(h);
        self
    }

    /// Output width (floored to a multiple of 16, as diffusers does).
    pub fn width(mut self, w: usize) -> Self {
        self.width = Some(w);
        self
    }

    /// The input images (Edit / Edit-Plus), in order.
    pub fn images(mut self, images: Vec<InputImage>) -> Self {
        self.images = images;
        self
    }

    /// How the text encoder numbers a prompt's image tokens: Qwen2.5-VL's 3-D M-RoPE (the
    /// default, the model as trained) or the sequential positions of the pinned diffusers +
    /// transformers 5 pairing ([`VisionPositions`]).
    pub fn vision_positions(mut self, p: VisionPositions) -> Self {
        self.vision_positions = p;
        self
    }

    /// The negative prompt; without one, CFG is off (as in diffusers).
    pub fn negative_prompt(mut self, p: impl Into<String>) -> Self {
        self.negative_prompt = Some(p.into());
        self
    }

    /// The CFG scale; falls back to `guidance_scale`, then to diffusers' default 4.0.
    pub fn true_cfg_scale(mut self, s: f32) -> Self {
        self.true_cfg_scale = Some(s);
        self
    }

    /// Used as the CFG scale when `true_cfg_scale` is absent (upstream SGLang's fallback).
    pub fn guidance_scale(mut self, s: f32) -> Self {
        self.guidance_scale = Some(s);
        self
    }

    /// Denoising steps.
    pub fn steps(mut self, n: usize) -> Self {
        self.num_inference_steps = n;
        self
    }

    /// Text rows kept per prompt (1..=1024; diffusers' default 512).
    pub fn max_sequence_length(mut self, n: usize) -> Self {
        self.max_sequence_length = n;
        self
    }

    /// Where the initial noise comes from.
    pub fn latents(mut self, l: InitialLatents) -> Self {
        self.latents = l;
        self
    }

    /// The CFG decision diffusers makes: on only with a negative prompt and a scale > 1.
    pub fn guidance(&self) -> Result<Guidance, Error> {
        let has_negative = self.negative_prompt.is_some();
        let true_cfg = match (self.true_cfg_scale, self.guidance_scale) {
            (None, None) if has_negative => Some(DEFAULT_TRUE_CFG_SCALE),
            (t, _) => t,
        };
        Ok(Guidance::from_settings(
            true_cfg,
            self.guidance_scale,
            has_negative,
        )?)
    }
}

/// Progress of a generation, for bars and logs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message the user should see (e.g. a size that was floored).
    Warning(String),
    /// Text encoding is done; the loop of `steps` steps starts.
    Start { steps: usize },
    /// Step `index` (0-based) of `steps` finished.
    Step { index: usize, steps: usize },
    /// The VAE decode starts.
    Decode,
}

/// Wall time per stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimings {
    /// The prompts (for Edit: with the vision tower on the condition images).
    pub text_encoder: Duration,
    /// Edit: preparing the input images and encoding them with the VAE (zero for text to image).
    pub image_encoder: Duration,
    pub denoise: Duration,
    pub decode: Duration,
}

/// What a generation returns.
#[derive(Debug)]
pub struct Output<B: Backend> {
    /// The image (Layered: the first layer with its alpha dropped, the image upstream's
    /// consistency test compares).
    pub image: RgbImage,
    /// The size actually generated (floored to multiples of 16).
    pub height: usize,
    pub width: usize,
    /// Packed latents after the first step, so a mismatch with the reference can be located.
    pub latents_after_first_step: Option<Tensor<B, 3>>,
    pub timings: StageTimings,
    pub warnings: Vec<String>,
    /// Layered: the `layers` RGBA images in diffusers' order (empty for the other pipelines).
    pub layers: Vec<RgbaImage>,
    /// Layered: the caption used as the prompt when the request's prompt was empty.
    pub caption: Option<Caption>,
}
