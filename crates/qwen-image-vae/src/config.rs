//! [`VaeConfig`]: `vae/config.json` of an `AutoencoderKLQwenImage`, read and validated.

use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// `config.json` of an `AutoencoderKLQwenImage` (keys as diffusers writes them; a missing key takes
/// the class default, which is also the released `Qwen/Qwen-Image` value).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VaeConfig {
    /// Channel unit; decoder widths are `base_dim × dim_mult`.
    #[serde(default = "default_base_dim")]
    pub base_dim: usize,
    /// Latent channels.
    #[serde(default = "default_z_dim")]
    pub z_dim: usize,
    /// Channel multipliers of the encoder stages (the decoder walks them in reverse).
    #[serde(default = "default_dim_mult")]
    pub dim_mult: Vec<usize>,
    /// Residual blocks per encoder stage (each decoder up block has one more).
    #[serde(default = "default_num_res_blocks")]
    pub num_res_blocks: usize,
    /// Encoder stages that also halve time (diffusers' spelling). It picks which encoder
    /// downsamplers are `downsample3d` and, reversed, which decoder upsamplers are `upsample3d`;
    /// for one frame that only decides whether `time_conv` weights exist.
    #[serde(default = "default_temperal_downsample")]
    pub temperal_downsample: Vec<bool>,
    /// Scales (1, 1/2, …) after whose encoder residual blocks an attention block sits. Every
    /// released Qwen-Image VAE has none; the encoder refuses a config with any (the decoder
    /// ignores the key, as upstream's does).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Image channels in and out (3 = RGB; the Layered VAE uses 4 = RGBA for both the encoder's
    /// input and the decoder's output: diffusers 0.42.1 has no separate output-channel key).
    #[serde(default = "default_input_channels")]
    pub input_channels: usize,
    /// Per-channel latent mean used by [`crate::denormalize`].
    #[serde(default = "default_latents_mean")]
    pub latents_mean: Vec<f32>,
    /// Per-channel latent standard deviation used by [`crate::denormalize`].
    #[serde(default = "default_latents_std")]
    pub latents_std: Vec<f32>,
}

fn default_base_dim() -> usize {
    96
}
fn default_z_dim() -> usize {
    16
}
fn default_dim_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_num_res_blocks() -> usize {
    2
}
fn default_temperal_downsample() -> Vec<bool> {
    vec![false, true, true]
}
fn default_input_channels() -> usize {
    3
}
fn default_latents_mean() -> Vec<f32> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
        0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ]
}
fn default_latents_std() -> Vec<f32> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
        1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
    ]
}

impl Default for VaeConfig {
    /// The released `Qwen/Qwen-Image` VAE config.
    fn default() -> Self {
        Self {
            base_dim: default_base_dim(),
            z_dim: default_z_dim(),
            dim_mult: default_dim_mult(),
            num_res_blocks: default_num_res_blocks(),
            temperal_downsample: default_temperal_downsample(),
            attn_scales: Vec::new(),
            input_channels: default_input_channels(),
            latents_mean: default_latents_mean(),
            latents_std: default_latents_std(),
        }
    }
}

/// The widest channel count (and the largest `z_dim`, `input_channels`, `num_res_blocks`) a config
/// may ask for; the released VAE uses 384. A bound keeps a hostile config from overflowing the
/// width products or allocating without end.
const MAX_WIDTH: usize = 1 << 16;

/// The most downsampling stages (`len(temperal_downsample)`; the released VAE has 3, a scale
/// factor of 8): the scale factor is `2^stages`.
const MAX_DOWNSAMPLES: usize = 8;

impl VaeConfig {
    /// Read and validate `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let config: Self = config_file::read_json(path)?;
        config.validate().map_err(|reason| Error::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// Pixels per latent cell along each side: `2^len(temperal_downsample)` (8 for Qwen-Image),
    /// as `QwenImagePipeline.vae_scale_factor`.
    pub fn scale_factor(&self) -> usize {
        // Saturating: a validated config has at most MAX_DOWNSAMPLES entries.
        1usize
            .checked_shl(self.temperal_downsample.len() as u32)
            .unwrap_or(usize::MAX)
    }

    /// Channel widths the encoder walks through: `base_dim × [1, dim_mult…]` (stage `i` goes from
    /// entry `i` to entry `i + 1`; the last is the mid block's width).
    pub(crate) fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|m| self.base_dim.saturating_mul(m))
            .collect()
    }

    /// Channel widths the decoder walks through: `base_dim × [dim_mult[-1], reversed(dim_mult)…]`.
    pub(crate) fn decoder_dims(&self) -> Vec<usize> {
        let last = self.dim_mult.last().copied().unwrap_or(1);
        std::iter::once(last)
            .chain(self.dim_mult.iter().rev().copied())
            .map(|m| self.base_dim.saturating_mul(m))
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        if self.base_dim == 0 || self.z_dim == 0 || self.input_channels == 0 {
            return Err("base_dim, z_dim and input_channels must be positive".into());
        }
        if self.dim_mult.is_empty() || self.dim_mult.contains(&0) {
            return Err(format!(
                "dim_mult {:?} must be non-empty and positive",
                self.dim_mult
            ));
        }
        // Bounds before any product: every value may come from a hostile file.
        if self.dim_mult.len() > MAX_DOWNSAMPLES + 1 {
            return Err(format!(
                "dim_mult has {} stages, more than the {} this port allows",
                self.dim_mult.len(),
                MAX_DOWNSAMPLES + 1
            ));
        }
        for (name, v) in [
            ("z_dim", self.z_dim),
            ("input_channels", self.input_channels),
            ("num_res_blocks", self.num_res_blocks),
        ] {
            if v > MAX_WIDTH {
                return Err(format!("{name} {v} exceeds the maximum {MAX_WIDTH}"));
            }
        }
        if let Some(m) = self
            .dim_mult
            .iter()
            .find(|&&m| self.base_dim.checked_mul(m).is_none_or(|w| w > MAX_WIDTH))
        {
            return Err(format!(
                "base_dim {} × dim_mult {m} exceeds the maximum channel width {MAX_WIDTH}",
                self.base_dim
            ));
        }
        if self.base_dim > MAX_WIDTH {
            return Err(format!(
                "base_dim {} exceeds the maximum channel width {MAX_WIDTH}",
                self.base_dim
            ));
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return Err(format!(
                "temperal_downsample has {} entries, expected len(dim_mult) - 1 = {}",
                self.temperal_downsample.len(),
                self.dim_mult.len() - 1
            ));
        }
        // Each upsampler halves the channels: the widths after an upsampler must stay even.
        if self.decoder_dims().iter().any(|d| d % 2 != 0) {
            return Err(format!(
                "base_dim × dim_mult must be even, got {:?}",
                self.decoder_dims()
            ));
        }
        for (name, v) in [
            ("latents_mean", &self.latents_mean),
            ("latents_std", &self.latents_std),
        ] {
            if v.len() != self.z_dim {
                return Err(format!(
                    "{name} has {} values, expected z_dim = {}",
                    v.len(),
                    self.z_dim
                ));
            }
        }
        if self.latents_std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err("latents_std must be finite and non-zero".into());
        }
        Ok(())
    }
}
