//! The parts every pipeline shares ([`Components`]) and the stages of one generation, one
//! function each: prompt embeddings, initial latents, schedule + RoPE tables, the denoising loop,
//! decode.
//!
//! Each stage takes the components it uses rather than a whole pipeline, so that another pipeline
//! (Edit, Layered) can reuse the stages it shares with text-to-image and replace the others: its
//! own prompt stage (text + images), its own schedule ([`plan_loop`] takes it made), image-latent
//! tokens appended after the noise in the loop ([`Denoiser::run`]'s `image_latents`, with their
//! shapes in [`plan_loop`]'s `img_shapes`), several frames decoded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};
use cfg::Guidance;
use flow_match::{Schedule, SchedulerConfig};
use image::RgbImage;
use qwen_image_dit::{DitInputs, ImageShape, QwenImageTransformer, Rope};
use qwen_image_vae::{QwenImageVae, VaeConfig, denormalize, to_rgb_images, unpack_latents};
use text_encoder::{PromptEmbeds, PromptEncoder};
use weights::PipelineDir;

use crate::error::Error;
use crate::kind::PipelineKind;
use crate::latents::{InitialLatents, given_latents, torch_noise};
use crate::request::Event;

/// What every pipeline loads and holds the same way: the folder's kind and path, the prompt
/// encoder, the transformer, the scheduler config, the VAE's scale factor, the device and the
/// cancel flag. Each pipeline adds its VAE half (and what else it needs); [`crate::Pipeline`]
/// reaches these through one accessor rather than one forwarding method per pipeline.
pub(crate) struct Components<B: Backend> {
    pub kind: PipelineKind,
    /// The pipeline folder (what the Layered captioner is loaded from on first use).
    pub root: PathBuf,
    pub text: PromptEncoder<B>,
    pub transformer: QwenImageTransformer<B>,
    pub scheduler: SchedulerConfig,
    /// The VAE's spatial compression (8 for Qwen-Image); sizes are floored to twice this.
    pub vae_scale_factor: usize,
    pub device: B::Device,
    /// Checked before every step; set means stop with [`Error::Cancelled`].
    pub cancel: Arc<AtomicBool>,
}

impl<B: Backend> std::fmt::Debug for Components<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("kind", &self.kind)
            .field("root", &self.root)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Components<B> {
    /// `vae/config.json` (for the scale factor; the pipeline loads the VAE half it runs),
    /// `scheduler/`, the tokenizer and text encoder (their template from the folder's
    /// `_class_name`) and `transformer/` of an opened pipeline folder of this `kind`.
    pub fn load(dir: &PipelineDir, kind: PipelineKind, device: &B::Device) -> Result<Self, Error> {
        let vae = VaeConfig::from_file(dir.component("vae")?.join("config.json"))?;
        let scheduler_dir = dir.component("scheduler")?;
        Ok(Self {
            kind,
            root: dir.root().to_path_buf(),
            scheduler: SchedulerConfig::from_file(scheduler_dir.join("scheduler_config.json"))?,
            text: PromptEncoder::from_pipeline_dir(dir.root(), device)?,
            transformer: QwenImageTransformer::load(&dir.component("transformer")?, device)?,
            vae_scale_factor: vae.scale_factor(),
            device: device.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The token grid of one frame of a `height × width` output (sides already multiples of
    /// `2 · vae_scale_factor`).
    pub fn frame_shape(&self, height: usize, width: usize) -> ImageShape {
        let per_token = 2 * self.vae_scale_factor;
        ImageShape::new(1, height / per_token, width / per_token)
    }
}

/// The warnings of one generation: each is sent as [`Event::Warning`] when it happens and kept
/// for [`crate::Output::warnings`].
#[derive(Default)]
pub(crate) struct Warnings(Vec<String>);

impl Warnings {
    pub fn warn(&mut self, msg: String, on_event: &mut dyn FnMut(Event)) {
        on_event(Event::Warning(msg.clone()));
        self.0.push(msg);
    }

    /// diffusers runs without CFG when the scale is ≤ 1, negative prompt or not: say so.
    pub fn negative_prompt_unused(
        &mut self,
        negative_prompt: Option<&str>,
        guidance: &Guidance,
        on_event: &mut dyn FnMut(Event),
    ) {
        if negative_prompt.is_some() && !guidance.is_enabled() {
            self.warn(
                "a negative prompt was given but the CFG scale is ≤ 1: CFG is off".into(),
                on_event,
            );
        }
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The size generated, after diffusers' flooring to a multiple of `2 · vae_scale_factor` (one
/// packed token per 2×2 patch of latents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub height: usize,
    pub width: usize,
    /// Pixels per packed token along each side (16 for Qwen-Image).
    multiple: usize,
}

impl Size {
    /// The requested size floored as diffusers floors it, and the warning to show when that
    /// changed it (diffusers only warns). Too small to hold one token is an error.
    pub fn floor(
        height: usize,
        width: usize,
        vae_scale_factor: usize,
    ) -> Result<(Self, Option<String>), Error> {
        let multiple = vae_scale_factor.saturating_mul(2).max(1);
        // Bounded before anything is sized from it: no later product can overflow.
        let names = crate::limits::Names {
            height: "height",
            width: "width",
            steps: "steps",
        };
        crate::limits::check_size(&names, Some(height), Some(width), multiple)
            .map_err(Error::Request)?;
        let size = Self {
            height: height / multiple * multiple,
            width: width / multiple * multiple,
            multiple,
        };
        let warning = ((size.height, size.width) != (height, width)).then(|| {
            format!(
                "height and width must be multiples of {multiple}: {height}×{width} floored to {}×{}",
                size.height, size.width
            )
        });
        Ok((size, warning))
    }

    /// The output's shape as the DiT sees it: one frame of `height/16 × width/16` tokens.
    pub fn image_shape(&self) -> ImageShape {
        ImageShape::new(1, self.height / self.multiple, self.width / self.multiple)
    }

    /// Packed tokens of the output (the noise part of the sequence).
    pub fn num_tokens(&self) -> usize {
        self.image_shape().num_tokens()
    }
}

/// The text conditioning: the prompt's embeddings, and the negative prompt's when CFG runs.
pub(crate) struct PromptEmbeddings<B: Backend> {
    pub cond: PromptEmbeds<B>,
    pub uncond: Option<PromptEmbeds<B>>,
}

/// Stage 1: the prompt and, when CFG is on, the negative prompt, encoded separately as diffusers
/// does (so neither is padded and the mask is `None`).
pub(crate) fn encode_prompts<B: Backend>(
    text: &PromptEncoder<B>,
    prompt: &str,
    negative_prompt: Option<&str>,
    guidance: &Guidance,
    max_sequence_length: usize,
) -> Result<PromptEmbeddings<B>, Error> {
    let encode = |p: &str| text.encode(&[p.to_string()], max_sequence_length);
    let cond = encode(prompt)?;
    let uncond = match negative_prompt {
        Some(neg) if guidance.is_enabled() => Some(encode(neg)?),
        _ => None,
    };
    Ok(PromptEmbeddings { cond, uncond })
}

/// Stage 2: the packed initial latents `[1, tokens, channels]`: drawn from a seed as diffusers
/// draws them (`(1, 1, z, h, w)`, which with one frame is `[1, z, 1, h, w]` in memory, then
/// packed), or given exactly (shape checked).
pub(crate) fn initial_latents<B: Backend>(
    source: &InitialLatents,
    size: Size,
    z_dim: usize,
    channels: usize,
    device: &B::Device,
) -> Result<Tensor<B, 3>, Error> {
    let Some((seed, generator)) = source.seed() else {
        let expected = [1, size.num_tokens(), channels];
        return given_latents(source, expected, "this size needs", device);
    };
    let shape = size.image_shape();
    let (h, w) = (2 * shape.height, 2 * shape.width);
    let noise = torch_noise::<B>(seed, generator, [1, 1, z_dim, h, w], device)?;
    Ok(qwen_image_vae::pack_latents(
        noise.reshape([1, z_dim, 1, h, w]),
    )?)
}

/// What the loop needs that no step changes: the schedule and the RoPE tables of each pass.
pub(crate) struct LoopPlan<B: Backend> {
    pub schedule: Schedule,
    pub cond_rope: Rope<B>,
    pub uncond_rope: Option<Rope<B>>,
}

/// Stage 3: the loop's plan from its `schedule` (text to image and Edit:
/// [`SchedulerConfig::schedule`] with the noise tokens only, as diffusers computes `mu` from
/// `latents.shape[1]`; Layered: its own sigmas and μ) and the RoPE tables for `img_shapes` (the
/// output first, then any condition images) and each pass's text length.
pub(crate) fn plan_loop<B: Backend>(
    schedule: Schedule,
    transformer: &QwenImageTransformer<B>,
    img_shapes: &[ImageShape],
    prompts: &PromptEmbeddings<B>,
    device: &B::Device,
) -> Result<LoopPlan<B>, Error> {
    let rope = |text: &PromptEmbeds<B>| transformer.rope(img_shapes, text.embeds.dims()[1], device);
    let cond_rope = rope(&prompts.cond)?;
    let uncond_rope = prompts.uncond.as_ref().map(rope).transpose()?;
    Ok(LoopPlan {
        schedule,
        cond_rope,
        uncond_rope,
    })
}

/// The loop's fixed inputs; [`Denoiser::run`] is stage 4.
pub(crate) struct Denoiser<'a, B: Backend> {
    transformer: &'a QwenImageTransformer<B>,
    guidance: &'a Guidance,
    prompts: &'a PromptEmbeddings<B>,
    plan: &'a LoopPlan<B>,
    /// Checked before every step; set means stop with [`Error::Cancelled`].
    cancel: &'a AtomicBool,
    device: &'a B::Device,
}

/// The loop's result.
pub(crate) struct Denoised<B: Backend> {
    /// The final packed latents `[1, tokens, channels]`.
    pub latents: Tensor<B, 3>,
    /// The latents after the first step, so that a mismatch with the reference can be located.
    pub after_first_step: Option<Tensor<B, 3>>,
}

impl<'a, B: Backend> Denoiser<'a, B> {
    /// The loop of `c`'s transformer (with its device and cancel flag) under this guidance, these
    /// prompts and this plan.
    pub fn new(
        c: &'a Components<B>,
        guidance: &'a Guidance,
        prompts: &'a PromptEmbeddings<B>,
        plan: &'a LoopPlan<B>,
    ) -> Self {
        Self {
            transformer: &c.transformer,
            guidance,
            prompts,
            plan,
            cancel: &c.cancel,
            device: &c.device,
        }
    }

    /// Stage 4: the flow-match Euler loop over the DiT with true CFG.
    ///
    /// `image_latents` `[1, M, channels]` (Edit's reference images, Layered's input, already
    /// packed) are appended after the noise tokens at every step and the prediction is cut back
    /// to the noise tokens, as diffusers' Edit and Layered pipelines do; their shapes must follow
    /// the output's in the plan's `img_shapes`. `additional_t_cond` `[1]` goes to the DiT at every
    /// step (Layered: 0 = RGB, looked up in `addition_t_embedding`).
    pub fn run(
        &self,
        mut latents: Tensor<B, 3>,
        image_latents: Option<&Tensor<B, 3>>,
        additional_t_cond: Option<Tensor<B, 1, Int>>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Denoised<B>, Error> {
        let steps = self.plan.schedule.num_steps();
        let n_noise = latents.dims()[1];
        on_event(Event::Start { steps });
        let mut first = None;
        for step in self.plan.schedule.steps() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled {
                    steps_done: step.index,
                    steps,
                });
            }
            // diffusers: timestep = t.expand(B).to(latents.dtype), and the transformer is called
            // with timestep / 1000 — both in the latent dtype (bf16 rounding on CUDA).
            let t =
                Tensor::<B, 1>::from_data(TensorData::new(vec![step.timestep], [1]), self.device);
            let t = t / 1000.0;
            let input = match image_latents {
                Some(img) => Tensor::cat(vec![latents.clone(), img.clone()], 1),
                None => latents.clone(),
            };
            let predict = |text: &PromptEmbeds<B>, rope: &Rope<B>, t: Tensor<B, 1>| {
                let inputs = DitInputs::new(input.clone(), text.embeds.clone(), t, rope)
                    .encoder_mask(text.mask_if_needed())
                    .additional_t_cond(additional_t_cond.clone());
                let v = self.transformer.forward(inputs)?;
                Ok::<_, Error>(match image_latents {
                    Some(_) => v.narrow(1, 0, n_noise),
                    None => v,
                })
            };
            let v_cond = predict(&self.prompts.cond, &self.plan.cond_rope, t.clone())?;
            let v_uncond = match (&self.prompts.uncond, &self.plan.uncond_rope) {
                (Some(u), Some(rope)) => Some(predict(u, rope, t)?),
                _ => None,
            };
            let v = self.guidance.combine(v_cond, v_uncond)?;
            // FlowMatchEulerDiscreteScheduler.step: the sample is upcast to f32, dt·v formed in
            // the model dtype, summed in f32 and cast back (all no-ops in f32).
            let dtype = latents.dtype();
            let dv = (v * step.dt).cast(FloatDType::F32);
            latents = (latents.cast(FloatDType::F32) + dv).cast(dtype);
            if step.index == 0 {
                first = Some(latents.clone());
            }
            on_event(Event::Step {
                index: step.index,
                steps,
            });
        }
        Ok(Denoised {
            latents,
            after_first_step: first,
        })
    }
}

/// Stage 5: unpack, de-normalise, VAE decode, and convert to 8-bit RGB.
pub(crate) fn decode<B: Backend>(
    vae: &QwenImageVae<B>,
    latents: Tensor<B, 3>,
    size: Size,
) -> Result<RgbImage, Error> {
    let unpacked = unpack_latents(
        latents,
        size.height,
        size.width,
        vae.config().scale_factor(),
    )?;
    let z = denormalize(unpacked, vae.config())?;
    let sample = vae.decode(z)?;
    to_rgb_images(sample)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Request("the VAE returned no image".into()))
}
