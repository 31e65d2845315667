//! torch's `interpolate(mode="bicubic", antialias=True)` on uint8, as its CPU kernel computes it.
//!
//! transformers' Qwen2-VL image processor resizes with torchvision, which runs this kernel in
//! int16 fixed point on the uint8 image; PIL's bicubic ([`Image::resize`](crate::Image::resize))
//! rounds differently, so the prompt images need this one to match upstream bit for bit.

use image::RgbImage;

/// One axis of torch's antialiased bicubic on uint8: for each output index the first input
/// index, the tap count and int16 weights at `precision` fractional bits.
struct AxisTaps {
    first: Vec<usize>,
    len: Vec<usize>,
    /// `stride` weights per output index.
    weights: Vec<i32>,
    stride: usize,
    precision: u32,
}

/// Keys' cubic kernel with a = −0.5 (torch's `HelperInterpCubic::aa_filter`, as PIL's).
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// `_compute_index_ranges_int16_weights` (aten/src/ATen/native/cpu/UpSampleKernel.cpp) for
/// `align_corners=False` and an output size (no scale factor): weights computed in f64 with the
/// support widened by the downscale factor, normalised per output, then rounded to int16 at the
/// largest precision that keeps the axis's largest weight below 2^15.
fn axis_taps(in_size: usize, out_size: usize) -> AxisTaps {
    let scale = in_size as f64 / out_size as f64;
    let interp_size = 4.0;
    let support = if scale >= 1.0 {
        interp_size * 0.5 * scale
    } else {
        interp_size * 0.5
    };
    let stride = support.ceil() as usize * 2 + 1;
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut first = Vec::with_capacity(out_size);
    let mut len = Vec::with_capacity(out_size);
    let mut wf = vec![0f64; out_size * stride];
    let mut wt_max = 0f64;
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        // C++ casts to int64 truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xsize = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let xsize = xsize.clamp(0, stride as i64) as usize;
        let w = &mut wf[i * stride..(i + 1) * stride];
        let mut total = 0f64;
        for (j, wj) in w.iter_mut().enumerate().take(xsize) {
            *wj = cubic(((j as i64 + xmin) as f64 - center + 0.5) * invscale);
            total += *wj;
        }
        if total != 0.0 {
            for wj in w.iter_mut().take(xsize) {
                *wj /= total;
                wt_max = wt_max.max(*wj);
            }
        }
        first.push(xmin as usize);
        len.push(xsize);
    }
    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wt_max * f64::from(1u32 << (precision + 1))) as i32;
        if next >= 1 << 15 {
            break;
        }
        precision += 1;
    }
    let one = f64::from(1u32 << precision);
    let weights = wf
        .iter()
        .map(|&w| {
            let v = w * one;
            // Round half away from zero, then stored as int16.
            (if v < 0.0 {
                (-0.5 + v) as i32
            } else {
                (0.5 + v) as i32
            }) as i16 as i32
        })
        .collect();
    AxisTaps {
        first,
        len,
        weights,
        stride,
        precision,
    }
}

impl AxisTaps {
    /// Output index `o`'s first input index and weights.
    fn taps(&self, o: usize) -> (usize, &[i32]) {
        let w = &self.weights[o * self.stride..o * self.stride + self.len[o]];
        (self.first[o], w)
    }

    /// The fixed-point accumulator's start: ½ in units of 2^-precision (the rounding).
    fn half(&self) -> i32 {
        1 << (self.precision.max(1) - 1)
    }

    /// `clamp(acc >> precision, 0, 255)` (torch's `basic_loop_aa_*<uint8_t>` epilogue).
    fn finish(&self, acc: i32) -> u8 {
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// `torch.nn.functional.interpolate(x, size=(out_height, out_width), mode="bicubic",
/// align_corners=False, antialias=True)` on a uint8 RGB image, as torch's CPU kernel computes it
/// (what torchvision's `resize` runs for the Qwen processor): width first, then height, each
/// pass in int16 fixed point and rounded to uint8; an axis whose size does not change is not
/// touched. Bit-exact with torch on every size tested (see `tests/torch_resize_parity.rs`).
pub fn resize_bicubic_antialias(src: &RgbImage, out_width: u32, out_height: u32) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (out_width as usize, out_height as usize);
    if (in_w, in_h) == (out_w, out_h) || out_w == 0 || out_h == 0 || in_w == 0 || in_h == 0 {
        return if (in_w, in_h) == (out_w, out_h) {
            src.clone()
        } else {
            RgbImage::new(out_width, out_height)
        };
    }
    let mut data = src.as_raw().clone();
    let mut w = in_w;
    if out_w != in_w {
        // Along a row: out[x] = Σ_k w_k · in[first + k], per channel.
        let taps = axis_taps(in_w, out_w);
        let mut next = vec![0u8; out_w * in_h * 3];
        for (row, out) in data
            .chunks_exact(w * 3)
            .zip(next.chunks_exact_mut(out_w * 3))
        {
            for (x, px) in out.chunks_exact_mut(3).enumerate() {
                let (first, wts) = taps.taps(x);
                let mut acc = [taps.half(); 3];
                for (k, &wk) in wts.iter().enumerate() {
                    let s = &row[(first + k) * 3..(first + k) * 3 + 3];
                    for c in 0..3 {
                        acc[c] += i32::from(s[c]) * wk;
                    }
                }
                for c in 0..3 {
                    px[c] = taps.finish(acc[c]);
                }
            }
        }
        data = next;
        w = out_w;
    }
    if out_h != in_h {
        // Across rows: out row y = Σ_k w_k · in row (first + k), every byte of the row at once.
        let taps = axis_taps(in_h, out_h);
        let stride = w * 3;
        let mut next = vec![0u8; stride * out_h];
        let mut acc = vec![0i32; stride];
        for (y, out) in next.chunks_exact_mut(stride).enumerate() {
            let (first, wts) = taps.taps(y);
            acc.fill(taps.half());
            for (k, &wk) in wts.iter().enumerate() {
                let row = &data[(first + k) * stride..(first + k + 1) * stride];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += i32::from(v) * wk;
                }
            }
            for (o, &a) in out.iter_mut().zip(&acc) {
                *o = taps.finish(a);
            }
        }
        data = next;
    }
    // The buffer has exactly out_w · out_h · 3 bytes by construction.
    RgbImage::from_raw(out_width, out_height, data).unwrap_or_else(|| RgbImage::new(0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_one_output_sum_to_one_in_fixed_point() {
        for (i, o) in [(61, 20), (13, 40), (79, 84), (1024, 37)] {
            let t = axis_taps(i, o);
            for k in 0..o {
                let s: i32 = t.weights[k * t.stride..k * t.stride + t.len[k]]
                    .iter()
                    .sum();
                let one = 1 << t.precision;
                assert!(
                    (s - one).abs() <= t.len[k] as i32,
                    "{i}->{o} #{k}: {s} vs {one}"
                );
            }
        }
    }

    #[test]
    fn a_constant_image_stays_constant() {
        let img = RgbImage::from_pixel(31, 17, image::Rgb([200, 3, 77]));
        let out = resize_bicubic_antialias(&img, 12, 40);
        assert!(out.pixels().all(|p| p.0 == [200, 3, 77]));
    }
}
