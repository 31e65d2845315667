//! `Image.convert(mode)` as Pillow's `libImaging/Convert.c` does it, for the modes of [`Mode`].

use crate::image::{Image, Mode};
use crate::{Error, Result};

/// ITU-R 601-2 luma in Pillow's 16-bit fixed point (`L24` in Convert.c), rounded by the `+0x8000`.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// Pillow's `I;16` → 8-bit: values above 255 saturate (it tests the high byte), no scaling.
#[inline]
fn i16_to_l(lo: u8, hi: u8) -> u8 {
    if hi == 0 { lo } else { 255 }
}

impl Image {
    /// Returns the image in `mode` exactly as PIL's `img.convert(mode)`:
    /// alpha is dropped (never composited) going to `RGB`/`L`, added as 255 going to `RGBA`/`LA`;
    /// grey from colour is Pillow's integer ITU-R 601-2 luma; `I;16` saturates at 255.
    /// Converting to `I;16` is not supported.
    pub fn convert(&self, mode: Mode) -> Result<Image> {
        let from = self.mode();
        if from == mode {
            return Ok(self.clone());
        }
        let src = self.as_bytes();
        let n = self.width() as usize * self.height() as usize;
        let mut out = Vec::with_capacity(n * mode.channels());
        // Every source pixel is first read as (r, g, b, a), which is what Pillow's converters do
        // on its 4-byte pixel layout; then written in the target mode.
        let pixel = |i: usize| -> (u8, u8, u8, u8) {
            match from {
                Mode::L => (src[i], src[i], src[i], 255),
                Mode::La => (src[2 * i], src[2 * i], src[2 * i], src[2 * i + 1]),
                Mode::Rgb => (src[3 * i], src[3 * i + 1], src[3 * i + 2], 255),
                Mode::Rgba => (src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]),
                Mode::I16 => {
                    let v = i16_to_l(src[2 * i], src[2 * i + 1]);
                    (v, v, v, 255)
                }
            }
        };
        let grey_source = matches!(from, Mode::L | Mode::La | Mode::I16);
        for i in 0..n {
            let (r, g, b, a) = pixel(i);
            // Grey sources keep their value; only colour sources go through the luma formula.
            let l = if grey_source { r } else { luma(r, g, b) };
            match mode {
                Mode::L => out.push(l),
                Mode::La => out.extend_from_slice(&[l, a]),
                Mode::Rgb => out.extend_from_slice(&[r, g, b]),
                Mode::Rgba => out.extend_from_slice(&[r, g, b, a]),
                Mode::I16 => {
                    return Err(Error::Mode {
                        op: "convert to I;16",
                        mode: from.name(),
                    });
                }
            }
        }
        Image::from_raw(mode, self.width(), self.height(), out)
    }
}
