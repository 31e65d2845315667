//! SSIM, PSNR and mean absolute difference on 8-bit RGB images, with the semantics of upstream's
//! `test_utils.py` (scikit-image `structural_similarity(channel_axis=2, data_range=255)`,
//! `peak_signal_noise_ratio(data_range=255)`, the mean of `|out - gt|` on the 0–255 scale).
//!
//! Every window sum is computed exactly in integers, so the results are the exact values of
//! skimage's formulas (skimage's float64 filters agree to ~1e-15 relative).

use image::RgbImage;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// SSIM window side (skimage's default `win_size=7` for a uniform window).
const WIN: usize = 7;
/// Pixels in one window.
const NP: i64 = (WIN * WIN) as i64;
/// Channels per pixel.
const CH: usize = 3;
/// `data_range=255` as upstream passes it.
const DATA_RANGE: f64 = 255.0;
const K1: f64 = 0.01;
const K2: f64 = 0.03;

/// The three pixel metrics of one output/ground-truth pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelMetrics {
    /// Mean structural similarity, in [-1, 1]; 1 for identical images.
    pub ssim: f64,
    /// Peak signal-to-noise ratio in dB; `f64::INFINITY` for identical images.
    pub psnr: f64,
    /// Mean of `|output - gt|` over all pixels and channels, on the 0–255 scale.
    pub mean_abs_diff: f64,
}

impl PixelMetrics {
    /// All three metrics of `output` against `gt`. Errors if the sizes differ or the images are
    /// smaller than SSIM's 7x7 window.
    pub fn compute(output: &RgbImage, gt: &RgbImage) -> Result<Self> {
        Ok(Self {
            ssim: ssim(output, gt)?,
            psnr: psnr(output, gt)?,
            mean_abs_diff: mean_abs_diff(output, gt)?,
        })
    }
}

fn same_size(output: &RgbImage, gt: &RgbImage) -> Result<()> {
    if output.dimensions() == gt.dimensions() {
        Ok(())
    } else {
        Err(Error::SizeMismatch {
            output: output.dimensions(),
            gt: gt.dimensions(),
        })
    }
}

/// Mean structural similarity as skimage computes it for `channel_axis=2, data_range=255`:
/// 7x7 uniform window, sample covariance (N-1), K1 = 0.01, K2 = 0.03, the SSIM map cropped by the
/// window radius (3 pixels) on every side so only windows lying fully inside the image count, then
/// the mean over those windows and over the channels.
pub fn ssim(output: &RgbImage, gt: &RgbImage) -> Result<f64> {
    same_size(output, gt)?;
    let (w, h) = output.dimensions();
    if (w as usize) < WIN || (h as usize) < WIN {
        return Err(Error::TooSmallForSsim {
            width: w,
            height: h,
        });
    }
    Ok(ssim_interleaved(
        output.as_raw(),
        gt.as_raw(),
        w as usize,
        h as usize,
    ))
}

/// SSIM on interleaved RGB rows. Output rows are split into bands processed in parallel; each band
/// keeps a ring of the last 7 rows of horizontal window sums and running vertical sums, so every
/// window sum costs O(1). The per-band partial sums are added in band order, so the result does not
/// depend on the number of threads.
fn ssim_interleaved(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    let out_h = h - (WIN - 1);
    let n = (w - (WIN - 1)) * CH;
    // A fixed band height (not derived from the thread count) keeps the summation order, and so
    // the last bits of the result, the same on every machine.
    let band = 32;
    let starts: Vec<usize> = (0..out_h).step_by(band).collect();
    let partial: Vec<f64> = starts
        .par_iter()
        .map(|&r0| ssim_band(a, b, w, r0, (r0 + band).min(out_h), n))
        .collect();
    let windows = (out_h * n) as f64;
    partial.iter().sum::<f64>() / windows
}

/// The five window sums of one output position: Σx, Σy, Σx², Σy², Σxy.
#[derive(Clone, Copy, Default)]
struct Sums([u32; 5]);

/// Sum of the SSIM map over output rows `r0..r1`.
fn ssim_band(a: &[u8], b: &[u8], w: usize, r0: usize, r1: usize, n: usize) -> f64 {
    let row_len = w * CH;
    // ring[slot][i]: horizontal sums of input row `r` in slot `r % WIN`.
    let mut ring = vec![Sums::default(); WIN * n];
    let mut vert = vec![Sums::default(); n];
    let horizontal = |row: usize, dst: &mut [Sums]| {
        let x = &a[row * row_len..(row + 1) * row_len];
        let y = &b[row * row_len..(row + 1) * row_len];
        for (i, s) in dst.iter_mut().enumerate() {
            let mut acc = [0u32; 5];
            for k in 0..WIN {
                let (p, q) = (u32::from(x[i + k * CH]), u32::from(y[i + k * CH]));
                acc[0] += p;
                acc[1] += q;
                acc[2] += p * p;
                acc[3] += q * q;
                acc[4] += p * q;
            }
            *s = Sums(acc);
        }
    };
    for row in r0..r0 + WIN {
        let slot = &mut ring[(row % WIN) * n..(row % WIN + 1) * n];
        horizontal(row, slot);
        for (v, s) in vert.iter_mut().zip(slot.iter()) {
            for q in 0..5 {
                v.0[q] += s.0[q];
            }
        }
    }
    let mut total = 0.0;
    for r in r0..r1 {
        if r > r0 {
            // Slide down one row: row r-1 leaves, row r+6 enters the same ring slot.
            let slot = &mut ring[((r - 1) % WIN) * n..((r - 1) % WIN + 1) * n];
            for (v, s) in vert.iter_mut().zip(slot.iter()) {
                for q in 0..5 {
                    v.0[q] -= s.0[q];
                }
            }
            horizontal(r + WIN - 1, slot);
            for (v, s) in vert.iter_mut().zip(slot.iter()) {
                for q in 0..5 {
                    v.0[q] += s.0[q];
                }
            }
        }
        total += vert.iter().map(|s| ssim_window(*s)).sum::<f64>();
    }
    total
}

/// skimage's SSIM of one window from exact integer sums. With N = 49, μ = Σ/N and the sample
/// (co)variances σ = (NΣxy − ΣxΣy) / (N(N−1)), the factors' common denominators cancel:
/// `(2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))` becomes a ratio of integer
/// expressions plus the scaled constants, which stays exact up to the final float products.
#[inline]
fn ssim_window(Sums([sx, sy, sxx, syy, sxy]): Sums) -> f64 {
    let (sx, sy) = (i64::from(sx), i64::from(sy));
    let (sxx, syy, sxy) = (i64::from(sxx), i64::from(syy), i64::from(sxy));
    let c1 = (K1 * DATA_RANGE).powi(2) * (NP * NP) as f64;
    let c2 = (K2 * DATA_RANGE).powi(2) * (NP * (NP - 1)) as f64;
    let a1 = (2 * sx * sy) as f64 + c1;
    let b1 = (sx * sx + sy * sy) as f64 + c1;
    let a2 = (2 * (NP * sxy - sx * sy)) as f64 + c2;
    let b2 = ((NP * sxx - sx * sx) + (NP * syy - sy * sy)) as f64 + c2;
    (a1 * a2) / (b1 * b2)
}

/// Per-row integer reduction over both images, in parallel; integer sums make the order irrelevant.
fn reduce_rows(output: &RgbImage, gt: &RgbImage, f: impl Fn(u8, u8) -> u64 + Sync) -> u64 {
    let row_len = output.width() as usize * CH;
    if row_len == 0 {
        return 0;
    }
    output
        .as_raw()
        .par_chunks(row_len)
        .zip(gt.as_raw().par_chunks(row_len))
        .map(|(x, y)| x.iter().zip(y).map(|(&p, &q)| f(p, q)).sum::<u64>())
        .sum()
}

/// Peak signal-to-noise ratio with `data_range=255`: `10·log10(255² / MSE)`, `f64::INFINITY` when
/// the images are identical (skimage divides by zero and returns `inf` too).
pub fn psnr(output: &RgbImage, gt: &RgbImage) -> Result<f64> {
    same_size(output, gt)?;
    let count = output.as_raw().len();
    let ssd = reduce_rows(output, gt, |p, q| u64::from(p.abs_diff(q)).pow(2));
    if ssd == 0 {
        return Ok(f64::INFINITY);
    }
    let mse = ssd as f64 / count as f64;
    Ok(10.0 * (DATA_RANGE * DATA_RANGE / mse).log10())
}

/// Mean of `|output − gt|` over all pixels and channels on the 0–255 scale. Computed exactly;
/// upstream's float32 numpy mean agrees to float32 rounding.
pub fn mean_abs_diff(output: &RgbImage, gt: &RgbImage) -> Result<f64> {
    same_size(output, gt)?;
    let count = output.as_raw().len();
    if count == 0 {
        return Ok(0.0);
    }
    let sad = reduce_rows(output, gt, |p, q| u64::from(p.abs_diff(q)));
    Ok(sad as f64 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, f: impl Fn(u32, u32, usize) -> u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
        })
    }

    /// Direct O(49) evaluation of skimage's formula in float64, as a cross-check of the sliding sums.
    fn ssim_naive(a: &RgbImage, b: &RgbImage) -> f64 {
        let (w, h) = a.dimensions();
        let (c1, c2) = ((K1 * 255.0f64).powi(2), (K2 * 255.0f64).powi(2));
        let mut total = 0.0;
        let mut count = 0usize;
        for c in 0..3 {
            for y0 in 0..h - 6 {
                for x0 in 0..w - 6 {
                    let (mut mx, mut my, mut mxx, mut myy, mut mxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for y in y0..y0 + 7 {
                        for x in x0..x0 + 7 {
                            let p = f64::from(a.get_pixel(x, y)[c]);
                            let q = f64::from(b.get_pixel(x, y)[c]);
                            mx += p / 49.0;
                            my += q / 49.0;
                            mxx += p * p / 49.0;
                            myy += q * q / 49.0;
                            mxy += p * q / 49.0;
                        }
                    }
                    let cn = 49.0 / 48.0;
                    let (vx, vy, vxy) = (
                        cn * (mxx - mx * mx),
                        cn * (myy - my * my),
                        cn * (mxy - mx * my),
                    );
                    total += ((2.0 * mx * my + c1) * (2.0 * vxy + c2))
                        / ((mx * mx + my * my + c1) * (vx + vy + c2));
                    count += 1;
                }
            }
        }
        total / count as f64
    }

    #[test]
    fn sliding_sums_equal_the_direct_formula() {
        // Tall enough for several bands and ring wrap-arounds.
        let a = image(23, 61, |x, y, c| {
            ((x * 37 + y * 11 + c as u32 * 71) % 256) as u8
        });
        let b = image(23, 61, |x, y, c| {
            ((x * x + y * 5 + c as u32 * 13) % 256) as u8
        });
        let fast = ssim(&a, &b).unwrap();
        let slow = ssim_naive(&a, &b);
        assert!((fast - slow).abs() < 1e-12, "{fast} vs {slow}");
    }

    #[test]
    fn identical_images_give_ssim_one_and_infinite_psnr() {
        let a = image(9, 8, |x, y, c| (x * 20 + y * 3 + c as u32) as u8);
        let m = PixelMetrics::compute(&a, &a).unwrap();
        assert_eq!(m.ssim, 1.0);
        assert_eq!(m.psnr, f64::INFINITY);
        assert_eq!(m.mean_abs_diff, 0.0);
    }

    #[test]
    fn size_mismatch_names_both_sizes() {
        let a = image(10, 8, |_, _, _| 0);
        let b = image(8, 10, |_, _, _| 0);
        let msg = PixelMetrics::compute(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("10x8") && msg.contains("8x10"), "{msg}");
    }

    #[test]
    fn smaller_than_the_window_is_an_error() {
        let a = image(6, 30, |_, _, _| 0);
        assert!(matches!(
            ssim(&a, &a),
            Err(Error::TooSmallForSsim {
                width: 6,
                height: 30
            })
        ));
        // PSNR and MAD have no window.
        assert_eq!(mean_abs_diff(&a, &a).unwrap(), 0.0);
    }
}
