//! Decoded samples to 8-bit images as `VaeImageProcessor.postprocess(.., output_type="pil")` does.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::{RgbImage, RgbaImage};

use crate::Error;

/// `VaeImageProcessor.postprocess(image, output_type="pil")` for decoded samples
/// `[B, 3, 1, H, W]` (frame 0 is taken, as the pipeline's `[:, :, 0]`): one RGB image per batch item.
///
/// Pixel = round_half_even(clamp(x·0.5 + 0.5, 0, 1) · 255). The affine map and clamp run on the
/// tensor in its own dtype (bf16 in the standard CUDA setup, as diffusers does before `.float()`,
/// which is a source of ±1 LSB versus f32); the ×255 and rounding run in f32 like numpy's.
pub fn to_rgb_images<B: Backend>(sample: Tensor<B, 5>) -> Result<Vec<RgbImage>, Error> {
    let (width, height, images) = to_u8_images(sample, 3)?;
    Ok(images
        .into_iter()
        // Each buffer has exactly width·height·3 bytes, so this never falls back.
        .map(|bytes| {
            RgbImage::from_raw(width, height, bytes).unwrap_or_else(|| RgbImage::new(width, height))
        })
        .collect())
}

/// [`to_rgb_images`] for the 4-channel (RGBA) VAE of Qwen-Image-Layered: `[B, 4, 1, H, W]` → one
/// RGBA image per batch item, what `numpy_to_pil` makes of a 4-channel array (`mode "RGBA"`).
pub fn to_rgba_images<B: Backend>(sample: Tensor<B, 5>) -> Result<Vec<RgbaImage>, Error> {
    let (width, height, images) = to_u8_images(sample, 4)?;
    Ok(images
        .into_iter()
        // Each buffer has exactly width·height·4 bytes, so this never falls back.
        .map(|bytes| {
            RgbaImage::from_raw(width, height, bytes)
                .unwrap_or_else(|| RgbaImage::new(width, height))
        })
        .collect())
}

/// Frame 0 of each batch item as interleaved 8-bit pixels of `channels` channels, with the size.
fn to_u8_images<B: Backend>(
    sample: Tensor<B, 5>,
    channels: usize,
) -> Result<(u32, u32, Vec<Vec<u8>>), Error> {
    let [b, c, t, h, w] = sample.dims();
    if c != channels || t == 0 {
        return Err(Error::Shape {
            what: "decoded sample",
            found: vec![b, c, t, h, w],
            expected: format!("[B, {channels}, T, H, W]"),
        });
    }
    let (Ok(width), Ok(height)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(Error::Shape {
            what: "decoded sample",
            found: vec![b, c, t, h, w],
            expected: "an image size that fits in u32".into(),
        });
    };
    let unit = sample
        .narrow(2, 0, 1)
        .mul_scalar(0.5)
        .add_scalar(0.5)
        .clamp(0.0, 1.0);
    // NCHW → NHWC on the tensor so the bytes come out in image order.
    let data = unit
        .reshape([b, c, h, w])
        .permute([0, 2, 3, 1])
        .into_data()
        .convert::<f32>();
    let values = data.as_slice::<f32>().map_err(|e| Error::Shape {
        what: "decoded sample data",
        found: vec![b, c, t, h, w],
        expected: format!("f32-convertible values ({e:?})"),
    })?;
    let per_image = h * w * c;
    let images = values
        .chunks_exact(per_image.max(1))
        .take(b)
        .map(|chunk| {
            chunk
                .iter()
                .map(|v| (v * 255.0).round_ties_even() as u8)
                .collect()
        })
        .collect();
    Ok((width, height, images))
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn rgba_samples_become_rgba_pixels_as_numpy_to_pil() {
        // [1, 4, 1, 1, 2]: two pixels; -1 → 0, 1 → 255, 0 → 127.5 → 128 (half to even), clamped.
        let v = [-1.0f32, 0.0, 1.0, 0.5, 2.0, -3.0, 0.0, 0.25];
        let sample =
            Tensor::<Flex, 1>::from_floats(v, &Default::default()).reshape([1, 4, 1, 1, 2]);
        let imgs = to_rgba_images(sample.clone()).unwrap();
        assert_eq!(imgs.len(), 1);
        // channel-major in: R = [-1, 0], G = [1, 0.5], B = [2, -3], A = [0, 0.25]
        assert_eq!(imgs[0].get_pixel(0, 0).0, [0, 255, 255, 128]);
        assert_eq!(imgs[0].get_pixel(1, 0).0, [128, 191, 0, 159]);
        // A 4-channel sample is not RGB, and an RGB one is not RGBA.
        assert!(to_rgb_images(sample).is_err());
        let rgb = Tensor::<Flex, 5>::zeros([1, 3, 1, 1, 2], &Default::default());
        assert!(to_rgba_images(rgb).is_err());
    }
}
