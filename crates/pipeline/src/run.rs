use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor, TensorData};
use cfg::Guidance;
use flow_match::SchedulerConfig;
use image::RgbImage;
use qwen_image_dit::{ImageShape, QwenImageTransformer};
use qwen_image_vae::{QwenImageVae, denormalize, to_rgb_images, unpack_latents};
use text_encoder::{PromptEmbeds, PromptEncoder};
use weights::PipelineDir;

use crate::Error;
use crate::latents::{InitialLatents, load_latents_file, seeded_latents};

/// diffusers' default `true_cfg_scale` (used when a negative prompt is given with no scale at all).
pub const DEFAULT_TRUE_CFG_SCALE: f32 = 4.0;

/// One generation's settings. Build with [`Request::new`] and the chained setters.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: String,
    /// Without one, CFG is off (as in diffusers).
    pub negative_prompt: Option<String>,
    /// The CFG scale; falls back to `guidance_scale`, then to diffusers' default 4.0.
    pub true_cfg_scale: Option<f32>,
    pub guidance_scale: Option<f32>,
    pub height: usize,
    pub width: usize,
    pub num_inference_steps: usize,
    /// Text rows kept per prompt (1..=1024; diffusers' default 512).
    pub max_sequence_length: usize,
    pub latents: InitialLatents,
}

impl Request {
    /// A request with diffusers' defaults: 50 steps, no negative prompt, seed 0.
    pub fn new(prompt: impl Into<String>, height: usize, width: usize) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: None,
            true_cfg_scale: None,
            guidance_scale: None,
            height,
            width,
            num_inference_steps: 50,
            max_sequence_length: 512,
            latents: InitialLatents::Seed(0),
        }
    }
    pub fn negative_prompt(mut self, p: impl Into<String>) -> Self {
        self.negative_prompt = Some(p.into());
        self
    }
    pub fn true_cfg_scale(mut self, s: f32) -> Self {
        self.true_cfg_scale = Some(s);
        self
    }
    pub fn guidance_scale(mut self, s: f32) -> Self {
        self.guidance_scale = Some(s);
        self
    }
    pub fn steps(mut self, n: usize) -> Self {
        self.num_inference_steps = n;
        self
    }
    pub fn max_sequence_length(mut self, n: usize) -> Self {
        self.max_sequence_length = n;
        self
    }
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
    pub text_encoder: Duration,
    pub denoise: Duration,
    pub decode: Duration,
}

/// What a generation returns.
#[derive(Debug)]
pub struct Output<B: Backend> {
    pub image: RgbImage,
    /// The size actually generated (floored to multiples of 16).
    pub height: usize,
    pub width: usize,
    /// Packed latents after the first step, so a mismatch with the reference can be located.
    pub latents_after_first_step: Option<Tensor<B, 3>>,
    pub timings: StageTimings,
    pub warnings: Vec<String>,
}

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

    /// Load from an opened pipeline folder. Every component must be present.
    pub fn from_dir(dir: &PipelineDir, device: &B::Device) -> Result<Self, Error> {
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
        let multiple = self.vae_scale_factor() * 2;
        let (height, width) = (
            req.height / multiple * multiple,
            req.width / multiple * multiple,
        );
        if height == 0 || width == 0 {
            return Err(Error::Request(format!(
                "height and width must be at least {multiple} (got {}×{})",
                req.height, req.width
            )));
        }
        if (height, width) != (req.height, req.width) {
            // diffusers only warns and floors the size to a multiple of vae_scale_factor * 2.
            warn(
                format!(
                    "height and width must be multiples of {multiple}: {}×{} floored to {height}×{width}",
                    req.height, req.width
                ),
                on_event,
            );
        }
        let guidance = req.guidance()?;
        if req.negative_prompt.is_some() && !guidance.is_enabled() {
            warn(
                "a negative prompt was given but the CFG scale is ≤ 1: CFG is off".into(),
                on_event,
            );
        }

        // Text: once per call, cond and uncond encoded separately as diffusers does (so neither
        // is padded and the mask is None).
        let t0 = Instant::now();
        let cond = self
            .text
            .encode(std::slice::from_ref(&req.prompt), req.max_sequence_length)?;
        let uncond = match (&req.negative_prompt, guidance.is_enabled()) {
            (Some(neg), true) => Some(
                self.text
                    .encode(std::slice::from_ref(neg), req.max_sequence_length)?,
            ),
            _ => None,
        };
        let text_time = t0.elapsed();

        // Latents.
        let z = self.vae.config().z_dim;
        let (lh, lw) = (2 * (height / multiple), 2 * (width / multiple));
        let n_tokens = (lh / 2) * (lw / 2);
        let channels = self.transformer.config().in_channels;
        let mut latents: Tensor<B, 3> = match &req.latents {
            InitialLatents::Seed(seed) => {
                let noise = seeded_latents::<B>(*seed, z, lh, lw, &self.device)?;
                qwen_image_vae::pack_latents(noise)?
            }
            InitialLatents::File(path) => {
                let (v, shape) = load_latents_file(path)?;
                check_latents_shape(shape, n_tokens, channels, Some(path))?;
                Tensor::from_data(TensorData::new(v, shape), &self.device)
            }
            InitialLatents::Packed(v, shape) => {
                check_latents_shape(*shape, n_tokens, channels, None)?;
                Tensor::from_data(TensorData::new(v.clone(), *shape), &self.device)
            }
        };

        let schedule = self.scheduler.schedule(req.num_inference_steps, n_tokens)?;
        let img_shapes = [ImageShape::new(1, height / multiple, width / multiple)];
        let cond_rope = self.rope_for(&img_shapes, &cond)?;
        let uncond_rope = match &uncond {
            Some(u) => Some(self.rope_for(&img_shapes, u)?),
            None => None,
        };

        let t1 = Instant::now();
        on_event(Event::Start {
            steps: schedule.num_steps(),
        });
        let mut first = None;
        for step in schedule.steps() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled {
                    steps_done: step.index,
                    steps: schedule.num_steps(),
                });
            }
            // diffusers: timestep = t.expand(B).to(latents.dtype), and the transformer is called
            // with timestep / 1000 — both in the latent dtype (bf16 rounding on CUDA).
            let t =
                Tensor::<B, 1>::from_data(TensorData::new(vec![step.timestep], [1]), &self.device);
            let t = t / 1000.0;
            let v_cond = self.transformer.forward_with_rope(
                latents.clone(),
                cond.embeds.clone(),
                cond.mask_if_needed(),
                t.clone(),
                &cond_rope,
            );
            let v_uncond = match (&uncond, &uncond_rope) {
                (Some(u), Some(rope)) => Some(self.transformer.forward_with_rope(
                    latents.clone(),
                    u.embeds.clone(),
                    u.mask_if_needed(),
                    t,
                    rope,
                )),
                _ => None,
            };
            let v = guidance.combine(v_cond, v_uncond)?;
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
                steps: schedule.num_steps(),
            });
        }
        let denoise_time = t1.elapsed();

        on_event(Event::Decode);
        let t2 = Instant::now();
        let unpacked = unpack_latents(latents, height, width, self.vae_scale_factor())?;
        let z = denormalize(unpacked, self.vae.config())?;
        let sample = self.vae.decode(z)?;
        let image = to_rgb_images(sample)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Request("the VAE returned no image".into()))?;
        let decode_time = t2.elapsed();

        Ok(Output {
            image,
            height,
            width,
            latents_after_first_step: first,
            timings: StageTimings {
                text_encoder: text_time,
                denoise: denoise_time,
                decode: decode_time,
            },
            warnings,
        })
    }

    fn rope_for(
        &self,
        img_shapes: &[ImageShape],
        text: &PromptEmbeds<B>,
    ) -> Result<qwen_image_dit::Rope<B>, Error> {
        let rope = self
            .transformer
            .rope(img_shapes, text.embeds.dims()[1], &self.device)?;
        Ok(rope)
    }
}

fn check_latents_shape(
    shape: [usize; 3],
    n_tokens: usize,
    channels: usize,
    path: Option<&Path>,
) -> Result<(), Error> {
    if shape == [1, n_tokens, channels] {
        return Ok(());
    }
    let reason = format!(
        "latents have shape {shape:?}, but this size needs [1, {n_tokens}, {channels}] (packed)"
    );
    Err(match path {
        Some(p) => Error::Latents {
            path: p.to_path_buf(),
            reason,
        },
        None => Error::Request(reason),
    })
}
