//! [`QwenImageLayeredPipeline`]: RGBA layer decomposition as diffusers 0.42.1's
//! `QwenImageLayeredPipeline` runs it (Qwen/Qwen-Image-Layered).
//!
//! The input image (RGBA) is resized to the resolution bucket (640 or 1024: about that many
//! pixels squared at the input's aspect ratio, sides multiples of 32), encoded by the 4-channel
//! VAE and appended after the noise as one more frame. The noise is `layers + 1` frames of the
//! output size, each packed into 2×2 tokens on its own; the first frame is the composite and is
//! dropped after decoding, the others are the layers. The DiT uses the Layer3D RoPE (frames
//! 0…layers, the condition image at −1) and `additional_t_cond = 0`. The schedule differs from
//! text to image: base sigmas `linspace(1, 0, steps + 1)` without the last, and μ =
//! √(condition tokens / 256). True CFG may skip the norm rescale (`cfg_normalize`, off by
//! default in diffusers; SGLang's Layered defaults turn it on). A prompt that is missing, empty
//! or a single space is replaced by a caption of the resized input, made by the text encoder
//! ([`text_encoder::Captioner`], loaded on first use: the text-to-image path never holds
//! `lm_head`).
//!
//! The stages of its own are free functions, one module per concern: `input` (the bucket resize
//! and the input's VAE latents), `noise` (the frames of noise and the schedule), `decode` (the
//! RGBA layers). This module composes them with the shared [`crate::stages`] and captions.

use std::sync::OnceLock;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use flow_match::Schedule;
use image::{DynamicImage, RgbImage, RgbaImage};
use image_io::LayeredResolution;
use qwen_image_vae::QwenImageAutoencoder;
use text_encoder::{Caption, CaptionLanguage, Captioner};
use weights::PipelineDir;

use crate::error::Error;
use crate::input::InputImage;
use crate::latents::InitialLatents;
use crate::request::{Event, LayeredOptions, Output, Request, StageTimings};
use crate::stages::{self, Components, Denoiser, Warnings};

mod decode;
mod input;
mod noise;

pub use decode::drop_alpha;
pub use input::LayeredInput;

/// `get_image_caption`'s `max_new_tokens`.
const CAPTION_MAX_NEW_TOKENS: usize = text_encoder::DEFAULT_MAX_NEW_TOKENS;

/// The most layers a request may ask for: the DiT's Layer3D table has 4096 frame positions and
/// every layer costs a frame of tokens; far past what the model was trained on (up to ~10), but a
/// bound that keeps every size computation small.
pub const MAX_LAYERS: usize = 64;

/// True for the prompts diffusers replaces with a caption: `None`, `""` or `" "` (exactly one
/// space; other whitespace is a prompt).
pub fn needs_caption(prompt: Option<&str>) -> bool {
    matches!(prompt, None | Some("") | Some(" "))
}

/// A loaded Layered folder: tokenizer + text encoder (text only, the text-to-image template),
/// transformer (Layer3D RoPE, `additional_t_cond`), the RGBA VAE (encoder and decoder) and the
/// scheduler config; the captioner (vision tower, `lm_head`, processor, generation config) is
/// loaded the first time a prompt is empty. Loaded through [`crate::Pipeline`] (and taken out of
/// it with `try_from`).
pub struct QwenImageLayeredPipeline<B: Backend> {
    pub(crate) c: Components<B>,
    captioner: OnceLock<Captioner<B>>,
    vae: QwenImageAutoencoder<B>,
}

impl<B: Backend> std::fmt::Debug for QwenImageLayeredPipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImageLayeredPipeline")
            .field("c", &self.c)
            .field("captioner_loaded", &self.captioner.get().is_some())
            .finish_non_exhaustive()
    }
}

/// The one input image of a Layered request and a checked layer count.
fn check_request(req: &Request) -> Result<(&InputImage, LayeredOptions), Error> {
    let input = match req.images.as_slice() {
        [one] => one,
        other => {
            return Err(Error::Request(format!(
                "QwenImageLayeredPipeline takes exactly one input image, got {}",
                other.len()
            )));
        }
    };
    let opts = req.layered;
    if !(1..=MAX_LAYERS).contains(&opts.layers) {
        return Err(Error::Request(format!(
            "layers must be between 1 and {MAX_LAYERS} (got {})",
            opts.layers
        )));
    }
    Ok((input, opts))
}

impl<B: Backend> QwenImageLayeredPipeline<B> {
    /// The Layered pipeline of a folder whose shared parts are loaded: adds the RGBA VAE, encoder
    /// and decoder. `processor/` and the text encoder's vision tower and `lm_head` are read only
    /// when a caption is needed.
    pub(crate) fn from_dir(c: Components<B>, dir: &PipelineDir) -> Result<Self, Error> {
        let vae = QwenImageAutoencoder::load(dir.component("vae")?, &c.device)?;
        if vae.config().input_channels != 4 {
            return Err(Error::PipelineClass {
                path: dir.root().join("vae/config.json"),
                reason: format!(
                    "the Layered pipeline encodes and decodes RGBA images, but this VAE takes {} \
                     channels",
                    vae.config().input_channels
                ),
            });
        }
        Ok(Self {
            c,
            captioner: OnceLock::new(),
            vae,
        })
    }

    /// The size diffusers generates for an input of `(width, height)` pixels in `resolution`'s
    /// bucket, as `(height, width)`: `calculate_dimensions(res², w / h)` (multiples of 32).
    pub fn output_size(input: (u32, u32), resolution: LayeredResolution) -> (usize, usize) {
        input::output_size(input, resolution)
    }

    /// The captioner, loaded on first use from the folder's `text_encoder/` and `processor/`
    /// around the language model the prompt encoder already holds.
    pub fn captioner(&self) -> Result<&Captioner<B>, Error> {
        if let Some(c) = self.captioner.get() {
            return Ok(c);
        }
        // Share the prompt encoder's language model: loading it again would double the 7B.
        let loaded = Captioner::from_pipeline_dir_with_encoder(
            &self.c.root,
            self.c.text.encoder().clone(),
            &self.c.device,
        )?;
        Ok(self.captioner.get_or_init(|| loaded))
    }

    /// `get_image_caption(prompt_image, use_en_prompt)`: the bucket-resized RGBA input,
    /// composited onto white as `Qwen2VLProcessor` does, captioned with up to 512 new tokens.
    pub fn caption(&self, prompt_image: &RgbaImage, use_en_prompt: bool) -> Result<Caption, Error> {
        let rgb: RgbImage =
            image_io::convert_to_rgb(&DynamicImage::ImageRgba8(prompt_image.clone()));
        Ok(self.captioner()?.caption(
            &rgb,
            CaptionLanguage::from_use_en_prompt(use_en_prompt),
            CAPTION_MAX_NEW_TOKENS,
        )?)
    }

    /// Run one decomposition: `req`'s one input image, prompt (empty: captioned) and Layered
    /// settings; `height` and `width` are ignored, as diffusers' Layered `__call__` has none (the
    /// size follows the input's aspect ratio in the bucket). [`Output::layers`] holds the
    /// `layers` RGBA images; [`Output::image`] is the first of them with its alpha dropped
    /// (`convert("RGB")`), the image upstream's consistency test compares; [`Output::caption`]
    /// the caption when one was made.
    pub fn generate(
        &self,
        req: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Output<B>, Error> {
        let mut warnings = Warnings::default();
        // The shared bounds (steps, max_sequence_length ≤ 1024 as diffusers' check_inputs, CFG
        // scales); height and width, when given, are bounded too though Layered sizes by bucket.
        req.validate()?;
        let (input, opts) = check_request(req)?;
        let guidance = req.guidance()?.with_norm_rescale(opts.cfg_normalize);
        warnings.negative_prompt_unused(req.negative_prompt.as_deref(), &guidance, on_event);

        // 1. The input at the bucket size: the prompt image and the VAE latents.
        let t0 = Instant::now();
        let prepared = self.prepare_input(input, opts.resolution)?;
        let (height, width) = (prepared.height, prepared.width);
        let image_time = t0.elapsed();

        // 2. The prompt: given, or the caption of the prompt image.
        let t1 = Instant::now();
        let caption = if needs_caption(Some(&req.prompt)) {
            Some(self.caption(&prepared.prompt_image, opts.use_en_prompt)?)
        } else {
            None
        };
        let prompt = caption.as_ref().map_or(req.prompt.as_str(), |c| &c.text);
        let prompts = stages::encode_prompts(
            &self.c.text,
            prompt,
            req.negative_prompt.as_deref(),
            &guidance,
            req.max_sequence_length,
        )?;
        let text_time = t1.elapsed();

        // 3. Noise of layers + 1 frames, the schedule, and the RoPE tables: the layers + 1
        // output frames, then the input (the Layer3D table puts it at frame −1).
        let frames = opts.layers + 1;
        let latents = self.prepare_latents(&req.latents, opts.layers, height, width)?;
        let img_shapes = vec![self.c.frame_shape(height, width); frames + 1];
        let schedule = self.schedule(req.num_inference_steps, prepared.image_latents.dims()[1])?;
        let plan = stages::plan_loop(
            schedule,
            &self.c.transformer,
            &img_shapes,
            &prompts,
            &self.c.device,
        )?;

        // 4. The loop: the condition image's tokens after the noise; is_rgb = 0, for a
        // transformer that takes it (upstream passes it to any, which ignores it otherwise).
        let t2 = Instant::now();
        let takes_t_cond = self.c.transformer.config().use_additional_t_cond;
        let is_rgb = takes_t_cond.then(|| Tensor::<B, 1, Int>::zeros([1], &self.c.device));
        let denoised = Denoiser::new(&self.c, &guidance, &prompts, &plan).run(
            latents,
            Some(&prepared.image_latents),
            is_rgb,
            on_event,
        )?;
        let denoise_time = t2.elapsed();

        // 5. Decode every frame but the first (the composite).
        on_event(Event::Decode);
        let t3 = Instant::now();
        let layers = decode::decode_layers(&self.vae, denoised.latents, frames, height, width)?;
        let decode_time = t3.elapsed();
        let image = layers
            .first()
            .map(drop_alpha)
            .ok_or_else(|| Error::Request("the VAE returned no layer".into()))?;

        Ok(Output {
            image,
            height,
            width,
            latents_after_first_step: denoised.after_first_step,
            timings: StageTimings {
                text_encoder: text_time,
                image_encoder: image_time,
                denoise: denoise_time,
                decode: decode_time,
            },
            warnings: warnings.into_vec(),
            layers,
            caption,
        })
    }

    /// diffusers' steps 2 and the VAE half of `prepare_latents`: the input (taken as RGBA, PIL's
    /// `convert("RGBA")`) resized to the bucket size with Lanczos — the prompt image — then
    /// preprocessed to [−1, 1], encoded (posterior mean), normalised and packed as one frame.
    pub fn prepare_input(
        &self,
        input: &InputImage,
        resolution: LayeredResolution,
    ) -> Result<LayeredInput<B>, Error> {
        input::prepare_input(&self.c, &self.vae, input, resolution)
    }

    /// diffusers' `prepare_latents` for Layered: noise `(1, layers + 1, z, h, w)` drawn in one
    /// call, each frame packed into 2×2 tokens on its own and the frames concatenated:
    /// `[1, (layers + 1) · tokens, 4·z]` for a `height × width` output. Given latents must have
    /// that packed shape.
    pub fn prepare_latents(
        &self,
        source: &InitialLatents,
        layers: usize,
        height: usize,
        width: usize,
    ) -> Result<Tensor<B, 3>, Error> {
        noise::initial_latents(
            source,
            layers + 1,
            self.c.frame_shape(height, width),
            self.vae.config().z_dim,
            self.c.transformer.config().in_channels,
            &self.c.device,
        )
    }

    /// The Layered schedule for `steps` steps: base sigmas `linspace(1, 0, steps + 1)` without
    /// the last, μ = √(`image_tokens` / 256) where `image_tokens` is the input's packed length.
    pub fn schedule(&self, steps: usize, image_tokens: usize) -> Result<Schedule, Error> {
        noise::schedule(&self.c.scheduler, steps, image_tokens)
    }
}
