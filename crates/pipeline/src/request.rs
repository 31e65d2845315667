//! What a generation is asked ([`Request`], with the Layered settings [`LayeredOptions`]) and
//! what it answers ([`Output`], [`Event`]).

use std::time::Duration;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use cfg::Guidance;
use image::{RgbImage, RgbaImage};
use image_io::LayeredResolution;
use text_encoder::{Caption, VisionPositions};

use crate::error::Error;
use crate::input::InputImage;
use crate::latents::InitialLatents;

/// diffusers' default `true_cfg_scale`, used when a negative prompt is given with no scale at all.
const DEFAULT_TRUE_CFG_SCALE: f32 = 4.0;

/// One generation's settings: [`Request::new`] (text to image) or [`Request::edit`] (Edit /
/// Edit-Plus), then the chained setters. The fields are public so that a mapping from another
/// format (the case file, an HTTP API) can set an optional value as it is and read back what it
/// built; [`Request::validate`] checks them, and `generate` checks them again.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub true_cfg_scale: Option<f32>,
    pub guidance_scale: Option<f32>,
    /// `None`: the pipeline's default (text to image 1024; Edit: from the last input image).
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub num_inference_steps: usize,
    pub max_sequence_length: usize,
    pub latents: InitialLatents,
    /// The input images of an Edit / Edit-Plus request, in order (empty for text to image).
    pub images: Vec<InputImage>,
    /// How the text encoder numbers the tokens of a prompt with images.
    pub vision_positions: VisionPositions,
    /// The Layered settings (layers, resolution bucket, CFG normalisation, caption language).
    pub layered: LayeredOptions,
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

/// The Layered settings of a [`Request`] (diffusers' `__call__` arguments of the same names);
/// ignored by the other pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayeredOptions {
    /// Number of RGBA layers to output (diffusers' default 4).
    pub layers: usize,
    /// The resolution bucket of the input (and output) size (default 640).
    pub resolution: LayeredResolution,
    /// Rescale the CFG combination to the conditional prediction's norm (diffusers' default off).
    pub cfg_normalize: bool,
    /// Caption an empty prompt in English rather than Chinese (diffusers' default off: Chinese).
    pub use_en_prompt: bool,
}

impl Default for LayeredOptions {
    /// diffusers' defaults: 4 layers, bucket 640, no CFG normalisation, Chinese caption prompt.
    fn default() -> Self {
        Self {
            layers: 4,
            resolution: LayeredResolution::R640,
            cfg_normalize: false,
            use_en_prompt: false,
        }
    }
}

/// The Layered request and its settings.
impl Request {
    /// A Layered request: decompose `image` into RGBA layers. An empty prompt (or a single
    /// space) makes the pipeline caption the image, as diffusers does; the other settings are
    /// diffusers' defaults ([`LayeredOptions::default`], 50 steps, CFG off without a negative
    /// prompt).
    pub fn layered(prompt: impl Into<String>, image: InputImage) -> Self {
        Self::edit(prompt, vec![image])
    }

    /// Number of output layers (Layered).
    pub fn layers(mut self, n: usize) -> Self {
        self.layered.layers = n;
        self
    }

    /// The resolution bucket (Layered).
    pub fn resolution(mut self, r: LayeredResolution) -> Self {
        self.layered.resolution = r;
        self
    }

    /// Rescale the CFG combination to the conditional norm (Layered's `cfg_normalize`).
    pub fn cfg_normalize(mut self, on: bool) -> Self {
        self.layered.cfg_normalize = on;
        self
    }

    /// Caption an empty prompt in English (Layered's `use_en_prompt`; else Chinese).
    pub fn use_en_prompt(mut self, on: bool) -> Self {
        self.layered.use_en_prompt = on;
        self
    }

    /// The Layered settings.
    pub fn layered_options(&self) -> LayeredOptions {
        self.layered
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
