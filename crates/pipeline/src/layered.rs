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

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use flow_match::Schedule;
use image::{DynamicImage, RgbImage, RgbaImage};
use image_io::LayeredResolution;
use qwen_image_dit::ImageShape;
use qwen_image_vae::QwenImageAutoencoder;
use text_encoder::{Caption, CaptionLanguage, Captioner};
use weights::PipelineDir;

use crate::input::InputImage;
use crate::kind::PipelineKind;
use crate::latents::{InitialLatents, load_latents_file, torch_noise};
use crate::stages::{self, Components, Denoiser, LoopPlan, Warnings};
use crate::{Error, Event, Output, Request, StageTimings};

/// `QwenImageLayeredPipeline`'s `base_seqlen = 256 * 256 / 16 / 16`: μ = √(tokens / 256).
const MU_BASE_TOKENS: f64 = 256.0 * 256.0 / 16.0 / 16.0;

/// `get_image_caption`'s `max_new_tokens`.
const CAPTION_MAX_NEW_TOKENS: usize = text_encoder::DEFAULT_MAX_NEW_TOKENS;

/// The most layers a request may ask for: the DiT's Layer3D table has 4096 frame positions and
/// every layer costs a frame of tokens; far past what the model was trained on (up to ~10), but a
/// bound that keeps every size computation small.
pub const MAX_LAYERS: usize = 64;

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

/// True for the prompts diffusers replaces with a caption: `None`, `""` or `" "` (exactly one
/// space; other whitespace is a prompt).
pub fn needs_caption(prompt: Option<&str>) -> bool {
    matches!(prompt, None | Some("") | Some(" "))
}

/// The input made ready for a Layered run ([`QwenImageLayeredPipeline::prepare_input`]).
#[derive(Debug, Clone)]
pub struct LayeredInput<B: Backend> {
    /// The bucket-resized RGBA input: what the captioner sees (`prompt_image`).
    pub prompt_image: RgbaImage,
    /// Its normalised VAE latents, packed as one frame: `[1, tokens, 4·z]`.
    pub image_latents: Tensor<B, 3>,
    /// The output size (the bucket size).
    pub height: usize,
    pub width: usize,
}

/// A loaded Layered folder: tokenizer + text encoder (text only, the text-to-image template),
/// transformer (Layer3D RoPE, `additional_t_cond`), the RGBA VAE (encoder and decoder) and the
/// scheduler config; the captioner (vision tower, `lm_head`, processor, generation config) is
/// loaded the first time a prompt is empty.
pub struct QwenImageLayeredPipeline<B: Backend> {
    root: PathBuf,
    c: Components<B>,
    captioner: OnceLock<Captioner<B>>,
    vae: QwenImageAutoencoder<B>,
}

impl<B: Backend> std::fmt::Debug for QwenImageLayeredPipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImageLayeredPipeline")
            .field("root", &self.root)
            .field("scheduler", &self.c.scheduler)
            .field("captioner_loaded", &self.captioner.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> QwenImageLayeredPipeline<B> {
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

    /// Load from an opened pipeline folder declaring `QwenImageLayeredPipeline`. Every component
    /// must be present; `processor/` and the text encoder's vision tower and `lm_head` are read
    /// only when a caption is needed.
    pub fn from_dir(dir: &PipelineDir, device: &B::Device) -> Result<Self, Error> {
        PipelineKind::of(dir)?.expect_one_of(
            &[PipelineKind::Layered],
            dir,
            "QwenImageLayeredPipeline",
        )?;
        let c = Components::load(dir, device)?;
        let vae = QwenImageAutoencoder::load(dir.component("vae")?, device)?;
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
            root: dir.root().to_path_buf(),
            c,
            captioner: OnceLock::new(),
            vae,
        })
    }

    /// A flag that, once set (e.g. from a Ctrl-C handler), stops the loop after the current step
    /// with [`Error::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.c.cancel.clone()
    }

    /// Share one cancel flag between several pipelines.
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.c.cancel = flag;
        self
    }

    /// The VAE's spatial compression (8 for Qwen-Image).
    pub fn vae_scale_factor(&self) -> usize {
        self.vae.config().scale_factor()
    }

    /// The size diffusers generates for an input of `(width, height)` pixels in `resolution`'s
    /// bucket, as `(height, width)`: `calculate_dimensions(res², w / h)` (multiples of 32).
    pub fn output_size(input: (u32, u32), resolution: LayeredResolution) -> (usize, usize) {
        let side = resolution.pixels();
        let (w, h) = image_io::calculate_dimensions(side * side, input.0 as f64 / input.1 as f64);
        (h as usize, w as usize)
    }

    /// The captioner, loaded on first use from the folder's `text_encoder/` and `processor/`
    /// around the language model the prompt encoder already holds.
    pub fn captioner(&self) -> Result<&Captioner<B>, Error> {
        if let Some(c) = self.captioner.get() {
            return Ok(c);
        }
        // Share the prompt encoder's language model: loading it again would double the 7B.
        let loaded = Captioner::from_pipeline_dir_with_encoder(
            &self.root,
            self.c.text.encoder().clone(),
            &self.c.device,
        )?;
        Ok(self.captioner.get_or_init(|| loaded))
    }

    /// `get_image_caption(prompt_image, use_en_prompt)`: the bucket-resized RGBA input,
    /// composited onto white as `Qwen2VLProcessor` does, captioned with up to 512 new tokens.
    pub fn caption(&self, prompt_image: &RgbaImage, use_en_prompt: bool) -> Result<Caption, Error> {
        let rgb: RgbImage =
            text_encoder::image_processor::to_rgb(&DynamicImage::ImageRgba8(prompt_image.clone()));
        Ok(self.captioner()?.caption(
            &rgb,
            CaptionLanguage::from_use_en_prompt(use_en_prompt),
            CAPTION_MAX_NEW_TOKENS,
        )?)
    }

    /// Run one decomposition: `req`'s one input image, prompt (empty: captioned) and Layered
    /// settings; `height` and `width` are ignored, as diffusers' Layered `__call__` has none (the
    /// size follows the input's aspect ratio in the bucket). [`Output::layers`] holds the `layers` RGBA images; [`Output::image`] is the
    /// first of them with its alpha dropped (`convert("RGB")`), the image upstream's consistency
    /// test compares; [`Output::caption`] the caption when one was made.
    pub fn generate(
        &self,
        req: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Output<B>, Error> {
        let mut warnings = Warnings::default();
        // The shared bounds (steps, max_sequence_length ≤ 1024 as diffusers' check_inputs, CFG
        // scales); height and width, when given, are bounded too though Layered sizes by bucket.
        req.validate()?;
        let opts = req.layered;
        let input = match req.images.as_slice() {
            [one] => one,
            other => {
                return Err(Error::Request(format!(
                    "QwenImageLayeredPipeline takes exactly one input image, got {}",
                    other.len()
                )));
            }
        };
        if !(1..=MAX_LAYERS).contains(&opts.layers) {
            return Err(Error::Request(format!(
                "layers must be between 1 and {MAX_LAYERS} (got {})",
                opts.layers
            )));
        }
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
        let frame = self.frame_shape(height, width);
        let img_shapes: Vec<ImageShape> = std::iter::repeat_n(frame, frames + 1).collect();
        let schedule = self.schedule(req.num_inference_steps, prepared.image_latents.dims()[1])?;
        let rope = |len: usize| self.c.transformer.rope(&img_shapes, len, &self.c.device);
        let plan = LoopPlan {
            schedule,
            cond_rope: rope(prompts.cond.embeds.dims()[1])?,
            uncond_rope: prompts
                .uncond
                .as_ref()
                .map(|u| rope(u.embeds.dims()[1]))
                .transpose()?,
        };

        // 4. The loop: the condition image's tokens after the noise; is_rgb = 0.
        let t2 = Instant::now();
        let is_rgb = Tensor::<B, 1, Int>::zeros([1], &self.c.device);
        let denoised = Denoiser {
            transformer: &self.c.transformer,
            guidance: &guidance,
            prompts: &prompts,
            plan: &plan,
            cancel: &self.c.cancel,
            device: &self.c.device,
        }
        .run_with_t_cond(
            latents,
            Some(&prepared.image_latents),
            Some(is_rgb),
            on_event,
        )?;
        let denoise_time = t2.elapsed();

        // 5. Decode every frame but the first (the composite).
        on_event(Event::Decode);
        let t3 = Instant::now();
        let layers = self.decode_layers(denoised.latents, frames, height, width)?;
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

    /// The token grid of one frame of a `height × width` output.
    fn frame_shape(&self, height: usize, width: usize) -> ImageShape {
        let per_token = 2 * self.vae_scale_factor();
        ImageShape::new(1, height / per_token, width / per_token)
    }

    /// diffusers' steps 2 and the VAE half of `prepare_latents`: the input (taken as RGBA, PIL's
    /// `convert("RGBA")`) resized to the bucket size with Lanczos — the prompt image — then
    /// preprocessed to [−1, 1], encoded (posterior mean), normalised and packed as one frame.
    pub fn prepare_input(
        &self,
        input: &InputImage,
        resolution: LayeredResolution,
    ) -> Result<LayeredInput<B>, Error> {
        let fail = |reason: String| Error::InputImage {
            image: input.source().to_string(),
            reason,
        };
        let rgba = input.rgba()?;
        let prepared =
            image_io::qwen_layered_image(&rgba, resolution).map_err(|e| fail(e.to_string()))?;
        let prompt_image = prepared.condition.to_rgba_image().ok_or_else(|| {
            fail(format!(
                "{} image after resizing",
                prepared.condition.mode()
            ))
        })?;
        let (w, h) = prepared.vae_size;
        let (height, width) = (h as usize, w as usize);
        let frame = self.frame_shape(height, width);
        let [b, c, ph, pw] = prepared.vae.shape;
        let image = Tensor::<B, 5>::from_data(
            TensorData::new(prepared.vae.data, [b, c, 1, ph, pw]),
            &self.c.device,
        );
        let latents = qwen_image_vae::normalize(self.vae.encode(image)?, self.vae.config())?;
        let image_latents = qwen_image_vae::pack_latents(latents)?;
        let n = image_latents.dims()[1];
        if n != frame.num_tokens() {
            return Err(fail(format!(
                "a {w}×{h} input gave {n} latent tokens, {} expected",
                frame.num_tokens()
            )));
        }
        Ok(LayeredInput {
            prompt_image,
            image_latents,
            height,
            width,
        })
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
        let frames = layers + 1;
        let frame = self.frame_shape(height, width);
        let z = self.vae.config().z_dim;
        let channels = self.c.transformer.config().in_channels;
        let n = frames * frame.num_tokens();
        let (lh, lw) = (2 * frame.height, 2 * frame.width);
        let seeded = |seed: u64, generator| -> Result<Tensor<B, 3>, Error> {
            let noise = torch_noise::<B>(seed, generator, [1, frames, z, lh, lw], &self.c.device)?;
            // [1, F, z, h, w] → F frames of [z, 1, h, w]: the same memory, packed per frame.
            let per_frame = qwen_image_vae::pack_latents(noise.reshape([frames, z, 1, lh, lw]))?;
            Ok(per_frame.reshape([1, n, 4 * z]))
        };
        let check = |shape: [usize; 3], path: Option<&Path>| -> Result<(), Error> {
            if shape == [1, n, channels] {
                return Ok(());
            }
            let reason = format!(
                "latents have shape {shape:?}, but {frames} frames of {}×{} tokens need [1, {n}, \
                 {channels}] (packed)",
                frame.height, frame.width
            );
            Err(match path {
                Some(p) => Error::Latents {
                    path: p.to_path_buf(),
                    reason,
                },
                None => Error::Request(reason),
            })
        };
        match source {
            InitialLatents::Seed(seed) => seeded(*seed, torch_rng::GeneratorDevice::Cpu),
            InitialLatents::Seeded(seed, generator) => seeded(*seed, *generator),
            InitialLatents::File(path) => {
                let (v, shape) = load_latents_file(path)?;
                check(shape, Some(path))?;
                Ok(Tensor::from_data(TensorData::new(v, shape), &self.c.device))
            }
            InitialLatents::Packed(v, shape) => {
                check(*shape, None)?;
                Ok(Tensor::from_data(
                    TensorData::new(v.clone(), *shape),
                    &self.c.device,
                ))
            }
        }
    }

    /// The Layered schedule for `steps` steps: base sigmas `linspace(1, 0, steps + 1)` without
    /// the last, μ = √(`image_tokens` / 256) where `image_tokens` is the input's packed length.
    pub fn schedule(&self, steps: usize, image_tokens: usize) -> Result<Schedule, Error> {
        if steps == 0 {
            return Err(Error::Request(
                "num_inference_steps must be at least 1".into(),
            ));
        }
        let sigmas = flow_match::linspace(1.0, 0.0, steps + 1);
        let mu = (image_tokens as f64 / MU_BASE_TOKENS).sqrt();
        Ok(self
            .c
            .scheduler
            .schedule_with_sigmas_and_mu(&sigmas[..steps], mu)?)
    }

    /// Unpack each frame, drop the first (the composite), de-normalise, decode the rest as one
    /// batch and post-process each to 8-bit RGBA.
    fn decode_layers(
        &self,
        latents: Tensor<B, 3>,
        frames: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<RgbaImage>, Error> {
        let [_, n, c] = latents.dims();
        let per_frame = n / frames;
        let layers = latents
            .reshape([frames, per_frame, c])
            .narrow(0, 1, frames - 1);
        let unpacked =
            qwen_image_vae::unpack_latents(layers, height, width, self.vae_scale_factor())?;
        let z = qwen_image_vae::denormalize(unpacked, self.vae.config())?;
        let sample = self.vae.decode(z)?;
        Ok(qwen_image_vae::to_rgba_images(sample)?)
    }
}

/// PIL's `convert("RGB")` of an RGBA image: the alpha dropped, not composited.
pub fn drop_alpha(layer: &RgbaImage) -> RgbImage {
    let (w, h) = layer.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b, _] = layer.get_pixel(x, y).0;
        image::Rgb([r, g, b])
    })
}
