//! `cargo xtask forward dit|vae-decode|text-encoder|vision`: golden tensors in, tensors out (f32), for
//! porters comparing a component with their reference, and for the GPU check's timings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

#[derive(clap::Subcommand, Debug)]
pub enum Forward {
    /// QwenImageTransformer2DModel forward: IN `hidden_states`, `encoder_hidden_states`,
    /// optional `encoder_hidden_states_mask`, `timestep`, `img_shapes` [B,3] or [B,K,3],
    /// `additional_t_cond` (Layered) → OUT `sample`.
    Dit(Common),
    /// AutoencoderKLQwenImage decode: IN `latents` [B,z,1,h,w] → OUT `sample` [B,3,1,H,W].
    VaeDecode(Common),
    /// AutoencoderKLQwenImage encode, single frame: IN `image` [B,C,1,H,W] in [-1,1] (C = the
    /// VAE's input_channels, H and W multiples of 8) → OUT `latents` [B,z,1,H/8,W/8], the
    /// posterior mean before normalisation.
    VaeEncode(Common),
    /// Qwen2.5-VL language model (text path): IN `input_ids` [B,L] i64, `attention_mask` [B,L]
    /// i64 → OUT `last_hidden_state` [B,L,D] (after the final norm). DIR is a `text_encoder/` folder.
    TextEncoder(Common),
    /// Qwen2.5-VL vision tower: IN `pixel_values` [N, 1176], `image_grid_thw` [n, 3] i64 →
    /// OUT `image_embeds` [N/4, hidden]. DIR is a `text_encoder/` folder (its `visual.*` tensors).
    Vision(Common),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Folder with config.json and the component's safetensors (sharded or not).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub inputs: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Run the forward this many times (timed; the last output is written).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Untimed runs before the timed ones (kernel compilation, autotune).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Write `{"median_ms": …, "runs_ms": […]}` of the timed runs here.
    #[arg(long)]
    pub timings: Option<PathBuf>,
}

/// Run `f` `warmup + repeat` times, timing each of the last `repeat` runs with a device read-back
/// (which synchronises), and return the last output.
fn timed<B: Backend, const D: usize>(
    c: &Common,
    dev: &B::Device,
    mut f: impl FnMut() -> anyhow::Result<Tensor<B, D>>,
) -> anyhow::Result<Tensor<B, D>> {
    let mut runs = Vec::new();
    let mut last = None;
    for i in 0..c.warmup + c.repeat.max(1) {
        B::sync(dev).map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        let t = Instant::now();
        let out = f()?;
        B::sync(dev).map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        if i >= c.warmup {
            runs.push(t.elapsed().as_secs_f64() * 1e3);
        }
        last = Some(out);
    }
    if c.repeat > 1 || c.timings.is_some() {
        let median = crate::util::report_timings(&runs, c.timings.as_deref())?;
        eprintln!("median {median:.2} ms over {} run(s)", runs.len());
    }
    last.context("no run")
}

/// Write one f32 tensor as a safetensors file, through a temp file and a rename. An output with
/// a NaN or infinite value (NaN/Inf weights, a NaN timestep, an overflow) is refused and nothing
/// is written: such a file would only pass for a result.
fn write_output<B: Backend, const D: usize>(
    path: &Path,
    name: &str,
    t: Tensor<B, D>,
) -> anyhow::Result<()> {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>();
    let values = data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading `{name}` back from the device: {e:?}"))?;
    if let Some(first) = values.iter().position(|v| !v.is_finite()) {
        let nan = values.iter().filter(|v| v.is_nan()).count();
        let inf = values.iter().filter(|v| v.is_infinite()).count();
        anyhow::bail!(
            "output `{name}` {shape:?} has {nan} NaN and {inf} infinite values of {} (the first \
             at flat index {first}): check the weights and inputs for NaN/Inf; {} not written",
            values.len(),
            path.display()
        );
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)?;
    crate::util::write_safetensors(path, [(name, view)], None)
}

pub fn run(f: Forward) -> anyhow::Result<ExitCode> {
    let (Forward::Dit(c)
    | Forward::VaeDecode(c)
    | Forward::VaeEncode(c)
    | Forward::TextEncoder(c)
    | Forward::Vision(c)) = &f;
    crate::util::check_run_count("--repeat", c.repeat, 0)?;
    crate::util::check_run_count("--warmup", c.warmup, 0)?;
    match f {
        Forward::Dit(c) => run_dit(c),
        Forward::VaeDecode(c) => run_vae(c),
        Forward::VaeEncode(c) => run_vae_encode(c),
        Forward::TextEncoder(c) => run_text_encoder(c),
        Forward::Vision(c) => run_vision(c),
    }
}

/// `forward vae-decode`: `latents` [B, z, 1, h, w] (after de-normalisation) → `sample`
/// [B, 3, 1, 8h, 8w] f32, clamped to [-1, 1], as `AutoencoderKLQwenImage.decode(latents).sample`.
fn run_vae(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| vae_decode::<B>(&c, &dev))?;
    Ok(ExitCode::SUCCESS)
}

fn vae_decode<B: burn::tensor::backend::Backend>(
    c: &Common,
    dev: &B::Device,
) -> anyhow::Result<()> {
    use anyhow::Context;

    let inputs = weights::Weights::open(&c.inputs)?;
    let latents: burn::tensor::Tensor<B, 5> = inputs
        .get_any("latents", dev)
        .with_context(|| format!("reading inputs {}", c.inputs.display()))?;
    let vae = qwen_image_vae::QwenImageVae::<B>::load(&c.model, dev)
        .with_context(|| format!("loading the VAE from {}", c.model.display()))?;
    let sample = timed(c, dev, || {
        vae.decode(latents.clone())
            .with_context(|| format!("decoding `latents` from {}", c.inputs.display()))
    })?;
    write_output(&c.output, "sample", sample)
}

/// `forward vae-encode`: `image` [B, C, 1, H, W] → `latents` [B, z, 1, H/8, W/8] f32, as
/// `retrieve_latents(vae.encode(image), sample_mode="argmax")` (the posterior mean), before the
/// pipelines' normalisation. Loads the encoder half only.
fn run_vae_encode(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| vae_encode::<B>(&c, &dev))?;
    Ok(ExitCode::SUCCESS)
}

fn vae_encode<B: Backend>(c: &Common, dev: &B::Device) -> anyhow::Result<()> {
    let inputs = weights::Weights::open(&c.inputs)?;
    let image: Tensor<B, 5> = inputs
        .get_any("image", dev)
        .with_context(|| format!("reading inputs {}", c.inputs.display()))?;
    let encoder = qwen_image_vae::QwenImageVaeEncoder::<B>::load(&c.model, dev)
        .with_context(|| format!("loading the VAE encoder from {}", c.model.display()))?;
    let latents = timed(c, dev, || {
        encoder
            .encode(image.clone())
            .with_context(|| format!("encoding `image` from {}", c.inputs.display()))
    })?;
    write_output(&c.output, "latents", latents)
}

/// `forward text-encoder`: the final-norm hidden states of the language model.
fn run_text_encoder(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| text_encoder_forward::<B>(
        &c, &dev
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn text_encoder_forward<B: Backend>(c: &Common, dev: &B::Device) -> anyhow::Result<()> {
    use burn::tensor::{Int, TensorData};

    let file = c.inputs.display();
    // The ids and mask are checked against the config before they become tensors (a value past
    // the backend's integer type cannot) and before any weight is read.
    let config = text_encoder::TextConfig::from_file(&c.model.join("config.json"))?;
    let inputs = weights::Weights::open(&c.inputs)?;
    let ids_mask = |name: &str| -> anyhow::Result<(Vec<i64>, [usize; 2])> {
        match inputs.get_i64(name)? {
            (v, shape) if shape.len() == 2 => Ok((v, [shape[0], shape[1]])),
            (_, shape) => anyhow::bail!("{file}: `{name}` must be [B, L], found {shape:?}"),
        }
    };
    let ((ids, shape), (mask, mask_shape)) = (ids_mask("input_ids")?, ids_mask("attention_mask")?);
    if shape != mask_shape {
        anyhow::bail!("{file}: `input_ids` {shape:?} and `attention_mask` {mask_shape:?} differ");
    }
    config
        .check_tokens(&ids, &mask, shape)
        .with_context(|| format!("{file} with {}", c.model.display()))?;
    let tensor = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, shape), dev);
    let (ids, mask) = (tensor(ids), tensor(mask));
    let model = text_encoder::QwenTextEncoder::<B>::load(&c.model, dev)
        .with_context(|| format!("loading the text encoder from {}", c.model.display()))?;
    let hidden = timed(c, dev, || Ok(model.forward(ids.clone(), mask.clone())?))?;
    write_output(&c.output, "last_hidden_state", hidden)
}

/// `forward vision`: the vision tower's `image_embeds`, every image's merged tokens in order.
fn run_vision(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| vision_forward::<B>(&c, &dev))?;
    Ok(ExitCode::SUCCESS)
}

fn vision_forward<B: Backend>(c: &Common, dev: &B::Device) -> anyhow::Result<()> {
    let file = c.inputs.display();
    let inputs = weights::Weights::open(&c.inputs)?;
    let pixels: Tensor<B, 2> = inputs
        .get_any("pixel_values", dev)
        .with_context(|| format!("reading inputs {file}"))?;
    let (grid, shape) = inputs
        .get_i64("image_grid_thw")
        .with_context(|| format!("reading inputs {file}"))?;
    if shape.len() != 2 || shape[1] != 3 {
        anyhow::bail!("{file}: `image_grid_thw` must be [n, 3], found {shape:?}");
    }
    if let Some(v) = grid.iter().find(|&&v| v <= 0) {
        anyhow::bail!("{file}: `image_grid_thw` must be positive, found {v}");
    }
    let grid: Vec<[usize; 3]> = grid
        .chunks(3)
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    let tower = text_encoder::VisionTower::<B>::load(&c.model, dev)
        .with_context(|| format!("loading the vision tower from {}", c.model.display()))?;
    let embeds = timed(c, dev, || {
        tower
            .forward(pixels.clone(), &grid)
            .with_context(|| format!("{file}: `pixel_values` / `image_grid_thw`"))
    })?;
    write_output(&c.output, "image_embeds", embeds)
}

/// `forward dit`: `hidden_states` [B,N,C_in], `encoder_hidden_states` [B,L,D], optional
/// `encoder_hidden_states_mask` [B,L] i64, `timestep` [B] (already divided by 1000), `img_shapes`
/// [B,3] or [B,K,3] i64 (K images per sample: the output first, then each condition image / layer
/// frame), `additional_t_cond` [B] i64 (Layered models only) → `sample` [B,N,C_out] f32, as
/// `QwenImageTransformer2DModel(...).sample`.
fn run_dit(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| dit::forward::<B>(&c, &dev))?;
    Ok(ExitCode::SUCCESS)
}

mod dit {
    use super::Common;
    use anyhow::{Context, bail};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Int, Tensor, TensorData};
    use qwen_image_dit::{DitConfig, DitInputs, ImageShape, QwenImageTransformer, Rope};

    pub(super) fn forward<B: Backend>(c: &Common, dev: &B::Device) -> anyhow::Result<()> {
        let file = c.inputs.display().to_string();
        // Config and inputs are checked against each other before any weight is read: a wrong
        // class, an impossible size or a bad `img_shapes` costs nothing.
        let config = DitConfig::from_file(&c.model.join("config.json"))?;
        let inputs = weights::Weights::open(&c.inputs)?;
        let hidden: Tensor<B, 3> = inputs.get_any("hidden_states", dev)?;
        let encoder: Tensor<B, 3> = inputs.get_any("encoder_hidden_states", dev)?;
        let timestep: Tensor<B, 1> = inputs.get_any("timestep", dev)?;
        let mask = if inputs.contains("encoder_hidden_states_mask") {
            let (v, shape) = inputs.get_i64("encoder_hidden_states_mask")?;
            if shape.len() != 2 {
                bail!("{file}: `encoder_hidden_states_mask` must be [B, L], found {shape:?}");
            }
            // Before it becomes a tensor: a value past the backend's integer type cannot.
            qwen_image_dit::check_encoder_mask_values(&v).with_context(|| file.clone())?;
            Some(Tensor::<B, 2, Int>::from_data(
                TensorData::new(v, shape),
                dev,
            ))
        } else {
            None
        };
        let batch = hidden.dims()[0];
        let img_shapes = image_shapes(&inputs, &file, batch)?;
        let t_cond = if inputs.contains("additional_t_cond") {
            let (v, shape) = inputs.get_i64("additional_t_cond")?;
            if shape.len() != 1 {
                bail!("{file}: `additional_t_cond` must be [B], found {shape:?}");
            }
            Some((v, shape))
        } else {
            None
        };
        config
            .check_additional_t_cond(t_cond.as_ref().map(|(v, _)| v.as_slice()), batch)
            .with_context(|| format!("{file} with {}", c.model.display()))?;
        let t_cond =
            t_cond.map(|(v, shape)| Tensor::<B, 1, Int>::from_data(TensorData::new(v, shape), dev));
        let rope = Rope::<B>::for_config(&config, &img_shapes, encoder.dims()[1], dev)
            .with_context(|| file.clone())?;
        config
            .check_inputs(
                hidden.dims(),
                encoder.dims(),
                mask.as_ref().map(|m| m.dims()),
                timestep.dims(),
                &rope,
            )
            .with_context(|| format!("{file} with {}", c.model.display()))?;

        let model = QwenImageTransformer::<B>::load(&c.model, dev)
            .with_context(|| format!("loading the transformer from {}", c.model.display()))?;
        let sample = super::timed(c, dev, || {
            let inputs = DitInputs::new(hidden.clone(), encoder.clone(), timestep.clone(), &rope)
                .encoder_mask(mask.clone())
                .additional_t_cond(t_cond.clone());
            Ok(model.forward(inputs)?)
        })?;
        super::write_output(&c.output, "sample", sample)
    }

    /// `img_shapes` [B, 3] (one image per sample) or [B, K, 3] (K images per sample, the output
    /// first) of (frames, h_tokens, w_tokens). Upstream builds the RoPE tables from the first
    /// sample only, so samples with different lists would silently get wrong positions there:
    /// refuse them here. Sizes are bounded by the RoPE tables ([`Rope::for_config`]).
    fn image_shapes(
        inputs: &weights::Weights,
        file: &str,
        batch: usize,
    ) -> anyhow::Result<Vec<ImageShape>> {
        let (v, shape) = inputs.get_i64("img_shapes")?;
        let k = match shape.as_slice() {
            [b, 3] if *b == batch => 1,
            [b, k, 3] if *b == batch && *k > 0 => *k,
            _ => bail!(
                "{file}: `img_shapes` must be [B, 3] or [B, K, 3] with B = {batch} (the batch of \
                 `hidden_states`), found {shape:?}"
            ),
        };
        if let Some(x) = v.iter().find(|&&x| x <= 0) {
            bail!("{file}: `img_shapes` must be positive, found {x}");
        }
        let per_sample = 3 * k;
        let first = &v[..per_sample];
        if v.chunks(per_sample).any(|s| s != first) {
            bail!("{file}: every sample must have the same `img_shapes`, found {v:?}");
        }
        first
            .chunks(3)
            .map(|r| {
                let dim = |x: i64| usize::try_from(x).context("`img_shapes` value too large");
                Ok(ImageShape::new(dim(r[0])?, dim(r[1])?, dim(r[2])?))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| file.to_string())
    }
}
