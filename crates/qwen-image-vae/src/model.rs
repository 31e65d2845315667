//! [`QwenImageVae`], the decoder half of `AutoencoderKLQwenImage` (latents → image in [−1, 1]) for
//! a single frame, and the strict check that a checkpoint's tensors were all used.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, activation};
use weights::Weights;

use crate::Error;
use crate::config::VaeConfig;
use crate::layers::{MidBlock, ResidualBlock, RmsNorm, Upsample, load_causal_conv};

/// `QwenImageUpBlock`: `num_res_blocks + 1` residual blocks, then an optional upsampler.
#[derive(Module, Debug)]
struct UpBlock<B: Backend> {
    resnets: Vec<ResidualBlock<B>>,
    upsampler: Option<Upsample<B>>,
}

impl<B: Backend> UpBlock<B> {
    fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for resnet in &self.resnets {
            x = resnet.forward(x);
        }
        match &self.upsampler {
            Some(up) => up.forward(x),
            None => x,
        }
    }
}

/// The decoder half of `AutoencoderKLQwenImage` (plus `post_quant_conv`), for single images.
///
/// Built from `config.json` and the released weight names (`decoder.*`, `post_quant_conv.*`). This
/// type loads the decoder only, so that text-to-image never holds the encoder: the encoder and
/// `quant_conv` tensors are skipped by prefix, and the upsamplers' `time_conv` tensors (unused for
/// one frame) by name. [`crate::QwenImageVaeEncoder`] is the encoder alone and
/// [`crate::QwenImageAutoencoder`] loads both halves.
#[derive(Module, Debug)]
pub struct QwenImageVae<B: Backend> {
    post_quant_conv: Conv2d<B>,
    conv_in: Conv2d<B>,
    mid_block: MidBlock<B>,
    up_blocks: Vec<UpBlock<B>>,
    norm_out: RmsNorm<B>,
    conv_out: Conv2d<B>,
    #[module(skip)]
    config: VaeConfig,
}

impl<B: Backend> QwenImageVae<B> {
    /// Load from a diffusers `vae/` folder: `config.json` + `diffusion_pytorch_model*.safetensors`
    /// (f32, bf16 or f16 stored; converted to the backend's float type).
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = VaeConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::from_weights(config, &weights, device)
    }

    /// Build from an already opened checkpoint; strict: a missing, misshapen or unexpected tensor
    /// (outside the encoder, `quant_conv` and the unused `time_conv`s) is an error naming the
    /// tensor and file.
    pub fn from_weights(config: VaeConfig, w: &Weights, device: &B::Device) -> Result<Self, Error> {
        let (decoder, mut ignored) = Self::build(config, w, device)?;
        ignored.extend(["encoder.".to_string(), "quant_conv.".to_string()]);
        check_all_used(w, &ignored)?;
        Ok(decoder)
    }

    /// Read every decoder tensor; return the model and the `time_conv` prefixes it leaves unread
    /// on purpose (the caller decides what else may stay unread).
    pub(crate) fn build(
        config: VaeConfig,
        w: &Weights,
        device: &B::Device,
    ) -> Result<(Self, Vec<String>), Error> {
        let dev = device;
        let z = config.z_dim;
        let dims = config.decoder_dims();
        let post_quant_conv = load_causal_conv(w, "post_quant_conv", z, z, 1, dev)?;
        let conv_in = load_causal_conv(w, "decoder.conv_in", z, dims[0], 3, dev)?;
        let mid_block = MidBlock::load(w, "decoder.mid_block", dims[0], dev)?;
        let temporal_upsample: Vec<bool> =
            config.temperal_downsample.iter().rev().copied().collect();
        let n_blocks = dims.len() - 1;
        let mut ignored = Vec::new();
        let mut up_blocks = Vec::with_capacity(n_blocks);
        for i in 0..n_blocks {
            let prefix = format!("decoder.up_blocks.{i}");
            // Every upsampler halves the channels, so blocks after the first start at half width.
            let mut c_in = if i > 0 { dims[i] / 2 } else { dims[i] };
            let c_out = dims[i + 1];
            let mut resnets = Vec::with_capacity(config.num_res_blocks + 1);
            for j in 0..=config.num_res_blocks {
                resnets.push(ResidualBlock::load(
                    w,
                    &format!("{prefix}.resnets.{j}"),
                    c_in,
                    c_out,
                    dev,
                )?);
                c_in = c_out;
            }
            let upsampler = if i + 1 < n_blocks {
                if temporal_upsample[i] {
                    ignored.push(format!("{prefix}.upsamplers.0.time_conv."));
                }
                Some(Upsample::load(
                    w,
                    &format!("{prefix}.upsamplers.0"),
                    c_out,
                    dev,
                )?)
            } else {
                None
            };
            up_blocks.push(UpBlock { resnets, upsampler });
        }
        let c_last = dims[n_blocks];
        let norm_out = RmsNorm::load(w, "decoder.norm_out", c_last, false, dev)?;
        let conv_out =
            load_causal_conv(w, "decoder.conv_out", c_last, config.input_channels, 3, dev)?;
        let decoder = Self {
            post_quant_conv,
            conv_in,
            mid_block,
            up_blocks,
            norm_out,
            conv_out,
            config,
        };
        Ok((decoder, ignored))
    }

    /// The config the model was built from (with `latents_mean` / `latents_std`).
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// `vae.decode(latents).sample`: latents `[B, z_dim, 1, h, w]` (already de-normalised) →
    /// image `[B, input_channels, 1, 8h, 8w]` clamped to [−1, 1] (4 channels, RGBA, for the
    /// Layered VAE).
    pub fn decode(&self, latents: Tensor<B, 5>) -> Result<Tensor<B, 5>, Error> {
        self.decode_inspect(latents, |_, _| {})
    }

    /// [`Self::decode`], calling `inspect(stage, output)` after each stage, like forward hooks on
    /// the upstream modules: `post_quant_conv`, `conv_in`, `mid_block`, `up_blocks.{i}` (each
    /// `[B, C, 1, h', w']`). Used by the parity tests to locate a mismatch.
    pub fn decode_inspect(
        &self,
        latents: Tensor<B, 5>,
        mut inspect: impl FnMut(&str, &Tensor<B, 5>),
    ) -> Result<Tensor<B, 5>, Error> {
        let [b, c, t, h, w] = latents.dims();
        if c != self.config.z_dim || t != 1 || h == 0 || w == 0 {
            return Err(Error::Shape {
                what: "VAE latents",
                found: vec![b, c, t, h, w],
                expected: format!("[B, {}, 1, h, w] (one frame)", self.config.z_dim),
            });
        }
        // One frame all the way: work in 4-D and only add the frame axis back for the hooks.
        let mut report = |name: &str, x: &Tensor<B, 4>| inspect(name, &x.clone().unsqueeze_dim(2));
        let x = self.post_quant_conv.forward(latents.reshape([b, c, h, w]));
        report("post_quant_conv", &x);
        let x = self.conv_in.forward(x);
        report("conv_in", &x);
        let mut x = self.mid_block.forward(x);
        report("mid_block", &x);
        for (i, block) in self.up_blocks.iter().enumerate() {
            x = block.forward(x);
            report(&format!("up_blocks.{i}"), &x);
        }
        let x = self
            .conv_out
            .forward(activation::silu(self.norm_out.forward(x)));
        Ok(x.clamp(-1.0, 1.0).unsqueeze_dim(2))
    }
}

/// Strict loading: everything not read must sit under one of `ignored` (prefixes or exact names).
pub(crate) fn check_all_used(w: &Weights, ignored: &[String]) -> Result<(), Error> {
    let ignored: Vec<&str> = ignored.iter().map(String::as_str).collect();
    Ok(w.check_all_used(&ignored)?)
}
