use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::RgbImage;

use crate::Error;

/// `VaeImageProcessor.postprocess(image, output_type="pil")` for decoded samples
/// `[B, 3, 1, H, W]` (frame 0 is taken, as the pipeline's `[:, :, 0]`): one RGB image per batch item.
///
/// Pixel = round_half_even(clamp(x·0.5 + 0.5, 0, 1) · 255). The affine map and clamp run on the
/// tensor in its own dtype (bf16 in the standard CUDA setup, as diffusers does before `.float()`,
/// which is a source of ±1 LSB versus f32); the ×255 and rounding run in f32 like numpy's.
pub fn to_rgb_images<B: Backend>(sample: Tensor<B, 5>) -> Result<Vec<RgbImage>, Error> {
    let [b, c, t, h, w] = sample.dims();
    if c != 3 || t == 0 {
        return Err(Error::Shape {
            what: "decoded sample",
            found: vec![b, c, t, h, w],
            expected: "[B, 3, T, H, W]".into(),
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
    let per_image = h * w * 3;
    Ok(values
        .chunks_exact(per_image.max(1))
        .take(b)
        .map(|chunk| {
            let bytes: Vec<u8> = chunk
                .iter()
                .map(|v| (v * 255.0).round_ties_even() as u8)
                .collect();
            // The buffer has exactly width·height·3 bytes, so this never falls back.
            RgbImage::from_raw(width, height, bytes).unwrap_or_else(|| RgbImage::new(width, height))
        })
        .collect())
}
