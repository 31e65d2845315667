//! Rotate-half (NeoX) rotary position embedding of the Qwen2.5-VL language model.
//!
//! Upstream's `Qwen2_5_VLRotaryEmbedding` is M-RoPE: three position components (t, h, w) fill
//! consecutive chunks (`mrope_section`) of the frequency axis. For text-only input the three
//! components are the same integer, so the chunking picks identical values and it reduces to
//! ordinary 1-D RoPE ([`tables`]); a prompt with images needs the split ([`tables_mrope`]).
//! (The DiT uses a different, interleaved-pair convention: see qwen-image-dit.)

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// `inv_freq[j] = 1 / theta^(2j / head_dim)` for `j < head_dim / 2`, as f32.
///
/// torch evaluates `theta ** (arange(0, d, 2) / d)` in f32 (exponent rounded to f32 first); we
/// compute the power in f64 on the same f32 exponent and round once, which matches torch
/// bit-for-bit for head_dim 16/64/80 and in 63 of 64 entries for head_dim 128 (one entry 1 ulp
/// off: torch's vectorised pow is not correctly rounded).
pub(crate) fn inv_freq(theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|j| {
            let exponent = (2 * j) as f32 / head_dim as f32;
            1.0f32 / (theta.powf(f64::from(exponent)) as f32)
        })
        .collect()
}

/// Per-token cos/sin tables `[B, 1, L, head_dim]` (broadcast over heads).
pub(crate) struct RopeTables<B: Backend> {
    pub cos: Tensor<B, 4>,
    pub sin: Tensor<B, 4>,
}

/// Tables for integer positions `[B, L]`. Angles are `position · inv_freq` in f32, as upstream
/// (it multiplies float32 positions by the float32 inverse frequencies).
///
/// The tables stay f32 whatever the model dtype (positions up to 1058 are not exact in bf16);
/// [`apply`] casts them to the activation dtype, as upstream does before rotating.
pub(crate) fn tables<B: Backend>(
    positions: Tensor<B, 2, Int>,
    inv_freq: &[f32],
    device: &B::Device,
) -> RopeTables<B> {
    let [b, l] = positions.dims();
    let half = inv_freq.len();
    let f32_on_device = burn::tensor::TensorCreationOptions::new(device.clone())
        .with_dtype(burn::tensor::DType::F32);
    let freqs: Tensor<B, 3> = Tensor::from_data(
        TensorData::new(inv_freq.to_vec(), [1, 1, half]),
        f32_on_device,
    );
    let positions: Tensor<B, 2> = positions.cast(burn::tensor::FloatDType::F32);
    let angles = positions.reshape([b, l, 1]) * freqs;
    // cos/sin of [angles, angles]: the two halves rotate together (rotate-half layout).
    let angles = Tensor::cat(vec![angles.clone(), angles], 2).unsqueeze_dim::<4>(1);
    RopeTables {
        cos: angles.clone().cos(),
        sin: angles.sin(),
    }
}

/// Tables for M-RoPE positions `[3, B, L]` (temporal, height, width): frequency `j` of chunk
/// `c` of `section` (which must sum to `inv_freq.len()`) turns with component `c`'s position.
///
/// Same arithmetic as upstream — each component's angles `position · inv_freq` in f32, then the
/// chunks picked — so a row whose three components agree equals [`tables`]' row bit for bit.
pub(crate) fn tables_mrope<B: Backend>(
    positions: Tensor<B, 3, Int>,
    inv_freq: &[f32],
    section: [usize; 3],
    device: &B::Device,
) -> RopeTables<B> {
    let [_, b, l] = positions.dims();
    let half = inv_freq.len();
    debug_assert_eq!(section.iter().sum::<usize>(), half, "checked by the caller");
    let f32_on_device = burn::tensor::TensorCreationOptions::new(device.clone())
        .with_dtype(burn::tensor::DType::F32);
    let freqs: Tensor<B, 4> = Tensor::from_data(
        TensorData::new(inv_freq.to_vec(), [1, 1, 1, half]),
        f32_on_device,
    );
    let positions: Tensor<B, 3> = positions.cast(burn::tensor::FloatDType::F32);
    let angles = positions.reshape([3, b, l, 1]) * freqs;
    let mut start = 0;
    let chunks = section
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(c, &n)| {
            let chunk = angles.clone().narrow(0, c, 1).narrow(3, start, n);
            start += n;
            chunk
        })
        .collect();
    let angles = Tensor::cat(chunks, 3).reshape([b, l, half]);
    let angles = Tensor::cat(vec![angles.clone(), angles], 2).unsqueeze_dim::<4>(1);
    RopeTables {
        cos: angles.clone().cos(),
        sin: angles.sin(),
    }
}

/// `x · cos + rotate_half(x) · sin` for `x` `[B, H, L, head_dim]`, where
/// `rotate_half([x1, x2]) = [-x2, x1]` over the two halves of the last axis.
pub(crate) fn apply<B: Backend>(x: Tensor<B, 4>, t: &RopeTables<B>) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let dtype = x.dtype();
    x * t.cos.clone().cast(dtype) + rotated * t.sin.clone().cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_frequencies_start_at_one_and_fall_geometrically() {
        let f = inv_freq(1e6, 16);
        assert_eq!(f.len(), 8);
        assert_eq!(f[0], 1.0);
        assert!(f.windows(2).all(|w| w[1] < w[0]));
        // theta^(2·7/16) = 1e6^0.875
        assert!((f[7] - 1e6f64.powf(-0.875) as f32).abs() < 1e-12);
    }
}
