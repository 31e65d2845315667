//! The whole model (diffusers `QwenImageTransformer2DModel`).

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use weights::Weights;
use weights::nn::RmsNorm;

use crate::attention::AttentionImpl;
use crate::block::TransformerBlock;
use crate::config::DitConfig;
use crate::error::DitError;
use crate::inputs::{DitInputs, RopeInput};
use crate::layers::{AdaLayerNormContinuous, EPS, TimestepProjEmbeddings, time_proj};
use crate::rope::{ImageShape, Rope};

/// QwenImageTransformer2DModel: packed latents + text embeddings + timestep → velocity.
///
/// Fields mirror the PyTorch module tree (`img_in`, `txt_norm`, `txt_in`, `time_text_embed`,
/// `transformer_blocks.{i}`, `norm_out`, `proj_out`); `pos_embed` has no weights and lives in
/// [`Rope`].
#[derive(Module, Debug)]
pub struct QwenImageTransformer<B: Backend> {
    img_in: Linear<B>,
    txt_norm: RmsNorm<B>,
    txt_in: Linear<B>,
    time_text_embed: TimestepProjEmbeddings<B>,
    transformer_blocks: Vec<TransformerBlock<B>>,
    norm_out: AdaLayerNormContinuous<B>,
    proj_out: Linear<B>,
    #[module(skip)]
    config: DitConfig,
    #[module(skip)]
    attention: AttentionImpl,
}

/// Intermediate tensors of one forward pass, for locating a parity failure.
#[derive(Debug, Clone)]
pub struct Intermediates<B: Backend> {
    /// The sinusoidal timestep projection `[B, 256]` (`time_text_embed.time_proj`); `[2B, 256]`
    /// for `zero_cond_t` (t stacked over t·0, as upstream doubles the timestep batch).
    pub time_proj: Tensor<B, 2>,
    /// The timestep embedding `[B, D]` (`time_text_embed`, including the Layered
    /// `addition_t_embedding`); `[2B, D]` for `zero_cond_t`.
    pub temb: Tensor<B, 2>,
    /// Image tokens after `img_in`, `[B, N, D]`.
    pub img_in: Tensor<B, 3>,
    /// Text tokens after `txt_norm` + `txt_in`, `[B, L, D]`.
    pub txt_in: Tensor<B, 3>,
    /// Each block's (image `[B, N, D]`, text `[B, L, D]`) outputs, in order.
    pub blocks: Vec<(Tensor<B, 3>, Tensor<B, 3>)>,
}

impl<B: Backend> QwenImageTransformer<B> {
    /// Load from a diffusers `transformer/` folder: `config.json` plus
    /// `diffusion_pytorch_model.safetensors` or shards with their `*.safetensors.index.json`
    /// (f32, bf16 or f16 stored). Loading is strict: a missing, unexpected or wrong-shaped tensor
    /// is an error naming the tensor and the file.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, DitError> {
        let dir = dir.as_ref();
        let config = DitConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        let model = Self::from_weights(config, &weights, device)?;
        weights.check_all_used(&[])?;
        Ok(model)
    }

    /// A model of this config with random weights made on the device, for timing full-size
    /// configurations without a checkpoint (e.g. the 60-layer released config). Its outputs mean
    /// nothing.
    pub fn random(config: DitConfig, device: &B::Device) -> Result<Self, DitError> {
        Self::from_weights(config, &Weights::synthetic(), device)
    }

    fn from_weights(config: DitConfig, w: &Weights, dev: &B::Device) -> Result<Self, DitError> {
        // `load` validated already; `random` takes a config that may have been made by hand.
        config.validate().map_err(|reason| DitError::Config {
            path: "(transformer config)".into(),
            reason,
        })?;
        let d = config.inner_dim();
        let (heads, head_dim) = (config.num_attention_heads, config.attention_head_dim);
        let transformer_blocks = (0..config.num_layers)
            .map(|i| {
                TransformerBlock::load(w, &format!("transformer_blocks.{i}"), heads, head_dim, dev)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            img_in: w.linear("img_in", config.in_channels, d, true, dev)?,
            txt_norm: RmsNorm::load(w, "txt_norm", config.joint_attention_dim, EPS, dev)?,
            txt_in: w.linear("txt_in", config.joint_attention_dim, d, true, dev)?,
            time_text_embed: TimestepProjEmbeddings::load(
                w,
                "time_text_embed",
                d,
                config.use_additional_t_cond,
                dev,
            )?,
            transformer_blocks,
            norm_out: AdaLayerNormContinuous::load(w, "norm_out", d, dev)?,
            proj_out: w.linear("proj_out", d, config.proj_out_dim(), true, dev)?,
            config,
            attention: AttentionImpl::default(),
        })
    }

    /// The configuration read from `config.json`.
    pub fn config(&self) -> &DitConfig {
        &self.config
    }

    /// Choose how attention is computed (default: burn's fused op).
    pub fn with_attention(mut self, imp: AttentionImpl) -> Self {
        self.attention = imp;
        self
    }

    /// The MSRoPE tables for `img_shapes` (the images of one sample in sequence order: the output
    /// first, then each condition image — Edit: `[output, image 1, image 2, …]`; Layered:
    /// `layers + 1` output frames, then the input image; every sample of a batch shares them)
    /// and `txt_len` text tokens (the padded length of `encoder_hidden_states`). The config picks
    /// the layout (`use_layer3d_rope`). Compute once per image sizes and text length and pass
    /// to every [`Self::forward`] (as [`RopeInput::Table`]); they also tell `zero_cond_t` which tokens are
    /// condition tokens.
    pub fn rope(
        &self,
        img_shapes: &[ImageShape],
        txt_len: usize,
        device: &B::Device,
    ) -> Result<Rope<B>, DitError> {
        Rope::for_config(&self.config, img_shapes, txt_len, device)
    }

    /// Predict the flow-matching velocity `[B, N, patch² · out_channels]` (see [`DitInputs`]
    /// for what each input is). Every shape is checked against the config, the other inputs and
    /// the RoPE tables, and `additional_t_cond` against `use_additional_t_cond`; a mismatch is a
    /// [`DitError::Input`], never a panic.
    pub fn forward(&self, inputs: DitInputs<'_, B>) -> Result<Tensor<B, 3>, DitError> {
        Ok(self.run(inputs, false)?.0)
    }

    /// [`Self::forward`] that also returns the intermediate tensors, for locating a parity
    /// failure (the same pass: the tensors are kept as it goes).
    pub fn forward_traced(
        &self,
        inputs: DitInputs<'_, B>,
    ) -> Result<(Tensor<B, 3>, Intermediates<B>), DitError> {
        let (out, trace) = self.run(inputs, true)?;
        Ok((out, trace.expect("run returns intermediates when asked to")))
    }

    /// The forward pass: checks, then the stem, the blocks and `norm_out`; the intermediates are
    /// kept when `keep_intermediates`.
    fn run(
        &self,
        inputs: DitInputs<'_, B>,
        keep_intermediates: bool,
    ) -> Result<(Tensor<B, 3>, Option<Intermediates<B>>), DitError> {
        let built;
        let rope = match inputs.rope {
            RopeInput::Table(rope) => rope,
            RopeInput::Shapes(shapes) => {
                let l = inputs.encoder_hidden_states.dims()[1];
                built = self.rope(shapes, l, &inputs.hidden_states.device())?;
                &built
            }
        };
        let padded = inputs.check(&self.config, rope)?;
        let DitInputs {
            hidden_states,
            encoder_hidden_states,
            encoder_mask,
            timestep,
            additional_t_cond,
            ..
        } = inputs;
        let n_img = hidden_states.dims()[1];
        let batch = timestep.dims()[0];
        let zero_cond_t = self.config.zero_cond_t;
        let mut img = self.img_in.forward(hidden_states);
        let mut txt = self
            .txt_in
            .forward(self.txt_norm.forward(encoder_hidden_states));
        // An all-ones mask changes nothing; skipping it keeps the unmasked fused kernel.
        let key_mask = encoder_mask
            .filter(|_| padded)
            .map(|m| joint_key_mask(m, n_img));

        let (proj, temb) = self.timestep_embedding(timestep, additional_t_cond);
        // Every block's modulation and norm_out start with SiLU(temb): compute it once.
        let temb_silu = silu(temb.clone());
        // The condition-image tokens (after the first image) take the t = 0 half.
        let cond_from = zero_cond_t.then(|| rope.num_first_image_tokens());

        let mut trace = keep_intermediates.then(|| Intermediates {
            time_proj: proj,
            temb,
            img_in: img.clone(),
            txt_in: txt.clone(),
            blocks: Vec::new(),
        });
        for block in &self.transformer_blocks {
            (img, txt) = block.forward(
                img,
                txt,
                temb_silu.clone(),
                cond_from,
                rope,
                key_mask.as_ref(),
                self.attention,
            );
            if let Some(t) = trace.as_mut() {
                t.blocks.push((img.clone(), txt.clone()));
            }
        }
        // norm_out is driven by the t half only.
        let out_temb = if zero_cond_t {
            temb_silu.narrow(0, 0, batch)
        } else {
            temb_silu
        };
        // The text stream's last update is discarded, as upstream.
        let out = self.proj_out.forward(self.norm_out.forward(img, out_temb));
        Ok((out, trace))
    }

    /// The sinusoidal projection and the embedding `temb` of the timestep (plus the Layered
    /// class embedding); doubled to `[t; t·0]` for `zero_cond_t`.
    fn timestep_embedding(
        &self,
        timestep: Tensor<B, 1>,
        additional_t_cond: Option<Tensor<B, 1, Int>>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let zero_cond_t = self.config.zero_cond_t;
        // zero_cond_t: the batch of timesteps is doubled to [t; t·0] (t·0, not zeros, as upstream:
        // a NaN timestep stays NaN in both halves).
        let timestep = if zero_cond_t {
            Tensor::cat(vec![timestep.clone(), timestep.mul_scalar(0.0)], 0)
        } else {
            timestep
        };
        // The sinusoid runs in f32 on the (model-dtype) timestep, as upstream.
        let proj = time_proj(timestep);
        let mut temb = self.time_text_embed.forward(proj.clone());
        if self.config.use_additional_t_cond {
            let classes = additional_t_cond
                .expect("check_additional_t_cond refuses a missing additional_t_cond");
            if let Some(add) = self.time_text_embed.addition(classes) {
                // With zero_cond_t as well, both halves get the sample's class embedding (upstream
                // broadcasts [B, D] onto [2B, D], which it can only do for B = 1).
                let add = if zero_cond_t {
                    Tensor::cat(vec![add.clone(), add], 0)
                } else {
                    add
                };
                temb = temb + add;
            }
        }
        (proj, temb)
    }
}

/// `[B, L]` text mask (1 = real, 0 = padding) → `[B, L + N]` joint key mask in the attention's
/// order (text first), true = masked out.
fn joint_key_mask<B: Backend>(mask: Tensor<B, 2, Int>, n_img: usize) -> Tensor<B, 2, Bool> {
    let [b, _] = mask.dims();
    let padded = mask.equal_elem(0);
    let image = Tensor::<B, 2, Int>::zeros([b, n_img], &padded.device()).equal_elem(1);
    Tensor::cat(vec![padded, image], 1)
}
