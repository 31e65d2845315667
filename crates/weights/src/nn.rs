//! Building blocks the model crates share (DiT, text encoder and vision tower, VAE).
//!
//! Model crates must not depend on each other, so what more than one of them needs lives here,
//! next to [`Weights`] that loads it. Both blocks exist because of how the reference runs a bf16
//! or f16 model: most layers compute in the model dtype, but norms, RoPE, softmax and a few
//! more are *f32 islands* — upcast, compute, cast back — and matching the reference's numbers
//! needs the same islands in the same places.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};

use crate::{Error, Weights};

/// Run `f` on `x` in f32 and cast the result back to `x`'s dtype: the reference's f32 island for
/// half-precision activations (`x.float()` … `.to(input_dtype)`). For f32 (and f64) input `f`
/// runs on `x` unchanged, so an f32 model takes no casts at all.
pub fn in_f32<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    f: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match x.dtype() {
        DType::F32 | DType::F64 => f(x),
        dt => f(x.cast(FloatDType::F32)).cast(dt),
    }
}

/// `lin.forward(x)`, except that a single row (every leading axis of size 1: a batch-1
/// timestep or modulation vector, one decoded token) runs as two identical rows of which the
/// first is kept.
///
/// burn-cubecl-fusion 0.21 computes a fused `[1, K] × Wᵀ` matmul followed by an elementwise op
/// (a bias add) wrongly when autotune picks its `gemv_unit_perpendicular` kernel — the only one
/// that runs on Mesa's lavapipe (relative error ≈ 1; docs/gpu.md). Two rows take the general
/// kernels, and the extra row costs nothing next to reading the weight. Every other shape goes
/// straight to `lin.forward`.
pub fn linear<B: Backend, const D: usize>(lin: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    if dims[..D - 1].iter().any(|&d| d != 1) {
        return lin.forward(x);
    }
    lin.forward(Tensor::cat(vec![x.clone(), x], 0))
        .narrow(0, 0, 1)
}

/// RMSNorm with a learned scale over the last axis, as diffusers' `RMSNorm` and transformers'
/// `Qwen2RMSNorm` / `Qwen2_5_VLRMSNorm` compute it: `x · rsqrt(mean(x²) + eps)` in f32, cast back
/// to the input dtype, and only then `· weight` (in the model dtype, as upstream multiplies).
///
/// Not the VAE's `QwenImageRMS_norm`, which L2-normalises over channels and scales by `√C`.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    weight: Param<Tensor<B, 1>>,
    #[module(skip)]
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Load `{prefix}.weight` of shape `[dim]`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        dim: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self, Error> {
        Ok(Self {
            weight: Param::from_tensor(weights.get(&format!("{prefix}.weight"), [dim], device)?),
            eps,
        })
    }

    /// Normalise over the last axis of `x` (any rank).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let eps = self.eps;
        let normed = in_f32(x, |x| {
            let inv_rms = x
                .clone()
                .square()
                .mean_dim(D - 1)
                .add_scalar(eps)
                .sqrt()
                .recip();
            x * inv_rms
        });
        normed * self.weight.val().unsqueeze::<D>()
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{TensorData, Tolerance};

    use super::*;

    type B = Flex;

    fn norm(weight: [f32; 4], eps: f64) -> RmsNorm<B> {
        let weight = Tensor::<B, 1>::from_floats(weight, &Default::default());
        RmsNorm {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    #[test]
    fn rms_norm_matches_the_formula_per_row() {
        // Row 0: mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5; row 1: all 2s, mean(x²) = 4.
        let x = Tensor::<B, 2>::from_floats(
            [[1.0, -2.0, 3.0, -4.0], [2.0, 2.0, 2.0, 2.0]],
            &Default::default(),
        );
        let y = norm([1.0, 0.5, 2.0, -1.0], 0.5).forward(x);
        let r0 = (7.5f32 + 0.5).sqrt();
        let r1 = (4.0f32 + 0.5).sqrt();
        let expected = TensorData::from([
            [1.0 / r0, -1.0 / r0, 6.0 / r0, 4.0 / r0],
            [2.0 / r1, 1.0 / r1, 4.0 / r1, -2.0 / r1],
        ]);
        y.into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }

    #[test]
    fn rms_norm_keeps_rank_and_normalises_the_last_axis_only() {
        let x = Tensor::<B, 3>::from_floats(
            [[[3.0, 0.0, 0.0, 4.0]], [[0.0, 0.0, 0.0, 0.0]]],
            &Default::default(),
        );
        let y = norm([1.0; 4], 0.0).forward(x.clone());
        assert_eq!(y.dims(), [2, 1, 4]);
        // rms of row 0 = sqrt(25 / 4) = 2.5; with eps 0 an all-zero row divides 0 by 0.
        let data = y.into_data().to_vec::<f32>().unwrap();
        assert_eq!(&data[..4], &[1.2, 0.0, 0.0, 1.6]);
        assert!(data[4..].iter().all(|v| v.is_nan()));
    }

    #[test]
    fn in_f32_runs_half_precision_in_f32_and_casts_back() {
        let x = Tensor::<B, 1>::from_floats([1.0, 3.0], &Default::default()).cast(DType::BF16);
        let mut seen = None;
        let y = in_f32(x, |x| {
            seen = Some(x.dtype());
            x.mul_scalar(2.0)
        });
        assert_eq!(seen, Some(DType::F32));
        assert_eq!(y.dtype(), DType::BF16);
        let x = Tensor::<B, 1>::from_floats([1.0, 3.0], &Default::default());
        let y = in_f32(x, |x| {
            seen = Some(x.dtype());
            x
        });
        assert_eq!((seen, y.dtype()), (Some(DType::F32), DType::F32));
    }

    #[test]
    fn linear_gives_lin_forward_for_one_row_and_for_many() {
        let dev = Default::default();
        let lin = burn::nn::LinearConfig::new(3, 2).init::<B>(&dev);
        let one = Tensor::<B, 3>::from_floats([[[0.5, -1.0, 2.0]]], &dev);
        linear(&lin, one.clone())
            .into_data()
            .assert_approx_eq::<f32>(&lin.forward(one).into_data(), Tolerance::default());
        let many = Tensor::<B, 2>::from_floats([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]], &dev);
        linear(&lin, many.clone())
            .into_data()
            .assert_approx_eq::<f32>(&lin.forward(many).into_data(), Tolerance::default());
    }
}
