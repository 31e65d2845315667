//! The joint (text + image) attention of one block: diffusers `Attention` with
//! `QwenDoubleStreamAttnProcessor2_0`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};
use weights::Weights;
use weights::nn::RmsNorm;

use crate::error::DitError;
use crate::layers::EPS;
use crate::rope::{Rope, apply_rope};

/// How the scaled dot-product attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionImpl {
    /// burn's fused `module::attention` op (flash attention on CUDA, tiled on the CPU backend).
    /// The default scale 1/√head_dim is the one the model uses; passing it explicitly would push
    /// CUDA onto the naive path, so it is left unset.
    #[default]
    Fused,
    /// `softmax(Q·Kᵀ/√d + mask) · V` spelled out with tensor ops: a reference for tests and a
    /// fallback for a backend whose fused op misbehaves.
    Explicit,
}

/// Projections and QK norms of the joint attention. `to_out` is upstream's `to_out.0`
/// (`to_out.1` is a weightless dropout).
#[derive(Module, Debug)]
pub struct JointAttention<B: Backend> {
    to_q: Linear<B>,
    to_k: Linear<B>,
    to_v: Linear<B>,
    add_q_proj: Linear<B>,
    add_k_proj: Linear<B>,
    add_v_proj: Linear<B>,
    to_out: Linear<B>,
    to_add_out: Linear<B>,
    norm_q: RmsNorm<B>,
    norm_k: RmsNorm<B>,
    norm_added_q: RmsNorm<B>,
    norm_added_k: RmsNorm<B>,
    heads: usize,
    head_dim: usize,
}

impl<B: Backend> JointAttention<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        heads: usize,
        head_dim: usize,
        dev: &B::Device,
    ) -> Result<Self, DitError> {
        let d = heads * head_dim;
        let lin = |name: &str| w.linear::<B>(&format!("{prefix}.{name}"), d, d, true, dev);
        let norm = |name: &str| RmsNorm::load(w, &format!("{prefix}.{name}"), head_dim, EPS, dev);
        Ok(Self {
            to_q: lin("to_q")?,
            to_k: lin("to_k")?,
            to_v: lin("to_v")?,
            add_q_proj: lin("add_q_proj")?,
            add_k_proj: lin("add_k_proj")?,
            add_v_proj: lin("add_v_proj")?,
            to_out: lin("to_out.0")?,
            to_add_out: lin("to_add_out")?,
            norm_q: norm("norm_q")?,
            norm_k: norm("norm_k")?,
            norm_added_q: norm("norm_added_q")?,
            norm_added_k: norm("norm_added_k")?,
            heads,
            head_dim,
        })
    }

    /// `img` `[B, N, D]` and `txt` `[B, L, D]` (both already modulated) → (image, text) outputs.
    /// `key_mask` `[B, L + N]`, true = key is padding; `None` = attend everywhere.
    pub(crate) fn forward(
        &self,
        img: Tensor<B, 3>,
        txt: Tensor<B, 3>,
        rope: &Rope<B>,
        key_mask: Option<&Tensor<B, 2, Bool>>,
        imp: AttentionImpl,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [b, n, d] = img.dims();
        let l = txt.dims()[1];
        let split = |x: Tensor<B, 3>, s: usize| x.reshape([b, s, self.heads, self.head_dim]);

        // QK-norm per head, then RoPE, both before the streams meet.
        let q_img = apply_rope(
            self.norm_q
                .forward(split(self.to_q.forward(img.clone()), n)),
            rope.img_cos(),
            rope.img_sin(),
        );
        let k_img = apply_rope(
            self.norm_k
                .forward(split(self.to_k.forward(img.clone()), n)),
            rope.img_cos(),
            rope.img_sin(),
        );
        let v_img = split(self.to_v.forward(img), n);
        let q_txt = apply_rope(
            self.norm_added_q
                .forward(split(self.add_q_proj.forward(txt.clone()), l)),
            rope.txt_cos(),
            rope.txt_sin(),
        );
        let k_txt = apply_rope(
            self.norm_added_k
                .forward(split(self.add_k_proj.forward(txt.clone()), l)),
            rope.txt_cos(),
            rope.txt_sin(),
        );
        let v_txt = split(self.add_v_proj.forward(txt), l);

        // Joint sequence is text first, then image (upstream's order; the mask follows it).
        let joint = |t: Tensor<B, 4>, i: Tensor<B, 4>| Tensor::cat(vec![t, i], 1).swap_dims(1, 2);
        let out = scaled_dot_product(
            joint(q_txt, q_img),
            joint(k_txt, k_img),
            joint(v_txt, v_img),
            key_mask,
            imp,
        );
        let out = out.swap_dims(1, 2).reshape([b, l + n, d]);
        let txt_out = self.to_add_out.forward(out.clone().narrow(1, 0, l));
        let img_out = self.to_out.forward(out.narrow(1, l, n));
        (img_out, txt_out)
    }
}

/// Attention over `[B, H, S, d]` with an optional key mask `[B, S]` (true = masked out), applied
/// to every head and query row. Masked keys get exactly zero weight in both implementations.
pub(crate) fn scaled_dot_product<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_mask: Option<&Tensor<B, 2, Bool>>,
    imp: AttentionImpl,
) -> Tensor<B, 4> {
    let [b, h, s, d] = q.dims();
    let s_k = k.dims()[2];
    let mask = key_mask.map(|m| m.clone().reshape([b, 1, 1, s_k]).expand([b, h, s, s_k]));
    match imp {
        AttentionImpl::Fused => attention(q, k, v, mask, None, AttentionModuleOptions::default()),
        AttentionImpl::Explicit => {
            // Upstream's SDPA accumulates the softmax in f32.
            let scores = q
                .matmul(k.swap_dims(2, 3))
                .mul_scalar(1.0 / (d as f64).sqrt());
            let scores = match mask {
                Some(m) => scores.mask_fill(m, f32::NEG_INFINITY),
                None => scores,
            };
            let dt = v.dtype();
            let probs = weights::nn::in_f32(scores, |s| softmax(s, 3));
            probs.cast(dt).matmul(v)
        }
    }
}
