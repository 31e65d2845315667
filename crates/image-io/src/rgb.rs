//! transformers' `convert_to_rgb`: alpha composited onto opaque white as PIL's `alpha_composite`.
//!
//! Unlike [`Image::convert`](crate::Image::convert) to `RGB`, which drops alpha as PIL's
//! `convert("RGB")` does, this is what Qwen2-VL's image processor (and so the prompt images of the
//! Edit and Layered pipelines) applies first.

use image::{DynamicImage, RgbImage};

/// transformers' `convert_to_rgb` on a PIL image, which the processor applies first: images with
/// an alpha channel are composited onto opaque white with PIL's `alpha_composite` integer
/// arithmetic; grey levels are replicated.
///
/// 16-bit and float images are first reduced to 8 bits by the `image` crate (PIL has its own
/// modes for those; the Qwen pipelines are fed 8-bit images).
pub fn convert_to_rgb(image: &DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_) => image.to_rgb8(),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgb32F(_) => image.to_rgb8(),
        other => {
            let rgba = other.to_rgba8();
            let (w, h) = rgba.dimensions();
            let mut out = RgbImage::new(w, h);
            for (o, px) in out.pixels_mut().zip(rgba.pixels()) {
                o.0 = composite_on_white(px.0);
            }
            out
        }
    }
}

/// One pixel of `PIL.Image.alpha_composite(white, src)` (Pillow's `AlphaComposite.c`: 7 extra
/// bits of precision, divisions by 255 rounded with the shift trick).
fn composite_on_white([r, g, b, a]: [u8; 4]) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    if a == 0 {
        return [255; 3];
    }
    let (sa, da, dc) = (u32::from(a), 255u32, 255u32);
    let blend = da * (255 - sa);
    let outa255 = sa * 255 + blend;
    let coef1 = sa * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let shift_div255 = |v: u32| ((v >> 8) + v) >> 8;
    let mix = |s: u8| {
        let tmp = u32::from(s) * coef1 + dc * coef2 + (0x80 << PRECISION_BITS);
        (shift_div255(tmp) >> PRECISION_BITS) as u8
    };
    [mix(r), mix(g), mix(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_and_transparent_pixels_composite_as_pil() {
        assert_eq!(composite_on_white([10, 20, 30, 255]), [10, 20, 30]);
        assert_eq!(composite_on_white([10, 20, 30, 0]), [255, 255, 255]);
        // Half transparent black on white: PIL gives 128 (255·127/255 rounded up by the trick).
        let [v, _, _] = composite_on_white([0, 0, 0, 128]);
        assert!((126..=128).contains(&v), "{v}");
    }
}
