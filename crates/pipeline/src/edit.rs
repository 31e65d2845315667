//! [`QwenImageEditPipeline`]: image editing as diffusers 0.42.1's `QwenImageEditPipeline` (one
//! image, Qwen-Image-Edit) and `QwenImageEditPlusPipeline` (one or more, Edit-2509 and -2511) run
//! it — the text-to-image stages of [`crate::stages`] with two stages of its own: the prompt with
//! its images, and the input images' VAE latents appended after the noise tokens.
//!
//! What differs between the two classes is only how an input image is prepared
//! ([`image_io::qwen_edit_image`] vs [`image_io::qwen_edit_plus_image`]), which image sets the
//! output size (Edit: its one image; Edit-Plus: the last) and the prompt template (chosen by the
//! text encoder from the same `_class_name`). Edit-2511's `zero_cond_t` is the transformer's
//! config: the pipeline is Edit-Plus.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cfg::Guidance;
use image::RgbImage;
use image_io::{PipelineImage, Preprocessed};
use qwen_image_dit::ImageShape;
use qwen_image_vae::QwenImageAutoencoder;
use text_encoder::{PromptEncoder, VisionPositions};
use weights::PipelineDir;

use crate::error::Error;
use crate::input::InputImage;
use crate::kind::PipelineKind;
use crate::request::{Event, Output, Request, StageTimings};
use crate::stages::{self, Components, Denoiser, PromptEmbeddings, Size, Warnings};

/// A loaded Edit or Edit-Plus folder: tokenizer + text encoder with the vision tower and the
/// image processor, transformer, VAE (encoder and decoder) and scheduler config. Loaded through
/// [`crate::Pipeline`] (and taken out of it with `try_from`).
pub struct QwenImageEditPipeline<B: Backend> {
    pub(crate) c: Components<B>,
    vae: QwenImageAutoencoder<B>,
}

impl<B: Backend> std::fmt::Debug for QwenImageEditPipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwenImageEditPipeline")
            .field("c", &self.c)
            .finish_non_exhaustive()
    }
}

/// One input image made ready: what the vision tower sees, what the VAE encodes, and the shape
/// of its tokens in the DiT's sequence.
struct Prepared {
    condition: RgbImage,
    vae: Preprocessed,
    shape: ImageShape,
}

impl<B: Backend> QwenImageEditPipeline<B> {
    /// The Edit pipeline of a folder whose shared parts are loaded (its prompt template, Edit or
    /// Edit-Plus, came from the same `_class_name`): adds the RGB VAE, encoder and decoder.
    pub(crate) fn from_dir(c: Components<B>, dir: &PipelineDir) -> Result<Self, Error> {
        let vae = QwenImageAutoencoder::load(dir.component("vae")?, &c.device)?;
        if vae.config().input_channels != 3 {
            return Err(Error::PipelineClass {
                path: dir.root().join("vae/config.json"),
                reason: format!(
                    "the Edit pipelines encode RGB images, but this VAE takes {} channels",
                    vae.config().input_channels
                ),
            });
        }
        Ok(Self { c, vae })
    }

    /// [`PipelineKind::Edit`] or [`PipelineKind::EditPlus`].
    pub fn kind(&self) -> PipelineKind {
        self.c.kind
    }

    /// The images this kind takes: Edit exactly one, Edit-Plus at least one.
    fn check_images(&self, images: &[InputImage]) -> Result<(), Error> {
        match (self.c.kind, images.len()) {
            (PipelineKind::Edit, 1) => Ok(()),
            (PipelineKind::Edit, n) => Err(Error::Request(format!(
                "QwenImageEditPipeline takes exactly one input image, got {n} (Edit-Plus \
                 folders, e.g. Qwen-Image-Edit-2509/2511, take several)"
            ))),
            (_, 0) => Err(Error::Request(format!(
                "{} needs at least one input image",
                self.c.kind.class_name()
            ))),
            _ => Ok(()),
        }
    }

    /// The size diffusers generates for these images: `height` / `width` when given, else the
    /// 1024²-area size (sides multiples of 32) at the aspect ratio of the image that decides
    /// (Edit: its one image; Edit-Plus: the last), each floored to a multiple of 16; with the
    /// warning to show when a given size was floored. Returns `(height, width, warning)`.
    pub fn output_size(
        &self,
        images: &[InputImage],
        height: Option<usize>,
        width: Option<usize>,
    ) -> Result<(usize, usize, Option<String>), Error> {
        self.check_images(images)?;
        let (size, warning) = self.size(images, height, width)?;
        Ok((size.height, size.width, warning))
    }

    fn size(
        &self,
        images: &[InputImage],
        height: Option<usize>,
        width: Option<usize>,
    ) -> Result<(Size, Option<String>), Error> {
        // Edit reads `image[0]` and Edit-Plus `image[-1]`; Edit has exactly one.
        let decisive = images
            .last()
            .ok_or_else(|| Error::Request("no input image".into()))?;
        let (w, h) = image_io::qwen_edit_output_size(decisive.size());
        Size::floor(
            height.unwrap_or(h as usize),
            width.unwrap_or(w as usize),
            self.c.vae_scale_factor,
        )
    }

    /// Run one edit: `req`'s images (Edit: one; Edit-Plus: one or more) and prompt.
    pub fn generate(
        &self,
        req: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Output<B>, Error> {
        let mut warnings = Warnings::default();
        req.validate()?;
        self.check_images(&req.images)?;
        let (size, floored) = self.size(&req.images, req.height, req.width)?;
        if let Some(msg) = floored {
            warnings.warn(msg, on_event);
        }
        let guidance = req.guidance()?;
        warnings.negative_prompt_unused(req.negative_prompt.as_deref(), &guidance, on_event);

        let t0 = Instant::now();
        let prepared = prepare_images(self.c.kind, &req.images, self.c.vae_scale_factor)?;
        let image_latents = encode_image_latents(&self.vae, &prepared, &self.c.device)?;
        let image_time = t0.elapsed();

        let t1 = Instant::now();
        let prompts = encode_prompts_with_images(
            &self.c.text,
            &req.prompt,
            req.negative_prompt.as_deref(),
            &guidance,
            &prepared,
            req.vision_positions,
        )?;
        let text_time = t1.elapsed();

        let latents = stages::initial_latents::<B>(
            &req.latents,
            size,
            self.vae.config().z_dim,
            self.c.transformer.config().in_channels,
            &self.c.device,
        )?;
        // diffusers' img_shapes: the output, then each image's VAE size; mu from the noise
        // tokens only (`latents.shape[1]`, before the image tokens are appended).
        let img_shapes: Vec<ImageShape> = std::iter::once(size.image_shape())
            .chain(prepared.iter().map(|p| p.shape))
            .collect();
        let schedule = self
            .c
            .scheduler
            .schedule(req.num_inference_steps, size.num_tokens())?;
        let plan = stages::plan_loop(
            schedule,
            &self.c.transformer,
            &img_shapes,
            &prompts,
            &self.c.device,
        )?;

        let t2 = Instant::now();
        let denoised = Denoiser::new(&self.c, &guidance, &prompts, &plan).run(
            latents,
            Some(&image_latents),
            None,
            on_event,
        )?;
        let denoise_time = t2.elapsed();

        on_event(Event::Decode);
        let t3 = Instant::now();
        let image = stages::decode(self.vae.decoder(), denoised.latents, size)?;
        let decode_time = t3.elapsed();

        Ok(Output {
            image,
            height: size.height,
            width: size.width,
            latents_after_first_step: denoised.after_first_step,
            timings: StageTimings {
                text_encoder: text_time,
                image_encoder: image_time,
                denoise: denoise_time,
                decode: decode_time,
            },
            warnings: warnings.into_vec(),
            layers: Vec::new(),
            caption: None,
        })
    }
}

/// Edit stage 1: each input image as the pipeline prepares it. Edit: one Lanczos resize to the
/// 1024²-area size, which is both the vision tower's image and the VAE's; Edit-Plus: the vision
/// tower gets a 384²-area resize of the original and the VAE a 1024²-area one (see image-io).
fn prepare_images(
    kind: PipelineKind,
    images: &[InputImage],
    vae_scale_factor: usize,
) -> Result<Vec<Prepared>, Error> {
    let per_token = 2 * vae_scale_factor;
    images
        .iter()
        .map(|img| {
            let fail = |reason: String| Error::InputImage {
                image: img.source().to_string(),
                reason,
            };
            let p: PipelineImage = match kind {
                PipelineKind::Edit => image_io::qwen_edit_image(img.image()),
                _ => image_io::qwen_edit_plus_image(img.image()),
            }
            .map_err(|e| fail(e.to_string()))?;
            let condition = p
                .condition
                .to_rgb_image()
                .ok_or_else(|| fail(format!("{} image after resizing", p.condition.mode())))?;
            let (w, h) = p.vae_size;
            Ok(Prepared {
                condition,
                vae: p.vae,
                shape: ImageShape::new(1, h as usize / per_token, w as usize / per_token),
            })
        })
        .collect()
}

/// Edit stage 2: every image through the VAE encoder (the posterior mean: diffusers'
/// `retrieve_latents(..., sample_mode="argmax")`, so no noise is drawn), normalised with the
/// VAE's latents mean/std, packed into 2×2 tokens, and concatenated along the sequence in input
/// order: `[1, Σ tokens, 4·z]`.
fn encode_image_latents<B: Backend>(
    vae: &QwenImageAutoencoder<B>,
    prepared: &[Prepared],
    device: &B::Device,
) -> Result<Tensor<B, 3>, Error> {
    let mut packed = Vec::with_capacity(prepared.len());
    for p in prepared {
        let [b, c, h, w] = p.vae.shape;
        // [1, C, H, W] with a frame axis added: the same memory order.
        let image =
            Tensor::<B, 5>::from_data(TensorData::new(p.vae.data.clone(), [b, c, 1, h, w]), device);
        let latents = qwen_image_vae::normalize(vae.encode(image)?, vae.config())?;
        let tokens = qwen_image_vae::pack_latents(latents)?;
        let n = tokens.dims()[1];
        if n != p.shape.num_tokens() {
            return Err(Error::Request(format!(
                "an image of {w}×{h} gave {n} latent tokens, {} expected",
                p.shape.num_tokens()
            )));
        }
        packed.push(tokens);
    }
    Ok(Tensor::cat(packed, 1))
}

/// Edit stage 3: the prompt and, when CFG runs, the negative prompt, each encoded with the same
/// condition images (the vision tower runs once for both).
fn encode_prompts_with_images<B: Backend>(
    text: &PromptEncoder<B>,
    prompt: &str,
    negative_prompt: Option<&str>,
    guidance: &Guidance,
    prepared: &[Prepared],
    positions: VisionPositions,
) -> Result<PromptEmbeddings<B>, Error> {
    let conditions: Vec<RgbImage> = prepared.iter().map(|p| p.condition.clone()).collect();
    let embeds = text.image_embeds(&conditions)?;
    let encode = |p: &str| {
        text.encode_with_image_embeds(&[p.to_string()], std::slice::from_ref(&embeds), positions)
    };
    let cond = encode(prompt)?;
    let uncond = match negative_prompt {
        Some(neg) if guidance.is_enabled() => Some(encode(neg)?),
        _ => None,
    };
    Ok(PromptEmbeddings { cond, uncond })
}
