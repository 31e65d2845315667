//! One decoder layer of the Qwen2.5-VL language model (`Qwen2_5_VLDecoderLayer`): pre-norm
//! grouped-query self-attention with the rotary embedding, then the SwiGLU MLP, each added back to
//! the residual stream.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor};
use weights::Weights;
use weights::nn::{RmsNorm, linear};

use crate::kv_cache::KvCache;
use crate::rope::{self, RopeTables};
use crate::{Error, TextConfig};

/// `Qwen2_5_VLAttention`: q/k/v projections with bias, o_proj without, grouped-query heads.
#[derive(Module, Debug)]
struct SelfAttention<B: Backend> {
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    o_proj: Linear<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    kv_heads: usize,
    #[module(skip)]
    head_dim: usize,
}

impl<B: Backend> SelfAttention<B> {
    fn load(w: &Weights, prefix: &str, cfg: &TextConfig, dev: &B::Device) -> Result<Self, Error> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let q = cfg.num_attention_heads * hd;
        let kv = cfg.num_key_value_heads * hd;
        Ok(Self {
            q_proj: w.linear(&format!("{prefix}.q_proj"), d, q, true, dev)?,
            k_proj: w.linear(&format!("{prefix}.k_proj"), d, kv, true, dev)?,
            v_proj: w.linear(&format!("{prefix}.v_proj"), d, kv, true, dev)?,
            o_proj: w.linear(&format!("{prefix}.o_proj"), q, d, false, dev)?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    /// `x` `[B, L, D]`; `mask` `[B, 1, L, L]`, true = padded key, `None` when nothing is padded
    /// (causality is added by the op).
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<&Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 3> {
        let (q, k, v) = self.qkv(x, rope);
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        // Scale left at its default 1/√head_dim, upstream's `head_dim**-0.5`. Masked keys get
        // exactly zero weight; a query row with no visible key (a leading pad under left padding)
        // comes out as zeros instead of NaN, and is dropped by the prompt path anyway.
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let out = attention(q, k, v, mask.cloned(), None, options);
        self.project_out(out)
    }

    /// [`forward`](Self::forward) for `x` `[B, n, D]`, the n tokens after those already in
    /// `cache` (layer `layer`): their keys and values are appended, and the queries attend over
    /// every stored key — all of them for a single new token, causally otherwise (an empty cache
    /// is the ordinary causal prefill). No padding: every stored token is attended.
    fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let [b, l, _] = x.dims();
        let past = cache.len();
        let (q, k, v) = self.qkv(x, rope);
        let (k, v) = cache.append(layer, k, v);
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        // Query i (absolute position past + i) sees keys 0 ..= past + i. With no past that is the
        // op's causal mode; one new token sees everything; a chunk after a past needs the mask.
        let device = q.device();
        let mask = (past > 0 && l > 1).then(|| {
            let total = past + l;
            let rows = Tensor::<B, 1, Int>::arange(0..l as i64, &device)
                .reshape([l, 1])
                .add_scalar(past as i64);
            let cols = Tensor::<B, 1, Int>::arange(0..total as i64, &device).reshape([1, total]);
            cols.expand([l, total])
                .greater(rows.expand([l, total]))
                .reshape([1, 1, l, total])
                .repeat_dim(0, b)
        });
        let options = AttentionModuleOptions {
            is_causal: past == 0,
            ..Default::default()
        };
        let out = attention(q, k, v, mask, None, options);
        self.project_out(out)
    }

    /// Queries `[B, heads, L, hd]` and keys `[B, kv_heads, L, hd]` with the rotary embedding
    /// applied, and values `[B, kv_heads, L, hd]`, of `x` `[B, L, D]`.
    fn qkv(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, l, _] = x.dims();
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, l, n, self.head_dim]).swap_dims(1, 2);
        let q = rope::apply(heads(linear(&self.q_proj, x.clone()), self.heads), rope);
        let k = rope::apply(heads(linear(&self.k_proj, x.clone()), self.kv_heads), rope);
        let v = heads(linear(&self.v_proj, x), self.kv_heads);
        (q, k, v)
    }

    /// `o_proj` of the attention output `[B, heads, L, hd]`, heads merged back: `[B, L, D]`.
    fn project_out(&self, out: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, _, l, _] = out.dims();
        linear(
            &self.o_proj,
            out.swap_dims(1, 2)
                .reshape([b, l, self.heads * self.head_dim]),
        )
    }

    /// KV head g serves query heads g·n_rep … g·n_rep + n_rep − 1 (upstream's `repeat_kv`).
    fn repeat_kv(&self, t: Tensor<B, 4>) -> Tensor<B, 4> {
        let rep = self.heads / self.kv_heads;
        if rep == 1 {
            return t;
        }
        let [b, kv, l, hd] = t.dims();
        t.unsqueeze_dim::<5>(2)
            .expand([b, kv, rep, l, hd])
            .reshape([b, kv * rep, l, hd])
    }
}

/// `Qwen2MLP`: SwiGLU without biases.
#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn load(w: &Weights, prefix: &str, cfg: &TextConfig, dev: &B::Device) -> Result<Self, Error> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: w.linear(&format!("{prefix}.gate_proj"), d, i, false, dev)?,
            up_proj: w.linear(&format!("{prefix}.up_proj"), d, i, false, dev)?,
            down_proj: w.linear(&format!("{prefix}.down_proj"), i, d, false, dev)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(linear(&self.gate_proj, x.clone()));
        linear(&self.down_proj, gate * linear(&self.up_proj, x))
    }
}

/// `Qwen2_5_VLDecoderLayer` (pre-norm residual block).
#[derive(Module, Debug)]
pub(crate) struct DecoderLayer<B: Backend> {
    input_layernorm: RmsNorm<B>,
    self_attn: SelfAttention<B>,
    post_attention_layernorm: RmsNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        cfg: &TextConfig,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(w, &format!("{prefix}.input_layernorm"), d, eps, dev)?,
            self_attn: SelfAttention::load(w, &format!("{prefix}.self_attn"), cfg, dev)?,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                d,
                eps,
                dev,
            )?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg, dev)?,
        })
    }

    /// `x` `[B, L, D]`; `mask` as [`SelfAttention::forward`] takes it.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<&Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rope, mask);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }

    /// `x` `[B, n, D]`, the n tokens after those in `cache`, as
    /// [`SelfAttention::forward_cached`].
    pub(crate) fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .self_attn
                .forward_cached(self.input_layernorm.forward(x), rope, cache, layer);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}
