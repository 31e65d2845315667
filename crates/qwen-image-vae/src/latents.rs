//! The pipeline-side latent helpers of `QwenImagePipeline`: 2×2 patch (un)packing and
//! de-normalisation before `vae.decode`.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::Error;
use crate::config::VaeConfig;

/// `QwenImagePipeline._unpack_latents`: packed tokens `[B, N, 4C]` → latents `[B, C, 1, h, w]` for an
/// image of `height × width` pixels.
///
/// As upstream, the pixel size is floored to a multiple of `2 · vae_scale_factor` (16 for
/// Qwen-Image): h = 2·⌊height/16⌋, w = 2·⌊width/16⌋. Token `row·(w/2) + col` holds the 2×2 patch at
/// (row, col); its channel `c·4 + dy·2 + dx` is latent channel `c` at (2·row + dy, 2·col + dx).
pub fn unpack_latents<B: Backend>(
    packed: Tensor<B, 3>,
    height: usize,
    width: usize,
    vae_scale_factor: usize,
) -> Result<Tensor<B, 5>, Error> {
    let [b, n, channels] = packed.dims();
    let cell = 2 * vae_scale_factor.max(1);
    let (h, w) = (2 * (height / cell), 2 * (width / cell));
    if channels % 4 != 0 || channels == 0 || n != (h / 2) * (w / 2) || n == 0 {
        return Err(Error::Shape {
            what: "packed latents",
            found: vec![b, n, channels],
            expected: format!(
                "[B, {}, 4·C] for {height}×{width} pixels (a {h}×{w} latent grid)",
                (h / 2) * (w / 2)
            ),
        });
    }
    let c = channels / 4;
    Ok(packed
        .reshape([b, h / 2, w / 2, c, 2, 2])
        .permute([0, 3, 1, 4, 2, 5])
        .reshape([b, c, 1, h, w]))
}

/// `QwenImagePipeline._pack_latents`, the inverse of [`unpack_latents`]: `[B, C, 1, h, w]` →
/// `[B, (h/2)(w/2), 4C]`, h and w even.
///
/// The pipeline's initial noise is drawn as `[B, 1, C, h, w]`; with one frame that is the same
/// memory as `[B, C, 1, h, w]`, so reshape it before packing.
pub fn pack_latents<B: Backend>(latents: Tensor<B, 5>) -> Result<Tensor<B, 3>, Error> {
    let [b, c, t, h, w] = latents.dims();
    if t != 1 || h % 2 != 0 || w % 2 != 0 || h == 0 || w == 0 {
        return Err(Error::Shape {
            what: "latents to pack",
            found: vec![b, c, t, h, w],
            expected: "[B, C, 1, h, w] with h and w even".into(),
        });
    }
    Ok(latents
        .reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([b, (h / 2) * (w / 2), 4 * c]))
}

/// The pipeline's de-normalisation before `vae.decode`: per channel `latents / (1/std) + mean`.
///
/// Written as upstream does, dividing by the reciprocal (computed in f32) rather than multiplying
/// by `std`, so the f32 result is bit-identical. Both constants are materialised in the latents'
/// dtype first: with bf16 latents (the standard CUDA setup) `1/std` and `mean` are rounded to bf16
/// and the arithmetic runs in bf16, as in diffusers.
pub fn denormalize<B: Backend>(
    latents: Tensor<B, 5>,
    config: &VaeConfig,
) -> Result<Tensor<B, 5>, Error> {
    let dims = latents.dims();
    let z = config.z_dim;
    if dims[1] != z || config.latents_mean.len() != z || config.latents_std.len() != z {
        return Err(Error::Shape {
            what: "latents to de-normalise",
            found: dims.to_vec(),
            expected: format!(
                "[B, {z}, T, h, w] with {z} latents_mean / latents_std values (config has {} / {})",
                config.latents_mean.len(),
                config.latents_std.len()
            ),
        });
    }
    let device = latents.device();
    let dtype = latents.dtype();
    let inv_std: Vec<f32> = config.latents_std.iter().map(|s| 1.0 / s).collect();
    let column = |v: Vec<f32>| {
        Tensor::<B, 5>::from_data(
            TensorData::new(v, [1, z, 1, 1, 1]).convert_dtype(dtype),
            &device,
        )
    };
    let inv_std = column(inv_std);
    let mean = column(config.latents_mean.clone());
    Ok(latents / inv_std + mean)
}
