//! Small building blocks: norms, the MLP, the timestep embedding and the output AdaLN.
//! Struct and field names follow the PyTorch modules so each weight key maps 1:1.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{gelu_approximate, silu};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use weights::Weights;
use weights::nn::{in_f32, linear};

use crate::error::DitError;

/// Every LayerNorm and RMSNorm in the model uses this epsilon (hard-coded upstream).
pub(crate) const EPS: f64 = 1e-6;
/// Width of the sinusoidal timestep projection (`Timesteps(num_channels=256, …)`).
pub(crate) const TIME_PROJ_DIM: usize = 256;

/// LayerNorm over the last axis without affine parameters (`elementwise_affine=False`).
/// burn's `nn::LayerNorm` always carries a learnable gamma/beta, hence this function.
pub(crate) fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // Statistics in f32 even for bf16 activations (torch's layer_norm accumulates in f32).
    in_f32(x, |x| {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        (x - mean) * (var + EPS).sqrt().recip()
    })
}

/// diffusers `FeedForward(dim, dim_out=dim, activation_fn="gelu-approximate")`:
/// `net.0.proj` (D → 4D) → tanh-GELU → `net.2` (4D → D); `net.1` is a weightless dropout.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    net_0_proj: Linear<B>,
    net_2: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        dim: usize,
        dev: &B::Device,
    ) -> Result<Self, DitError> {
        let hidden = 4 * dim;
        Ok(Self {
            net_0_proj: w.linear(&format!("{prefix}.net.0.proj"), dim, hidden, true, dev)?,
            net_2: w.linear(&format!("{prefix}.net.2"), hidden, dim, true, dev)?,
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.net_2
            .forward(gelu_approximate(self.net_0_proj.forward(x)))
    }
}

/// diffusers `TimestepEmbedding`: `linear_1` (256 → D) → SiLU → `linear_2` (D → D).
#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    linear_1: Linear<B>,
    linear_2: Linear<B>,
}

/// diffusers `QwenTimestepProjEmbeddings` (`time_text_embed`): the sinusoid `time_proj`, which
/// has no weights, followed by `timestep_embedder`; for the Layered variant
/// (`use_additional_t_cond`) plus `addition_t_embedding`, an `nn.Embedding(2, D)` looked up by
/// the per-sample `additional_t_cond` class and added to the embedding.
#[derive(Module, Debug)]
pub struct TimestepProjEmbeddings<B: Backend> {
    timestep_embedder: TimestepEmbedding<B>,
    addition_t_embedding: Option<Param<Tensor<B, 2>>>,
}

/// Rows of `addition_t_embedding` (hard-coded upstream: `nn.Embedding(2, embedding_dim)`).
pub(crate) const ADDITION_T_CLASSES: usize = 2;

impl<B: Backend> TimestepProjEmbeddings<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        dim: usize,
        additional_t_cond: bool,
        dev: &B::Device,
    ) -> Result<Self, DitError> {
        let p = format!("{prefix}.timestep_embedder");
        let addition_t_embedding = if additional_t_cond {
            let name = format!("{prefix}.addition_t_embedding.weight");
            Some(Param::from_tensor(w.get(
                &name,
                [ADDITION_T_CLASSES, dim],
                dev,
            )?))
        } else {
            None
        };
        Ok(Self {
            timestep_embedder: TimestepEmbedding {
                linear_1: w.linear(&format!("{p}.linear_1"), TIME_PROJ_DIM, dim, true, dev)?,
                linear_2: w.linear(&format!("{p}.linear_2"), dim, dim, true, dev)?,
            },
            addition_t_embedding,
        })
    }

    /// `temb` `[B, D]` from the projected sinusoid `[B, 256]`.
    pub(crate) fn forward(&self, time_proj: Tensor<B, 2>) -> Tensor<B, 2> {
        let e = &self.timestep_embedder;
        linear(&e.linear_2, silu(linear(&e.linear_1, time_proj)))
    }

    /// The `addition_t_embedding` rows for the classes `cond` `[B]` → `[B, D]`; `None` when the
    /// model has no such table (`use_additional_t_cond = false`).
    pub(crate) fn addition(&self, cond: Tensor<B, 1, Int>) -> Option<Tensor<B, 2>> {
        self.addition_t_embedding
            .as_ref()
            .map(|table| table.val().select(0, cond))
    }
}

/// diffusers `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0, scale=1000)`:
/// `[cos(a) | sin(a)]` with `a_k = 1000 · (t · 10000^(-k/128))`, `t` `[B]` → `[B, 256]`.
///
/// The model's `timestep` input is already divided by 1000 (the pipeline passes t/1000), and this
/// projection multiplies by 1000 again. Upstream computes the frequencies in f32 and
/// multiplies `t·f` before the scale, which we follow to stay bit-close.
///
/// In bf16 the pipeline has already rounded the input to bf16(bf16(t)/1000); the sinusoid itself is
/// always computed in f32 and cast to the model dtype (the module-local `get_timestep_embedding` in transformer_qwenimage.py, which would
/// round the frequencies, is not the one used).
pub(crate) fn time_proj<B: Backend>(timestep: Tensor<B, 1>) -> Tensor<B, 2> {
    let half = TIME_PROJ_DIM / 2;
    let ln_period = -(10000f64.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|k| ((ln_period * k as f32) / half as f32).exp())
        .collect();
    let device = timestep.device();
    let dtype = timestep.dtype();
    // The sinusoid is always computed in f32 and cast to the model dtype afterwards.
    let freqs = Tensor::<B, 2>::from_data(
        TensorData::new(freqs, [1, half]),
        burn::tensor::TensorCreationOptions::new(device).with_dtype(DType::F32),
    );
    let t = timestep.cast(FloatDType::F32).unsqueeze_dim::<2>(1);
    let angles = (t * freqs).mul_scalar(1000.0);
    Tensor::cat(vec![angles.clone().cos(), angles.sin()], 1).cast(dtype)
}

/// diffusers `AdaLayerNormContinuous(D, D, elementwise_affine=False, eps=1e-6)` (`norm_out`).
#[derive(Module, Debug)]
pub struct AdaLayerNormContinuous<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> AdaLayerNormContinuous<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        dim: usize,
        dev: &B::Device,
    ) -> Result<Self, DitError> {
        Ok(Self {
            linear: w.linear(&format!("{prefix}.linear"), dim, 2 * dim, true, dev)?,
        })
    }

    /// `x` `[B, N, D]`, `temb_silu` = SiLU(temb) `[B, D]`.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, temb_silu: Tensor<B, 2>) -> Tensor<B, 3> {
        // Unlike the blocks' [shift, scale, gate], this layer's chunks are [scale, shift].
        let [scale, shift] = chunks::<B, 2>(linear(&self.linear, temb_silu));
        layer_norm(x) * scale.add_scalar(1.0) + shift
    }
}

/// Split `[B, K·D]` into K tensors `[B, 1, D]` (ready to broadcast over tokens).
pub(crate) fn chunks<B: Backend, const K: usize>(x: Tensor<B, 2>) -> [Tensor<B, 3>; K] {
    let [b, kd] = x.dims();
    let d = kd / K;
    std::array::from_fn(|i| x.clone().narrow(1, i * d, d).reshape([b, 1, d]))
}
