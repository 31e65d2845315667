//! Layered stage 1: the input image at its resolution bucket — the picture the captioner sees and
//! its VAE latents, one packed frame.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbaImage;
use image_io::LayeredResolution;
use qwen_image_vae::QwenImageAutoencoder;

use crate::error::Error;
use crate::input::InputImage;
use crate::stages::Components;

/// The input made ready for a Layered run
/// ([`QwenImageLayeredPipeline::prepare_input`](crate::QwenImageLayeredPipeline::prepare_input)).
#[derive(Debug, Clone)]
pub struct LayeredInput<B: Backend> {
    /// The bucket-resized RGBA input: what the captioner sees (`prompt_image`).
    pub prompt_image: RgbaImage,
    /// Its normalised VAE latents, packed as one frame: `[1, tokens, 4·z]`.
    pub image_latents: Tensor<B, 3>,
    /// The output size (the bucket size).
    pub height: usize,
    pub width: usize,
}

/// The size diffusers generates for an input of `(width, height)` pixels in `resolution`'s
/// bucket, as `(height, width)`: `calculate_dimensions(res², w / h)` (multiples of 32).
pub(crate) fn output_size(input: (u32, u32), resolution: LayeredResolution) -> (usize, usize) {
    let side = resolution.pixels();
    let (w, h) = image_io::calculate_dimensions(side * side, input.0 as f64 / input.1 as f64);
    (h as usize, w as usize)
}

/// diffusers' steps 2 and the VAE half of `prepare_latents`: the input (taken as RGBA, PIL's
/// `convert("RGBA")`) resized to the bucket size with Lanczos — the prompt image — then
/// preprocessed to [−1, 1], encoded (posterior mean), normalised and packed as one frame.
pub(crate) fn prepare_input<B: Backend>(
    c: &Components<B>,
    vae: &QwenImageAutoencoder<B>,
    input: &InputImage,
    resolution: LayeredResolution,
) -> Result<LayeredInput<B>, Error> {
    let fail = |reason: String| Error::InputImage {
        image: input.source().to_string(),
        reason,
    };
    let rgba = input.rgba()?;
    let prepared =
        image_io::qwen_layered_image(&rgba, resolution).map_err(|e| fail(e.to_string()))?;
    let prompt_image = prepared.condition.to_rgba_image().ok_or_else(|| {
        fail(format!(
            "{} image after resizing",
            prepared.condition.mode()
        ))
    })?;
    let (w, h) = prepared.vae_size;
    let (height, width) = (h as usize, w as usize);
    let frame = c.frame_shape(height, width);
    let [b, ch, ph, pw] = prepared.vae.shape;
    let image = Tensor::<B, 5>::from_data(
        TensorData::new(prepared.vae.data, [b, ch, 1, ph, pw]),
        &c.device,
    );
    let latents = qwen_image_vae::normalize(vae.encode(image)?, vae.config())?;
    let image_latents = qwen_image_vae::pack_latents(latents)?;
    let n = image_latents.dims()[1];
    if n != frame.num_tokens() {
        return Err(fail(format!(
            "a {w}×{h} input gave {n} latent tokens, {} expected",
            frame.num_tokens()
        )));
    }
    Ok(LayeredInput {
        prompt_image,
        image_latents,
        height,
        width,
    })
}
