//! One dual-stream block (diffusers `QwenImageTransformerBlock`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use weights::Weights;

use crate::attention::{AttentionImpl, JointAttention};
use crate::error::DitError;
use crate::layers::{FeedForward, chunks, layer_norm};
use crate::rope::Rope;
use weights::nn::linear;

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

    /// `img` `[B, N, D]`, `txt` `[B, L, D]` → (img, txt).
    ///
    /// `temb_silu` = SiLU(temb) is `[B, D]`, or for `zero_cond_t` `[2B, D]` (the embeddings of t
    /// stacked over those of t = 0) with `cond_from` = the first condition-image token: image
    /// tokens before it use the t half, tokens from it on the t = 0 half, text the t half.
    // The arguments mirror upstream's block call one to one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        img: Tensor<B, 3>,
        txt: Tensor<B, 3>,
        temb_silu: Tensor<B, 2>,
        cond_from: Option<usize>,
        rope: &Rope<B>,
        key_mask: Option<&Tensor<B, 2, Bool>>,
        imp: AttentionImpl,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let n = img.dims()[1];
        let img_params = linear(&self.img_mod, temb_silu.clone());
        let (img_mod, txt_temb) = match cond_from {
            Some(split) => {
                let b = temb_silu.dims()[0] / 2;
                let first = chunks::<B, 6>(img_params.clone().narrow(0, 0, b));
                // No condition tokens (a single image): every token takes the t half.
                let rest = (split < n).then(|| (split, chunks::<B, 6>(img_params.narrow(0, b, b))));
                (Modulation { first, rest }, temb_silu.narrow(0, 0, b))
            }
            None => (
                Modulation {
                    first: chunks::<B, 6>(img_params),
                    rest: None,
                },
                temb_silu,
            ),
        };
        // Modulation layout: [shift1 | scale1 | gate1 | shift2 | scale2 | gate2].
        let [t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2] =
            chunks::<B, 6>(linear(&self.txt_mod, txt_temb));

        let (img_attn, txt_attn) = self.attn.forward(
            img_mod.modulate(img.clone(), 0),
            modulate(txt.clone(), t_shift1, t_scale1),
            rope,
            key_mask,
            imp,
        );
        let img = img_mod.gated_residual(img, img_attn, 0);
        let txt = txt + t_gate1 * txt_attn;

        let img_mlp = self.img_mlp.forward(img_mod.modulate(img.clone(), 1));
        let img = img_mod.gated_residual(img, img_mlp, 1);
        let txt = txt.clone() + t_gate2 * self.txt_mlp.forward(modulate(txt, t_shift2, t_scale2));
        // Upstream clamps to ±65504 here for fp16 only; bf16 and f32 need nothing.
        (img, txt)
    }
}

/// The image stream's six modulation tensors `[B, 1, D]`, and for `zero_cond_t` a second set
/// for the tokens from `rest.0` on (upstream selects per token with `torch.where` on
/// `modulate_index`; splitting the sequence gives the same values without `[B, N, D]` copies of
/// each parameter).
struct Modulation<B: Backend> {
    first: [Tensor<B, 3>; 6],
    rest: Option<(usize, [Tensor<B, 3>; 6])>,
}

impl<B: Backend> Modulation<B> {
    /// Apply `f` to the tokens of each parameter set (the same token range of every tensor in
    /// `xs`) and put the sequence back together.
    fn per_part<const K: usize>(
        &self,
        xs: [Tensor<B, 3>; K],
        f: impl Fn([Tensor<B, 3>; K], &[Tensor<B, 3>; 6]) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        match &self.rest {
            None => f(xs, &self.first),
            Some((split, rest)) => {
                let n = xs[0].dims()[1];
                let head = f(xs.clone().map(|t| t.narrow(1, 0, *split)), &self.first);
                let tail = f(xs.map(|t| t.narrow(1, *split, n - split)), rest);
                Tensor::cat(vec![head, tail], 1)
            }
        }
    }

    /// `LayerNorm(x) · (1 + scale) + shift` with stage 0's or stage 1's parameters.
    fn modulate(&self, x: Tensor<B, 3>, stage: usize) -> Tensor<B, 3> {
        self.per_part([x], |[x], p| {
            modulate(x, p[3 * stage].clone(), p[3 * stage + 1].clone())
        })
    }

    /// `x + gate · y` with stage 0's or stage 1's gate.
    fn gated_residual(&self, x: Tensor<B, 3>, y: Tensor<B, 3>, stage: usize) -> Tensor<B, 3> {
        self.per_part([x, y], |[x, y], p| x + p[3 * stage + 2].clone() * y)
    }
}
