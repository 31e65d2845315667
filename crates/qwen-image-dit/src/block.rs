//! One dual-stream block (diffusers `QwenImageTransformerBlock`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use weights::Weights;

use crate::DitError;
use crate::attention::{AttentionImpl, JointAttention};
use crate::layers::{FeedForward, chunks, layer_norm};
use crate::rope::Rope;

/// Image and text streams, each with its own modulation, attention projections and MLP, meeting
/// only inside the joint attention. `img_mod`/`txt_mod` are upstream's `*_mod.1` (index 0 of that
/// `Sequential` is the SiLU, applied once per forward by the caller).
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    img_mod: Linear<B>,
    txt_mod: Linear<B>,
    attn: JointAttention<B>,
    img_mlp: FeedForward<B>,
    txt_mlp: FeedForward<B>,
}

/// `LayerNorm(x) · (1 + scale) + shift` (the norms have no affine parameters).
fn modulate<B: Backend>(x: Tensor<B, 3>, shift: Tensor<B, 3>, scale: Tensor<B, 3>) -> Tensor<B, 3> {
    layer_norm(x) * scale.add_scalar(1.0) + shift
}

impl<B: Backend> TransformerBlock<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        heads: usize,
        head_dim: usize,
        dev: &B::Device,
    ) -> Result<Self, DitError> {
        let d = heads * head_dim;
        Ok(Self {
            img_mod: w.linear(&format!("{prefix}.img_mod.1"), d, 6 * d, true, dev)?,
            txt_mod: w.linear(&format!("{prefix}.txt_mod.1"), d, 6 * d, true, dev)?,
            attn: JointAttention::load(w, &format!("{prefix}.attn"), heads, head_dim, dev)?,
            img_mlp: FeedForward::load(w, &format!("{prefix}.img_mlp"), d, dev)?,
            txt_mlp: FeedForward::load(w, &format!("{prefix}.txt_mlp"), d, dev)?,
        })
    }

    /// `img` `[B, N, D]`, `txt` `[B, L, D]`, `temb_silu` = SiLU(temb) `[B, D]` → (img, txt).
    pub(crate) fn forward(
        &self,
        img: Tensor<B, 3>,
        txt: Tensor<B, 3>,
        temb_silu: Tensor<B, 2>,
        rope: &Rope<B>,
        key_mask: Option<&Tensor<B, 2, Bool>>,
        imp: AttentionImpl,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        // Modulation layout: [shift1 | scale1 | gate1 | shift2 | scale2 | gate2].
        let [i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2] =
            chunks::<B, 6>(self.img_mod.forward(temb_silu.clone()));
        let [t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2] =
            chunks::<B, 6>(self.txt_mod.forward(temb_silu));

        let (img_attn, txt_attn) = self.attn.forward(
            modulate(img.clone(), i_shift1, i_scale1),
            modulate(txt.clone(), t_shift1, t_scale1),
            rope,
            key_mask,
            imp,
        );
        let img = img + i_gate1 * img_attn;
        let txt = txt + t_gate1 * txt_attn;

        let img = img.clone() + i_gate2 * self.img_mlp.forward(modulate(img, i_shift2, i_scale2));
        let txt = txt.clone() + t_gate2 * self.txt_mlp.forward(modulate(txt, t_shift2, t_scale2));
        // Upstream clamps to ±65504 here for fp16 only; bf16 and f32 need nothing.
        (img, txt)
    }
}
