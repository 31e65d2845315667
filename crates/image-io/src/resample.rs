//! Pillow's `Image.resize`, reproduced bit for bit.
//!
//! * The convolution filters (`libImaging/Resample.c`): the same float64 kernel weights, the same
//!   22-bit fixed-point rounding, two separable passes each rounded to 8 bits, in Pillow 13's
//!   order (vertical first when the height shrinks much more than the width, see `convolve`).
//! * `NEAREST` is not a convolution in Pillow: `_imaging.c` turns it into an affine scale
//!   (`ImagingScaleAffine` in `Geometry.c`), whose source coordinate starts at `scale / 2` and is
//!   *accumulated* (`x += scale`) in float64, then truncated. We do the same additions.
//! * `RGBA`/`LA` with any filter but `NEAREST` are premultiplied first (`RGBa`/`La`), resized, and
//!   un-premultiplied (`Image.resize` in `Image.py`), with Pillow's integer rounding both ways.
//!
//! Why not a crate: fast_image_resize ports Pillow-SIMD, whose 16-bit coefficients gave ±1 on
//! ~16 % of the values of a 301x241 → 279x224 bicubic downscale, and ±2 on a few, against Pillow
//! 13. CLIP's and the VAE's preprocessing must match to the last 8-bit step.

use image::RgbImage;

use crate::image::{Image, Mode};
use crate::{Error, Result};

/// PIL's resampling filters, numbered as PIL numbers them (`Image.Resampling`, the `"resample"`
/// integer of a `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    /// `0`: nearest neighbour (Pillow's affine scale, not a convolution).
    Nearest,
    /// `1`: Lanczos, a = 3. diffusers' `VaeImageProcessor` default.
    Lanczos,
    /// `2`.
    Bilinear,
    /// `3`: what CLIP uses.
    Bicubic,
    /// `4`.
    Box,
    /// `5`.
    Hamming,
}

impl Resample {
    /// The filter with PIL's number `code`; `None` for an unknown number (and for Pillow 13's
    /// MKS2013/MKS2021, which no pipeline uses).
    pub fn from_pil(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => return None,
        })
    }

    /// PIL's number of the filter.
    pub fn pil_code(self) -> u64 {
        match self {
            Self::Nearest => 0,
            Self::Lanczos => 1,
            Self::Bilinear => 2,
            Self::Bicubic => 3,
            Self::Box => 4,
            Self::Hamming => 5,
        }
    }

    /// The filter by diffusers' name (`PIL_INTERPOLATION` keys: `"linear"`, `"bilinear"`,
    /// `"bicubic"`, `"lanczos"`, `"nearest"`), as in a `VaeImageProcessor` config's `resample`.
    pub fn from_diffusers_name(name: &str) -> Option<Self> {
        Some(match name {
            "linear" | "bilinear" => Self::Bilinear,
            "bicubic" => Self::Bicubic,
            "lanczos" => Self::Lanczos,
            "nearest" => Self::Nearest,
            _ => return None,
        })
    }

    /// Kernel support (radius at scale 1). Nearest has none (it never reaches the convolution).
    fn support(self) -> f64 {
        match self {
            Resample::Nearest | Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    fn kernel(self, x: f64) -> f64 {
        match self {
            Resample::Nearest | Resample::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the window's constants as C float literals (0.54f, 0.46f):
                    // their float32 values, widened, are what it multiplies with.
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Resample::Bicubic => {
                // Keys' cubic with a = -0.5, in Pillow's evaluation order.
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                };
                // Half-open window, as Pillow's: -3 is inside, +3 is not.
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point bits of the weights: 32 bits minus 8 for the value and 2 for overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output position: the first input index, the number of taps, and fixed-point weights.
struct Coefficients {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full box `[0, in_size)`.
fn coefficients(in_size: usize, out_size: usize, filter: Resample) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero; negatives are clamped to 0 right after.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = filter.kernel(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, &kx) in k.iter().enumerate().take(xmax) {
            let kx = if ww != 0.0 { kx / ww } else { kx };
            let fixed = kx * f64::from(1u32 << PRECISION_BITS);
            // Round half away from zero, then truncate: Pillow's (int)(±0.5 + k · 2²²).
            weights[xx * ksize + x] = if kx < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coefficients {
        ksize,
        bounds,
        weights,
    }
}

/// Pillow's `clip8`: drop the fraction bits and saturate to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Interleaved 8-bit pixels of `ch` channels from `w`×`h` to `nw`×`nh` (all non-zero) with a
/// convolution filter: two passes, each only when its size changes, each rounded to 8 bits.
///
/// The order matters for the result. Pillow 13 (python-pillow/Pillow#9549) runs the vertical
/// pass first when the height shrinks by more than twice as many pixels as the width does
/// (`ImagingResampleInner`); before 13 it was always horizontal first.
fn convolve(
    src: &[u8],
    ch: usize,
    (w, h): (usize, usize),
    (nw, nh): (usize, usize),
    filter: Resample,
) -> Vec<u8> {
    let (dh, dw) = (h as i64 - nh as i64, w as i64 - nw as i64);
    let vertical_first = dh > 0 && dh > dw * 2;
    if vertical_first {
        let tall = vertical_pass(src, w * ch, h, nh, filter);
        horizontal_pass(&tall, ch, w, nh, nw, filter)
    } else {
        let wide = horizontal_pass(src, ch, w, h, nw, filter);
        vertical_pass(&wide, nw * ch, h, nh, filter)
    }
}

/// Resamples each of `rows` rows of `w` pixels (`ch` channels) to `nw` pixels.
fn horizontal_pass(
    src: &[u8],
    ch: usize,
    w: usize,
    rows: usize,
    nw: usize,
    filter: Resample,
) -> Vec<u8> {
    if nw == w {
        return src.to_vec();
    }
    let round = 1i32 << (PRECISION_BITS - 1);
    let c = coefficients(w, nw, filter);
    let mut out = vec![0u8; nw * rows * ch];
    for y in 0..rows {
        let row = &src[y * w * ch..(y + 1) * w * ch];
        let out_row = &mut out[y * nw * ch..(y + 1) * nw * ch];
        for (xx, &(xmin, xmax)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + xmax];
            for c_ in 0..ch {
                let mut acc = round;
                for (x, &kx) in k.iter().enumerate() {
                    acc += i32::from(row[(x + xmin) * ch + c_]) * kx;
                }
                out_row[xx * ch + c_] = clip8(acc);
            }
        }
    }
    out
}

/// Resamples `h` rows of `stride` bytes to `nh` rows.
fn vertical_pass(src: &[u8], stride: usize, h: usize, nh: usize, filter: Resample) -> Vec<u8> {
    if nh == h {
        return src.to_vec();
    }
    let round = 1i32 << (PRECISION_BITS - 1);
    let c = coefficients(h, nh, filter);
    let mut out = vec![0u8; nh * stride];
    let mut acc = vec![0i32; stride];
    for (yy, &(ymin, ymax)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + ymax];
        acc.fill(round);
        // Row by row: the same integer sums as Pillow's per-pixel loop (integer addition is
        // exact, so the order does not matter), friendlier to the cache.
        for (y, &ky) in k.iter().enumerate() {
            let row = &src[(y + ymin) * stride..(y + ymin + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i32::from(v) * ky;
            }
        }
        for (o, &a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Source index of each output position for Pillow's nearest scale (`ImagingScaleAffine`):
/// the coordinate starts at `scale / 2` and is accumulated in float64, then truncated; a position
/// that falls outside the source stays `None` (Pillow leaves those pixels at 0).
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    // (double)(box[1] - box[0]) / size with a float box: exact for any real image size.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let mut pos = scale * 0.5;
    (0..out_size)
        .map(|_| {
            let i = if pos < 0.0 { -1 } else { pos as i64 };
            pos += scale;
            (i >= 0 && (i as usize) < in_size).then_some(i as usize)
        })
        .collect()
}

fn nearest(src: &[u8], px: usize, (w, h): (usize, usize), (nw, nh): (usize, usize)) -> Vec<u8> {
    let xs = nearest_indices(w, nw);
    let ys = nearest_indices(h, nh);
    let mut out = vec![0u8; nw * nh * px];
    for (yy, y) in ys.iter().enumerate() {
        let Some(y) = *y else { continue };
        let row = &src[y * w * px..(y + 1) * w * px];
        let out_row = &mut out[yy * nw * px..(yy + 1) * nw * px];
        for (xx, x) in xs.iter().enumerate() {
            if let Some(x) = *x {
                out_row[xx * px..(xx + 1) * px].copy_from_slice(&row[x * px..(x + 1) * px]);
            }
        }
    }
    out
}

/// Pillow's `MULDIV255`: `(a·b + 127) / 255` rounded, as shifts.
#[inline]
fn muldiv255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// `RGBA` → `RGBa` (`rgbA2rgba`), in place: colour channels times alpha / 255.
fn premultiply(data: &mut [u8], ch: usize) {
    for p in data.chunks_exact_mut(ch) {
        let a = p[ch - 1];
        for v in &mut p[..ch - 1] {
            *v = muldiv255(*v, a);
        }
    }
}

/// `RGBa` → `RGBA` (`rgba2rgbA`), in place: alpha 0 and 255 keep the values, otherwise
/// `min(255 · v / alpha, 255)` with integer division.
fn unpremultiply(data: &mut [u8], ch: usize) {
    for p in data.chunks_exact_mut(ch) {
        let a = u32::from(p[ch - 1]);
        if a == 0 || a == 255 {
            continue;
        }
        for v in &mut p[..ch - 1] {
            *v = ((255 * u32::from(*v)) / a).min(255) as u8;
        }
    }
}

impl Image {
    /// Returns the image resized to `width`×`height` exactly as PIL's
    /// `img.resize((width, height), resample=filter)` (no `box`, no `reducing_gap`): the same size
    /// gives an unchanged copy; `RGBA`/`LA` are premultiplied around a convolution filter.
    /// `I;16` is not supported (Pillow uses other code paths for it); a zero size is an error,
    /// as in PIL.
    pub fn resize(&self, width: u32, height: u32, filter: Resample) -> Result<Image> {
        if width == 0 || height == 0 {
            return Err(Error::Invalid(format!(
                "resize to {width}x{height}: height and width must be > 0"
            )));
        }
        if (width, height) == self.size() {
            return Ok(self.clone());
        }
        if self.mode() == Mode::I16 {
            return Err(Error::Mode {
                op: "resize",
                mode: self.mode().name(),
            });
        }
        let ch = self.mode().channels();
        let from = (self.width() as usize, self.height() as usize);
        let to = (width as usize, height as usize);
        if from.0 == 0 || from.1 == 0 {
            return Err(Error::Invalid(format!(
                "resize of an empty {}x{} image",
                from.0, from.1
            )));
        }
        let data = match filter {
            Resample::Nearest => nearest(self.as_bytes(), ch, from, to),
            _ if self.mode().has_alpha() => {
                let mut pre = self.as_bytes().to_vec();
                premultiply(&mut pre, ch);
                let mut out = convolve(&pre, ch, from, to, filter);
                unpremultiply(&mut out, ch);
                out
            }
            _ => convolve(self.as_bytes(), ch, from, to, filter),
        };
        Image::from_raw(self.mode(), width, height, data)
    }
}

/// Resizes an RGB image to `width`×`height` exactly as Pillow's `Image.resize(size, filter)` does
/// (same size: an unchanged copy, as Pillow returns). Zero-sized targets give an empty image.
pub fn resize_like_pil(img: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    if width == 0 || height == 0 || img.width() == 0 || img.height() == 0 {
        return RgbImage::new(width, height);
    }
    if (width, height) == img.dimensions() {
        return img.clone();
    }
    let from = (img.width() as usize, img.height() as usize);
    let to = (width as usize, height as usize);
    let data = match filter {
        Resample::Nearest => nearest(img.as_raw(), 3, from, to),
        _ => convolve(img.as_raw(), 3, from, to, filter),
    };
    RgbImage::from_vec(width, height, data).unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVOLUTIONS: [Resample; 5] = [
        Resample::Bicubic,
        Resample::Bilinear,
        Resample::Lanczos,
        Resample::Box,
        Resample::Hamming,
    ];

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for filter in CONVOLUTIONS {
            for (i, o) in [(301, 224), (100, 224), (7, 3)] {
                let c = coefficients(i, o, filter);
                for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                    let sum: i32 = c.weights[xx * c.ksize..xx * c.ksize + n].iter().sum();
                    assert!(
                        (sum - (1 << PRECISION_BITS)).abs() <= n as i32,
                        "{filter:?} {i}->{o}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        for filter in CONVOLUTIONS {
            let src = vec![77u8; 13 * 9 * 3];
            let out = convolve(&src, 3, (13, 9), (5, 20), filter);
            assert!(out.iter().all(|&v| v == 77), "{filter:?}");
        }
    }

    #[test]
    fn nearest_doubling_repeats_each_pixel() {
        assert_eq!(nearest_indices(3, 6), [0, 0, 1, 1, 2, 2].map(Some).to_vec());
    }

    #[test]
    fn premultiply_round_trip_keeps_opaque_and_clear_pixels() {
        let mut px = vec![10, 20, 30, 255, 10, 20, 30, 0, 200, 100, 50, 128];
        premultiply(&mut px, 4);
        assert_eq!(&px[..8], &[10, 20, 30, 255, 0, 0, 0, 0]);
        assert_eq!(&px[8..], &[100, 50, 25, 128]);
        unpremultiply(&mut px, 4);
        assert_eq!(&px[8..], &[199, 99, 49, 128]);
    }

    #[test]
    fn zero_size_is_an_error() {
        let img = Image::from_raw(Mode::L, 2, 2, vec![0; 4]).unwrap();
        assert!(img.resize(0, 3, Resample::Lanczos).is_err());
    }

    #[test]
    fn filters_round_trip_through_their_pil_numbers() {
        for f in CONVOLUTIONS.into_iter().chain([Resample::Nearest]) {
            assert_eq!(Resample::from_pil(f.pil_code()), Some(f));
        }
        assert_eq!(Resample::from_pil(6), None);
        assert_eq!(
            Resample::from_diffusers_name("lanczos"),
            Some(Resample::Lanczos)
        );
    }
}
