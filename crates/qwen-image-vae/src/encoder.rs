//! The VAE encoder (`AutoencoderKLQwenImage.encode` for one frame: image → posterior moments →
//! mean) and [`QwenImageAutoencoder`], both halves loaded from one checkpoint.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, activation};
use weights::Weights;

use crate::Error;
use crate::config::VaeConfig;
use crate::layers::{Downsample, MidBlock, ResidualBlock, RmsNorm, load_causal_conv};
use crate::model::check_all_used;

/// One entry of upstream's flat `encoder.down_blocks` list.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a dozen entries per model, built once: boxing would only add indirection"
)]
enum DownLayer<B: Backend> {
    Residual(ResidualBlock<B>),
    Downsample(Downsample<B>),
}

impl<B: Backend> DownLayer<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Self::Residual(r) => r.forward(x),
            Self::Downsample(d) => d.forward(x),
        }
    }
}

/// The encoder half of `AutoencoderKLQwenImage` (plus `quant_conv`), for single images:
/// `vae.encode(image).latent_dist`, reduced to what the Edit and Layered pipelines read from it.
///
/// Upstream encodes a video in causal chunks (the first frame alone, then four at a time), each
/// causal 3-D conv padding time with two zero frames and a feature cache that is empty on the
/// first chunk. An image is that first chunk, so every k×k×k conv meets only its last temporal
/// tap (a 2-D conv), and each `downsample3d` merely fills its cache and skips `time_conv`.
///
/// Loads the encoder only (`encoder.*`, `quant_conv.*`; the decoder and `post_quant_conv` are
/// skipped by prefix, the downsamplers' `time_conv` tensors by name), strictly otherwise.
#[derive(Module, Debug)]
pub struct QwenImageVaeEncoder<B: Backend> {
    conv_in: Conv2d<B>,
    down_blocks: Vec<DownLayer<B>>,
    mid_block: MidBlock<B>,
    norm_out: RmsNorm<B>,
    conv_out: Conv2d<B>,
    quant_conv: Conv2d<B>,
    #[module(skip)]
    config: VaeConfig,
}

impl<B: Backend> QwenImageVaeEncoder<B> {
    /// Load from a diffusers `vae/` folder: `config.json` + `diffusion_pytorch_model*.safetensors`.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = VaeConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::from_weights(config, &weights, device)
    }

    /// Build from an already opened checkpoint; strict: a missing, misshapen or unexpected tensor
    /// (outside the decoder, `post_quant_conv` and the unused `time_conv`s) is an error naming the
    /// tensor and file.
    pub fn from_weights(config: VaeConfig, w: &Weights, device: &B::Device) -> Result<Self, Error> {
        let (encoder, mut ignored) = Self::build(config, w, device)?;
        ignored.extend(["decoder.".to_string(), "post_quant_conv.".to_string()]);
        check_all_used(w, &ignored)?;
        Ok(encoder)
    }

    /// Read every encoder tensor; return the model and the `time_conv` prefixes left unread on
    /// purpose.
    pub(crate) fn build(
        config: VaeConfig,
        w: &Weights,
        device: &B::Device,
    ) -> Result<(Self, Vec<String>), Error> {
        if !config.attn_scales.is_empty() {
            // Upstream would put attention blocks into `down_blocks` (shifting every index); no
            // released Qwen-Image VAE does, so there is nothing to check such a port against.
            return Err(Error::Unsupported(format!(
                "attn_scales {:?}: encoder attention blocks (every released Qwen-Image VAE has \
                 attn_scales [])",
                config.attn_scales
            )));
        }
        let dev = device;
        let dims = config.encoder_dims();
        let stages = config.dim_mult.len();
        let conv_in =
            load_causal_conv(w, "encoder.conv_in", config.input_channels, dims[0], 3, dev)?;
        let mut ignored = Vec::new();
        let mut down_blocks = Vec::new();
        for i in 0..stages {
            let (mut c_in, c_out) = (dims[i], dims[i + 1]);
            for _ in 0..config.num_res_blocks {
                let prefix = format!("encoder.down_blocks.{}", down_blocks.len());
                let block = ResidualBlock::load(w, &prefix, c_in, c_out, dev)?;
                down_blocks.push(DownLayer::Residual(block));
                c_in = c_out;
            }
            if i + 1 < stages {
                let prefix = format!("encoder.down_blocks.{}", down_blocks.len());
                if config.temperal_downsample[i] {
                    ignored.push(format!("{prefix}.time_conv."));
                }
                down_blocks.push(DownLayer::Downsample(Downsample::load(
                    w, &prefix, c_out, dev,
                )?));
            }
        }
        let c = dims[stages];
        let moments = 2 * config.z_dim;
        let mid_block = MidBlock::load(w, "encoder.mid_block", c, dev)?;
        let norm_out = RmsNorm::load(w, "encoder.norm_out", c, false, dev)?;
        let conv_out = load_causal_conv(w, "encoder.conv_out", c, moments, 3, dev)?;
        let quant_conv = load_causal_conv(w, "quant_conv", moments, moments, 1, dev)?;
        let encoder = Self {
            conv_in,
            down_blocks,
            mid_block,
            norm_out,
            conv_out,
            quant_conv,
            config,
        };
        Ok((encoder, ignored))
    }

    /// The config the model was built from (with `latents_mean` / `latents_std`).
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// `retrieve_latents(vae.encode(image), sample_mode="argmax")`, as the Edit and Layered
    /// pipelines call it: the posterior's mode, which is its mean (the first `z_dim` channels of
    /// the moments). Image `[B, input_channels, 1, H, W]` in [−1, 1], H and W multiples of 8 →
    /// latents `[B, z_dim, 1, H/8, W/8]`, not yet normalised (see [`crate::normalize`]).
    pub fn encode(&self, image: Tensor<B, 5>) -> Result<Tensor<B, 5>, Error> {
        let moments = self.encode_moments(image)?;
        Ok(moments.narrow(1, 0, self.config.z_dim))
    }

    /// `vae.encode(image).latent_dist.parameters`: the moments `[B, 2·z_dim, 1, H/8, W/8]`, mean
    /// then log-variance (upstream clamps the latter to [−30, 20] only when it is used).
    pub fn encode_moments(&self, image: Tensor<B, 5>) -> Result<Tensor<B, 5>, Error> {
        self.encode_inspect(image, |_, _| {})
    }

    /// [`Self::encode_moments`], calling `inspect(stage, output)` after each stage, like forward
    /// hooks on the upstream modules: `conv_in`, `down_blocks.{i}` (every entry of upstream's flat
    /// list), `mid_block`, `encoder` (its output, before `quant_conv`); each `[B, C, 1, h', w']`.
    pub fn encode_inspect(
        &self,
        image: Tensor<B, 5>,
        mut inspect: impl FnMut(&str, &Tensor<B, 5>),
    ) -> Result<Tensor<B, 5>, Error> {
        let [b, c, t, h, w] = image.dims();
        let f = self.config.scale_factor();
        if c != self.config.input_channels || t != 1 || h == 0 || w == 0 || h % f != 0 || w % f != 0
        {
            return Err(Error::Shape {
                what: "image to encode",
                found: vec![b, c, t, h, w],
                expected: format!(
                    "[B, {}, 1, H, W] (the VAE's input_channels, one frame, H and W positive \
                     multiples of {f})",
                    self.config.input_channels
                ),
            });
        }
        let mut report = |name: &str, x: &Tensor<B, 4>| inspect(name, &x.clone().unsqueeze_dim(2));
        let x = self.conv_in.forward(image.reshape([b, c, h, w]));
        report("conv_in", &x);
        let mut x = x;
        for (i, layer) in self.down_blocks.iter().enumerate() {
            x = layer.forward(x);
            report(&format!("down_blocks.{i}"), &x);
        }
        let x = self.mid_block.forward(x);
        report("mid_block", &x);
        let x = self
            .conv_out
            .forward(activation::silu(self.norm_out.forward(x)));
        report("encoder", &x);
        Ok(self.quant_conv.forward(x).unsqueeze_dim(2))
    }
}

/// Both halves of `AutoencoderKLQwenImage`, loaded from one checkpoint with every tensor read
/// except the `time_conv`s that one frame never uses (rejected by name): what the Edit and Layered
/// pipelines need (encode the condition image, decode the result).
#[derive(Module, Debug)]
pub struct QwenImageAutoencoder<B: Backend> {
    encoder: QwenImageVaeEncoder<B>,
    decoder: crate::QwenImageVae<B>,
}

impl<B: Backend> QwenImageAutoencoder<B> {
    /// Load from a diffusers `vae/` folder: `config.json` + `diffusion_pytorch_model*.safetensors`.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = VaeConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::from_weights(config, &weights, device)
    }

    /// Build from an already opened checkpoint; strict: only the `time_conv` tensors may stay
    /// unread.
    pub fn from_weights(config: VaeConfig, w: &Weights, device: &B::Device) -> Result<Self, Error> {
        let (encoder, mut ignored) = QwenImageVaeEncoder::build(config.clone(), w, device)?;
        let (decoder, more) = crate::QwenImageVae::build(config, w, device)?;
        ignored.extend(more);
        check_all_used(w, &ignored)?;
        Ok(Self { encoder, decoder })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &VaeConfig {
        self.encoder.config()
    }

    /// The encoder half.
    pub fn encoder(&self) -> &QwenImageVaeEncoder<B> {
        &self.encoder
    }

    /// The decoder half.
    pub fn decoder(&self) -> &crate::QwenImageVae<B> {
        &self.decoder
    }

    /// [`QwenImageVaeEncoder::encode`]: the posterior mean, before normalisation.
    pub fn encode(&self, image: Tensor<B, 5>) -> Result<Tensor<B, 5>, Error> {
        self.encoder.encode(image)
    }

    /// [`crate::QwenImageVae::decode`]: de-normalised latents → image in [−1, 1].
    pub fn decode(&self, latents: Tensor<B, 5>) -> Result<Tensor<B, 5>, Error> {
        self.decoder.decode(latents)
    }
}
