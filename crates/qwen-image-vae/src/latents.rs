//! The pipeline-side latent helpers: 2×2 patch (un)packing, de-normalisation before `vae.decode`
//! (`QwenImagePipeline`) and normalisation after `vae.encode` (the Edit and Layered pipelines).

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
    check_channels(&latents, config, "latents to de-normalise")?;
    let inv_std: Vec<f32> = config.latents_std.iter().map(|s| 1.0 / s).collect();
    let inv_std = channel_column(&latents, inv_std);
    let mean = channel_column(&latents, config.latents_mean.clone());
    Ok(latents / inv_std + mean)
}

/// The Edit and Layered pipelines' normalisation of the encoded image (`_encode_vae_image`):
/// per channel `(latents - mean) / std`.
///
/// Upstream divides by `std` here (unlike [`denormalize`], which divides by `1/std`), so this
/// does too and the f32 result is bit-identical. As upstream, both constants are first rounded to
/// the latents' dtype and the arithmetic runs in it. (The img2img / inpaint pipelines multiply by
/// `1/std` instead; they are not ported.)
pub fn normalize<B: Backend>(
    latents: Tensor<B, 5>,
    config: &VaeConfig,
) -> Result<Tensor<B, 5>, Error> {
    check_channels(&latents, config, "latents to normalise")?;
    let mean = channel_column(&latents, config.latents_mean.clone());
    let std = channel_column(&latents, config.latents_std.clone());
    Ok((latents - mean) / std)
}

/// `[B, z_dim, T, h, w]` with z_dim values of mean and std in the config.
fn check_channels<B: Backend>(
    latents: &Tensor<B, 5>,
    config: &VaeConfig,
    what: &'static str,
) -> Result<(), Error> {
    let dims = latents.dims();
    let z = config.z_dim;
    if dims[1] != z || config.latents_mean.len() != z || config.latents_std.len() != z {
        return Err(Error::Shape {
            what,
            found: dims.to_vec(),
            expected: format!(
                "[B, {z}, T, h, w] with {z} latents_mean / latents_std values (config has {} / {})",
                config.latents_mean.len(),
                config.latents_std.len()
            ),
        });
    }
    Ok(())
}

/// Per-channel constants as a `[1, C, 1, 1, 1]` tensor in `like`'s dtype and on its device.
///
/// The f32 values are rounded once to that dtype (as upstream's `torch.tensor(...).to(dtype)`).
/// The dtype is passed explicitly: `from_data` alone would use the device's default float type,
/// which is not `like`'s when a bf16 tensor runs on an f32 backend (the CPU bf16 tests).
fn channel_column<B: Backend>(like: &Tensor<B, 5>, values: Vec<f32>) -> Tensor<B, 5> {
    let c = values.len();
    let dtype = like.dtype();
    Tensor::from_data(
        TensorData::new(values, [1, c, 1, 1, 1]).convert_dtype(dtype),
        (&like.device(), dtype),
    )
}
