//! `cargo xtask forward dit|vae-decode`: golden tensors in, tensors out.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Forward {
    /// QwenImageTransformer2DModel forward.
    Dit(Common),
    /// AutoencoderKLQwenImage decode.
    VaeDecode(Common),
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
}

pub fn run(f: Forward) -> anyhow::Result<ExitCode> {
    match f {
        Forward::Dit(c) => run_dit(c),
        Forward::VaeDecode(c) => run_vae(c),
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
    let sample = vae
        .decode(latents)
        .with_context(|| format!("decoding `latents` from {}", c.inputs.display()))?;
    let shape = sample.dims().to_vec();
    let data = sample.into_data().convert::<f32>();
    let values = data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the decoded sample back: {e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)?;
    // Never leave a half-written file behind: write beside it, then rename.
    let mut tmp = c.output.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    safetensors::serialize_to_file([("sample", view)], None, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &c.output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), c.output.display()))?;
    Ok(())
}

/// `forward dit`: `hidden_states` [B,N,C_in], `encoder_hidden_states` [B,L,D], optional
/// `encoder_hidden_states_mask` [B,L] i64, `timestep` [B] (already divided by 1000), `img_shapes`
/// [B,3] i64 → `sample` [B,N,C_out] f32, as `QwenImageTransformer2DModel(...).sample`.
fn run_dit(c: Common) -> anyhow::Result<ExitCode> {
    let (device, precision) = crate::backend::parse(&c.device, &c.dtype)?;
    crate::with_backend!(device, precision, |B, dev| dit::forward::<B>(&c, &dev))?;
    Ok(ExitCode::SUCCESS)
}

mod dit {
    use anyhow::{Context, bail};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Int, Tensor, TensorData};
    use qwen_image_dit::{ImageShape, QwenImageTransformer};
    use std::path::PathBuf;

    use super::Common;

    pub(super) fn forward<B: Backend>(c: &Common, dev: &B::Device) -> anyhow::Result<()> {
        let file = c.inputs.display();
        let inputs = weights::Weights::open(&c.inputs)?;
        let hidden: Tensor<B, 3> = inputs.get_any("hidden_states", dev)?;
        let encoder: Tensor<B, 3> = inputs.get_any("encoder_hidden_states", dev)?;
        let timestep: Tensor<B, 1> = inputs.get_any("timestep", dev)?;
        let mask = if inputs.contains("encoder_hidden_states_mask") {
            let (v, shape) = inputs.get_i64("encoder_hidden_states_mask")?;
            if shape.len() != 2 {
                bail!("{file}: `encoder_hidden_states_mask` must be [B, L], found {shape:?}");
            }
            Some(Tensor::<B, 2, Int>::from_data(
                TensorData::new(v, shape),
                dev,
            ))
        } else {
            None
        };
        let img_shapes = image_shapes(&inputs, &file.to_string())?;

        let model = QwenImageTransformer::<B>::load(&c.model, dev)
            .with_context(|| format!("loading the transformer from {}", c.model.display()))?;
        let sample = model
            .forward(hidden, encoder, mask, timestep, &img_shapes)
            .with_context(|| format!("running the transformer on {file}"))?;

        let shape = sample.dims().to_vec();
        let data = sample.into_data().convert::<f32>();
        let values = data
            .as_slice::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the sample back: {e:?}"))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)?;
        // Never leave a half-written file behind: write beside it, then rename.
        let mut tmp = c.output.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        safetensors::serialize_to_file([("sample", view)], None, &tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &c.output)
            .with_context(|| format!("renaming {} to {}", tmp.display(), c.output.display()))?;
        Ok(())
    }

    /// `img_shapes` [B, 3] = (frames, h_tokens, w_tokens) per sample. Upstream builds the RoPE
    /// tables from the first sample only, so samples with different shapes would silently get
    /// wrong positions there: refuse them here.
    fn image_shapes(inputs: &weights::Weights, file: &str) -> anyhow::Result<Vec<ImageShape>> {
        let (v, shape) = inputs.get_i64("img_shapes")?;
        if shape.len() != 2 || shape[1] != 3 || shape[0] == 0 {
            bail!("{file}: `img_shapes` must be [B, 3], found {shape:?}");
        }
        if v.iter().any(|&x| x <= 0) {
            bail!("{file}: `img_shapes` must be positive, found {v:?}");
        }
        let rows: Vec<&[i64]> = v.chunks(3).collect();
        if rows.iter().any(|r| *r != rows[0]) {
            bail!("{file}: every sample must have the same `img_shapes` row, found {v:?}");
        }
        let r = rows[0];
        Ok(vec![ImageShape::new(
            r[0] as usize,
            r[1] as usize,
            r[2] as usize,
        )])
    }
}
