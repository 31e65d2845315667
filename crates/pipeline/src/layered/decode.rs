//! Layered stage 5: every frame but the composite decoded by the RGBA VAE, and the RGB view of a
//! layer that upstream's consistency test compares.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::{RgbImage, RgbaImage};
use qwen_image_vae::QwenImageAutoencoder;

use crate::error::Error;

/// Unpack each of the `frames` frames, drop the first (the composite), de-normalise, decode the
/// rest as one batch and post-process each to 8-bit RGBA.
pub(crate) fn decode_layers<B: Backend>(
    vae: &QwenImageAutoencoder<B>,
    latents: Tensor<B, 3>,
    frames: usize,
    height: usize,
    width: usize,
) -> Result<Vec<RgbaImage>, Error> {
    let [_, n, c] = latents.dims();
    let per_frame = n / frames;
    let layers = latents
        .reshape([frames, per_frame, c])
        .narrow(0, 1, frames - 1);
    let unpacked =
        qwen_image_vae::unpack_latents(layers, height, width, vae.config().scale_factor())?;
    let z = qwen_image_vae::denormalize(unpacked, vae.config())?;
    let sample = vae.decode(z)?;
    Ok(qwen_image_vae::to_rgba_images(sample)?)
}

/// PIL's `convert("RGB")` of an RGBA image: the alpha dropped, not composited.
pub fn drop_alpha(layer: &RgbaImage) -> RgbImage {
    let (w, h) = layer.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b, _] = layer.get_pixel(x, y).0;
        image::Rgb([r, g, b])
    })
}
