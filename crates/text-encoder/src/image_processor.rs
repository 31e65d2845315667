//! `Qwen2VLImageProcessor` as transformers 5.24 runs it with torchvision installed: RGB
//! conversion, `smart_resize`, torch's antialiased bicubic resize on uint8, rescale + normalise,
//! and the patchify into `pixel_values` `[N, C·T·P·P]` with `image_grid_thw`.
//!
//! transformers 5 has two backends for this processor. With torchvision (every GPU environment
//! that made upstream's ground truth) it resizes the uint8 tensor with
//! `torch.nn.functional.interpolate(mode="bicubic", antialias=True)`, whose CPU kernel works in
//! fixed point on uint8; without torchvision it falls back to a PIL/NumPy backend whose resize
//! differs (up to 0.13–0.34 in normalised units on the same image). This module reproduces the
//! torchvision backend bit for bit.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::{DynamicImage, RgbImage};
use serde_json::Value;

use crate::Error;

/// `OPENAI_CLIP_MEAN`, the processor's default `image_mean`.
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// `OPENAI_CLIP_STD`, the processor's default `image_std`.
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// smart_resize refuses images whose long side exceeds this many times the short side.
const MAX_ASPECT_RATIO: f64 = 200.0;

/// The processor's settings (transformers' class defaults unless a `preprocessor_config.json`
/// says otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    /// Lower bound on the resized pixel count (`size.shortest_edge` / legacy `min_pixels`).
    pub min_pixels: usize,
    /// Upper bound on the resized pixel count (`size.longest_edge` / legacy `max_pixels`).
    pub max_pixels: usize,
    /// Spatial patch side (14).
    pub patch_size: usize,
    /// Frames per patch (2): a still image is repeated this many times.
    pub temporal_patch_size: usize,
    /// Patches merged per side by the vision tower's merger (2); sizes are multiples of
    /// `patch_size · merge_size`.
    pub merge_size: usize,
    /// Per-channel mean, in [0, 1] units.
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation, in [0, 1] units.
    pub image_std: [f64; 3],
    /// 1/255.
    pub rescale_factor: f64,
}

impl Default for ImageProcessor {
    /// `Qwen2VLImageProcessor()`'s defaults: min 56·56, max 28·28·1280 pixels, patch 14,
    /// temporal 2, merge 2, CLIP mean/std, rescale 1/255.
    fn default() -> Self {
        Self {
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            rescale_factor: 1.0 / 255.0,
        }
    }
}

/// What the processor returns for a list of images (all of them concatenated, as transformers
/// does for one call).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionInput {
    /// `[N, patch_dim]` row-major, f32: every image's patches in turn.
    pub pixel_values: Vec<f32>,
    /// Values per patch: channels · temporal_patch_size · patch_size² (1176).
    pub patch_dim: usize,
    /// `image_grid_thw`: (frames, patch rows, patch columns) per image.
    pub grid_thw: Vec<[usize; 3]>,
}

impl VisionInput {
    /// N, the number of patch rows of `pixel_values`.
    pub fn num_patches(&self) -> usize {
        self.grid_thw.iter().map(|g| g[0] * g[1] * g[2]).sum()
    }

    /// Tokens each image becomes after the merger: t·h·w / merge² — the number of
    /// `<|image_pad|>` tokens `Qwen2VLProcessor` puts in the text for it.
    pub fn merged_tokens(&self, merge_size: usize) -> Vec<usize> {
        let unit = (merge_size * merge_size).max(1);
        self.grid_thw
            .iter()
            .map(|g| g[0] * g[1] * g[2] / unit)
            .collect()
    }

    /// `pixel_values` as a `[N, patch_dim]` tensor in the backend's float type.
    pub fn pixel_values_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(
                self.pixel_values.clone(),
                [self.num_patches(), self.patch_dim],
            ),
            device,
        )
    }
}

impl ImageProcessor {
    /// Read a `preprocessor_config.json` (e.g. a pipeline's `processor/` folder).
    ///
    /// Both spellings of the pixel bounds are accepted: transformers 5's
    /// `size: {shortest_edge, longest_edge}` and the legacy top-level `min_pixels` / `max_pixels`
    /// (which win when both are present, as in transformers' constructor).
    pub fn from_preprocessor_config(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let json: Value = config_file::read_json(path)?;
        Self::from_json(&json, path)
    }

    /// Build from an already parsed config; `path` is only used in error messages.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self, Error> {
        let err = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let d = Self::default();
        let uint = |v: Option<&Value>, key: &str, default: usize| -> Result<usize, Error> {
            match v {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| err(format!("`{key}` is not a positive integer: {v}"))),
            }
        };
        let triple = |key: &str, default: [f64; 3]| -> Result<[f64; 3], Error> {
            match json.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    Ok([x; 3])
                }
                Some(Value::Array(a)) if a.len() == 3 => {
                    let mut out = [0.0; 3];
                    for (o, v) in out.iter_mut().zip(a) {
                        *o = v
                            .as_f64()
                            .ok_or_else(|| err(format!("`{key}` holds a non-number: {v}")))?;
                    }
                    Ok(out)
                }
                Some(v) => Err(err(format!("`{key}` must be 3 numbers: {v}"))),
            }
        };
        let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(true);
        for key in ["do_resize", "do_rescale", "do_normalize", "do_convert_rgb"] {
            if !flag(key) {
                return Err(err(format!("`{key}: false` is not supported")));
            }
        }
        // PILImageResampling.BICUBIC = 3: the only filter the Qwen processors use.
        if let Some(r) = json.get("resample").filter(|r| !r.is_null())
            && r.as_u64() != Some(3)
        {
            return Err(err(format!(
                "resample {r} is not supported (only 3 = bicubic)"
            )));
        }
        let size = json.get("size").filter(|s| s.is_object());
        let min_pixels = uint(
            json.get("min_pixels")
                .filter(|v| !v.is_null())
                .or_else(|| size.and_then(|s| s.get("shortest_edge"))),
            "min_pixels",
            d.min_pixels,
        )?;
        let max_pixels = uint(
            json.get("max_pixels")
                .filter(|v| !v.is_null())
                .or_else(|| size.and_then(|s| s.get("longest_edge"))),
            "max_pixels",
            d.max_pixels,
        )?;
        let rescale_factor = match json.get("rescale_factor") {
            None | Some(Value::Null) => d.rescale_factor,
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| err(format!("`rescale_factor` is not a positive number: {v}")))?,
        };
        let p = Self {
            min_pixels,
            max_pixels,
            patch_size: uint(json.get("patch_size"), "patch_size", d.patch_size)?,
            temporal_patch_size: uint(
                json.get("temporal_patch_size"),
                "temporal_patch_size",
                d.temporal_patch_size,
            )?,
            merge_size: uint(json.get("merge_size"), "merge_size", d.merge_size)?,
            image_mean: triple("image_mean", d.image_mean)?,
            image_std: triple("image_std", d.image_std)?,
            rescale_factor,
        };
        if p.image_std.iter().any(|s| !(s.is_finite() && *s != 0.0))
            || p.image_mean.iter().any(|m| !m.is_finite())
        {
            return Err(err(format!(
                "image_mean {:?} / image_std {:?} must be finite with a non-zero std",
                p.image_mean, p.image_std
            )));
        }
        if p.min_pixels > p.max_pixels {
            return Err(err(format!(
                "min_pixels {} is above max_pixels {}",
                p.min_pixels, p.max_pixels
            )));
        }
        Ok(p)
    }

    /// The size every input dimension is rounded to a multiple of (28).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// `(height, width)` an image of this size is resized to.
    pub fn target_size(&self, height: usize, width: usize) -> Result<(usize, usize), Error> {
        smart_resize(
            height,
            width,
            self.factor(),
            self.min_pixels,
            self.max_pixels,
        )
    }

    /// The processor's resize of one image: [`smart_resize`], then torch's antialiased bicubic
    /// on uint8 ([`resize_bicubic_antialias`]). An image already at its target size is returned
    /// unchanged (torchvision skips the interpolation too).
    pub fn resize(&self, image: &RgbImage) -> Result<RgbImage, Error> {
        let (h, w) = self.target_size(image.height() as usize, image.width() as usize)?;
        Ok(resize_bicubic_antialias(image, w as u32, h as u32))
    }

    /// `Qwen2VLImageProcessor(images=...)`: every image resized, rescaled, normalised and cut
    /// into patches, concatenated in order.
    pub fn preprocess(&self, images: &[RgbImage]) -> Result<VisionInput, Error> {
        let (p, t, m) = (self.patch_size, self.temporal_patch_size, self.merge_size);
        let patch_dim = 3 * t * p * p;
        // torchvision folds the rescale into the normalisation: mean and std are multiplied by
        // 1/rescale_factor (an f32 tensor times a Python float, computed in f32), then
        // (x − mean) / std in f32.
        let inv = (1.0 / self.rescale_factor) as f32;
        let mean = self.image_mean.map(|v| v as f32 * inv);
        let std = self.image_std.map(|v| v as f32 * inv);

        let mut pixel_values = Vec::new();
        let mut grid_thw = Vec::with_capacity(images.len());
        for image in images {
            let resized = self.resize(image)?;
            let (w, h) = (resized.width() as usize, resized.height() as usize);
            let (gh, gw) = (h / p, w / p);
            // Normalised planes [3][h][w], then whole patch rows copied out of them.
            let mut planes = vec![0f32; 3 * h * w];
            for (i, px) in resized.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    planes[c * h * w + i] = (f32::from(px[c]) - mean[c]) / std[c];
                }
            }
            pixel_values.reserve(gh * gw * patch_dim);
            // Patch order: merge blocks row-major, then the m×m patches inside a block; inside
            // a patch: channel, frame (the still image repeated), row, column.
            for by in 0..gh / m {
                for bx in 0..gw / m {
                    for my in 0..m {
                        for mx in 0..m {
                            let (y0, x0) = ((by * m + my) * p, (bx * m + mx) * p);
                            for plane in planes.chunks_exact(h * w) {
                                for _ in 0..t {
                                    for y in y0..y0 + p {
                                        let start = y * w + x0;
                                        pixel_values.extend_from_slice(&plane[start..start + p]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            grid_thw.push([1, gh, gw]);
        }
        Ok(VisionInput {
            pixel_values,
            patch_dim,
            grid_thw,
        })
    }
}

/// transformers' `smart_resize`: the `(height, width)` nearest to the input's that are multiples
/// of `factor`, with a pixel count within `[min_pixels, max_pixels]`, aspect ratio kept.
///
/// Rounding is Python's `round` (half to even: 42/28 = 1.5 rounds to 2, 70/28 = 2.5 to 2);
/// the max branch floors, the min branch ceils. Aspect ratios above 200 are refused, as upstream.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), Error> {
    if height == 0 || width == 0 || factor == 0 {
        return Err(Error::Image(format!(
            "cannot resize a {height}×{width} image to multiples of {factor}"
        )));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_ASPECT_RATIO {
        return Err(Error::Image(format!(
            "absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got {ratio} \
             ({height}×{width})"
        )));
    }
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = ((h * w) / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// transformers' `convert_to_rgb` on a PIL image, which the processor applies first: images with
/// an alpha channel are composited onto opaque white with PIL's `alpha_composite` integer
/// arithmetic; grey levels are replicated.
///
/// 16-bit and float images are first reduced to 8 bits by the `image` crate (PIL has its own
/// modes for those; the Qwen pipelines are fed 8-bit images).
pub fn to_rgb(image: &DynamicImage) -> RgbImage {
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

/// Open an image file and convert it as [`to_rgb`] does.
pub fn open_rgb(path: impl AsRef<Path>) -> Result<RgbImage, Error> {
    let path = path.as_ref();
    let image = image::open(path).map_err(|error| Error::ImageDecode {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(to_rgb(&image))
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
/// touched. Bit-exact with torch on every size tested (see `tests/vision_parity.rs`).
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
    fn opaque_and_transparent_pixels_composite_as_pil() {
        assert_eq!(composite_on_white([10, 20, 30, 255]), [10, 20, 30]);
        assert_eq!(composite_on_white([10, 20, 30, 0]), [255, 255, 255]);
        // Half transparent black on white: PIL gives 128 (255·127/255 rounded up by the trick).
        let [v, _, _] = composite_on_white([0, 0, 0, 128]);
        assert!((126..=128).contains(&v), "{v}");
    }

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

    #[test]
    fn config_accepts_both_spellings_of_the_pixel_bounds() {
        let p = Path::new("preprocessor_config.json");
        let v: Value = serde_json::from_str(
            r#"{"min_pixels": 3136, "max_pixels": 12845056, "size": {"shortest_edge": 1, "longest_edge": 2}}"#,
        )
        .unwrap();
        let a = ImageProcessor::from_json(&v, p).unwrap();
        assert_eq!((a.min_pixels, a.max_pixels), (3136, 12845056));
        let v: Value =
            serde_json::from_str(r#"{"size": {"shortest_edge": 100, "longest_edge": 2000}}"#)
                .unwrap();
        let b = ImageProcessor::from_json(&v, p).unwrap();
        assert_eq!((b.min_pixels, b.max_pixels), (100, 2000));
        let v: Value = serde_json::from_str(r#"{"resample": 2}"#).unwrap();
        assert!(ImageProcessor::from_json(&v, p).is_err());
        let v: Value = serde_json::from_str(r#"{"image_std": [0.5, 0, 0.5]}"#).unwrap();
        assert!(ImageProcessor::from_json(&v, p).is_err());
    }
}
