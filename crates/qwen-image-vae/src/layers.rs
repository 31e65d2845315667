//! The encoder's and decoder's building blocks, each reduced to what one frame needs. Field names mirror the
//! PyTorch modules so that every weight key maps 1:1.

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, TensorData, activation};
use weights::Weights;
use weights::nn::in_f32;

use crate::Error;

/// A `Conv2d` from a PyTorch 2-D weight `[out, in, k, k]` (+ bias), zero padding `k / 2`.
fn conv2d<B: Backend>(weight: Tensor<B, 4>, bias: Tensor<B, 1>, k: usize) -> Conv2d<B> {
    let p = k / 2;
    Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        stride: [1, 1],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(p, p, p, p),
    }
}

/// `nn.Conv2d(c_in, c_out, k, padding=k // 2)` loaded from `prefix.{weight,bias}`.
pub(crate) fn load_conv2d<B: Backend>(
    w: &Weights,
    prefix: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    dev: &B::Device,
) -> Result<Conv2d<B>, Error> {
    let weight = w.get::<B, 4>(&format!("{prefix}.weight"), [c_out, c_in, k, k], dev)?;
    let bias = w.get::<B, 1>(&format!("{prefix}.bias"), [c_out], dev)?;
    Ok(conv2d(weight, bias, k))
}

/// `QwenImageCausalConv3d` (kernel k×k×k, padding k/2) applied to the first and only frame.
///
/// Upstream pads time causally (2·p zero frames before, none after) and the decoder's feature cache
/// is empty on the first frame, so the frame meets only the last temporal tap: the 3-D conv is
/// exactly a 2-D conv with `weight[:, :, k - 1]` (index 2 for k = 3, index 0 for k = 1).
pub(crate) fn load_causal_conv<B: Backend>(
    w: &Weights,
    prefix: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    dev: &B::Device,
) -> Result<Conv2d<B>, Error> {
    let name = format!("{prefix}.weight");
    let expected = [c_out, c_in, k, k, k];
    if w.shape(&name) != Some(expected.as_slice()) {
        // Let the checkpoint reader build the error: it names the tensor, its file and both shapes.
        w.get::<B, 5>(&name, expected, dev)?;
    }
    // Slice on the host so that only k×k of the k×k×k taps are ever allocated as a tensor (the
    // full 5-D kernels would triple the decoder's weight memory).
    let (values, _) = w.get_f32(&name)?;
    let plane = k * k;
    let last_tap: Vec<f32> = values
        .chunks_exact(k * plane)
        .flat_map(|taps| taps[(k - 1) * plane..].iter().copied())
        .collect();
    let weight = Tensor::from_data(TensorData::new(last_tap, [c_out, c_in, k, k]), dev);
    let bias = w.get::<B, 1>(&format!("{prefix}.bias"), [c_out], dev)?;
    Ok(conv2d(weight, bias, k))
}

/// `QwenImageRMS_norm` over channels: `x / max(‖x‖₂, 1e-12) · √C · gamma` (F.normalize, then
/// scale). The epsilon clamps the L2 norm, not the mean square.
#[derive(Module, Debug)]
pub(crate) struct RmsNorm<B: Backend> {
    /// `gamma` flattened to `[C]` (stored `[C,1,1,1]` in residual blocks, `[C,1,1]` in attention).
    gamma: Param<Tensor<B, 1>>,
    scale: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// `images = false` (residual blocks, `norm_out`): gamma `[C,1,1,1]`; `true`: `[C,1,1]`.
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c: usize,
        images: bool,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        let name = format!("{prefix}.gamma");
        let gamma = if images {
            w.get::<B, 3>(&name, [c, 1, 1], dev)?.reshape([c])
        } else {
            w.get::<B, 4>(&name, [c, 1, 1, 1], dev)?.reshape([c])
        };
        Ok(Self {
            gamma: Param::from_tensor(gamma),
            scale: (c as f64).sqrt(),
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = self.gamma.dims()[0];
        // Since diffusers v0.38 (PR #13316) the normalisation runs in f32 for half-precision inputs
        // and is cast back before `· √C · gamma`; before that it ran in the input dtype.
        let normalized = in_f32(x, |x| {
            let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
            x / norm
        });
        normalized.mul_scalar(self.scale) * self.gamma.val().reshape([1, c, 1, 1])
    }
}

/// `QwenImageResidualBlock`: RMS → SiLU → conv3×3 → RMS → SiLU → conv3×3, plus a 1×1 shortcut when
/// the width changes. (Dropout is 0 and inference-only anyway.)
#[derive(Module, Debug)]
pub(crate) struct ResidualBlock<B: Backend> {
    norm1: RmsNorm<B>,
    conv1: Conv2d<B>,
    norm2: RmsNorm<B>,
    conv2: Conv2d<B>,
    conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResidualBlock<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            norm1: RmsNorm::load(w, &format!("{prefix}.norm1"), c_in, false, dev)?,
            conv1: load_causal_conv(w, &format!("{prefix}.conv1"), c_in, c_out, 3, dev)?,
            norm2: RmsNorm::load(w, &format!("{prefix}.norm2"), c_out, false, dev)?,
            conv2: load_causal_conv(w, &format!("{prefix}.conv2"), c_out, c_out, 3, dev)?,
            conv_shortcut: (c_in != c_out)
                .then(|| {
                    load_causal_conv(w, &format!("{prefix}.conv_shortcut"), c_in, c_out, 1, dev)
                })
                .transpose()?,
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        let h = self.conv1.forward(activation::silu(self.norm1.forward(x)));
        let h = self.conv2.forward(activation::silu(self.norm2.forward(h)));
        h + shortcut
    }
}

/// `QwenImageAttentionBlock`: single-head self-attention over the H·W positions of each frame.
#[derive(Module, Debug)]
pub(crate) struct AttentionBlock<B: Backend> {
    norm: RmsNorm<B>,
    to_qkv: Conv2d<B>,
    proj: Conv2d<B>,
}

impl<B: Backend> AttentionBlock<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c: usize,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            norm: RmsNorm::load(w, &format!("{prefix}.norm"), c, true, dev)?,
            to_qkv: load_conv2d(w, &format!("{prefix}.to_qkv"), c, 3 * c, 1, dev)?,
            proj: load_conv2d(w, &format!("{prefix}.proj"), c, c, 1, dev)?,
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let identity = x.clone();
        // to_qkv channels are [q | k | v], each C wide; tokens are the row-major positions.
        let qkv = self
            .to_qkv
            .forward(self.norm.forward(x))
            .reshape([n, 3 * c, h * w])
            .swap_dims(1, 2);
        let head = |i: usize| qkv.clone().narrow(2, i * c, c).unsqueeze_dim::<4>(1);
        let (q, k, v) = (head(0), head(1), head(2));
        drop(qkv);
        // Default scale 1/√C as SDPA's; on the CPU backend long sequences take the flash path, so
        // the H·W × H·W score matrix (1 GiB at 1024²) is never materialised.
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let out = out
            .squeeze_dim::<3>(1)
            .swap_dims(1, 2)
            .reshape([n, c, h, w]);
        self.proj.forward(out) + identity
    }
}

/// `QwenImageResample` in `upsample2d`/`upsample3d` mode: nearest ×2, then a 3×3 conv C → C/2.
///
/// For a single frame `upsample3d` is the same: its `time_conv` is skipped on the first frame
/// (cache marker "Rep" upstream), so its weights are never loaded.
#[derive(Module, Debug)]
pub(crate) struct Upsample<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Upsample<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c: usize,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            conv: load_conv2d(w, &format!("{prefix}.resample.1"), c, c / 2, 3, dev)?,
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv.forward(upsample_nearest_2x(x))
    }
}

/// Nearest-neighbour ×2 by pixel duplication. Upstream uses "nearest-exact" in f32 and casts back;
/// for an integer factor both pick source pixel ⌊i/2⌋, so duplication is exact in any dtype.
pub(crate) fn upsample_nearest_2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// `QwenImageMidBlock` (encoder and decoder alike): residual → attention → residual.
#[derive(Module, Debug)]
pub(crate) struct MidBlock<B: Backend> {
    resnet0: ResidualBlock<B>,
    attention: AttentionBlock<B>,
    resnet1: ResidualBlock<B>,
}

impl<B: Backend> MidBlock<B> {
    /// `prefix.resnets.{0,1}` and `prefix.attentions.0`, all `c` wide.
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c: usize,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            resnet0: ResidualBlock::load(w, &format!("{prefix}.resnets.0"), c, c, dev)?,
            attention: AttentionBlock::load(w, &format!("{prefix}.attentions.0"), c, dev)?,
            resnet1: ResidualBlock::load(w, &format!("{prefix}.resnets.1"), c, c, dev)?,
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.resnet1
            .forward(self.attention.forward(self.resnet0.forward(x)))
    }
}

/// `QwenImageResample` in `downsample2d`/`downsample3d` mode: zero-pad one column on the right and
/// one row at the bottom (`ZeroPad2d((0, 1, 0, 1))`), then a 3×3 conv C → C with stride 2, so an
/// even side halves exactly.
///
/// For a single frame `downsample3d` is the same: on the first chunk its feature cache is empty,
/// so upstream only stores the frame and skips `time_conv`; its weights are never loaded.
#[derive(Module, Debug)]
pub(crate) struct Downsample<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Downsample<B> {
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        c: usize,
        dev: &B::Device,
    ) -> Result<Self, Error> {
        let weight = w.get::<B, 4>(&format!("{prefix}.resample.1.weight"), [c, c, 3, 3], dev)?;
        let bias = w.get::<B, 1>(&format!("{prefix}.resample.1.bias"), [c], dev)?;
        Ok(Self {
            conv: Conv2d {
                weight: Param::from_tensor(weight),
                bias: Some(Param::from_tensor(bias)),
                stride: [2, 2],
                kernel_size: [3, 3],
                dilation: [1, 1],
                groups: 1,
                // Padded in `forward`: burn 0.21's asymmetric conv padding builds its zero
                // frame in the default float dtype and panics on bf16 tensors (Flex).
                padding: PaddingConfig2d::Valid,
            },
        })
    }

    pub(crate) fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // One zero column on the right, then one zero row at the bottom, in x's own dtype.
        let column = x.clone().narrow(3, 0, 1).zeros_like();
        let x = Tensor::cat(vec![x, column], 3);
        let row = x.clone().narrow(2, 0, 1).zeros_like();
        self.conv.forward(Tensor::cat(vec![x, row], 2))
    }
}
