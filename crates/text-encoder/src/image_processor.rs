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
use image::RgbImage;
use image_io::resize_bicubic_antialias;
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

    /// The processor settings of a pipeline's `processor/` folder, in either layout
    /// `save_pretrained` writes: `preprocessor_config.json` (the released folders; flat), or
    /// `processor_config.json` (transformers ≥ 5: the image processor nested under
    /// `"image_processor"`), each in either key style ([`Self::from_json`]). The first is read when
    /// both are present, as transformers' image-processor loader does.
    pub fn from_processor_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let flat = dir.join("preprocessor_config.json");
        if flat.is_file() {
            return Self::from_preprocessor_config(flat);
        }
        let nested = dir.join("processor_config.json");
        if !nested.is_file() {
            return Err(config_error(
                dir,
                "holds neither preprocessor_config.json nor processor_config.json (the image \
                 processor's settings)"
                    .into(),
            ));
        }
        let json: Value = config_file::read_json(&nested)?;
        let image = json
            .get("image_processor")
            .filter(|v| v.is_object())
            .ok_or_else(|| {
                config_error(
                    &nested,
                    "has no `image_processor` object (the image processor's settings)".into(),
                )
            })?;
        Self::from_json(image, &nested)
    }

    /// Build from an already parsed config; `path` is only used in error messages.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self, Error> {
        let err = |reason: String| config_error(path, reason);
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
        refuse_unsupported(json, path)?;
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
            image_mean: three_numbers(json, "image_mean", d.image_mean, path)?,
            image_std: three_numbers(json, "image_std", d.image_std, path)?,
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

fn config_error(path: &Path, reason: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        reason,
    }
}

/// Refuse what the port does not implement: a `do_*` step switched off, or a filter other than
/// bicubic.
fn refuse_unsupported(json: &Value, path: &Path) -> Result<(), Error> {
    let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(true);
    for key in ["do_resize", "do_rescale", "do_normalize", "do_convert_rgb"] {
        if !flag(key) {
            return Err(config_error(
                path,
                format!("`{key}: false` is not supported"),
            ));
        }
    }
    // PILImageResampling.BICUBIC = 3: the only filter the Qwen processors use.
    if let Some(r) = json.get("resample").filter(|r| !r.is_null())
        && r.as_u64() != Some(3)
    {
        return Err(config_error(
            path,
            format!("resample {r} is not supported (only 3 = bicubic)"),
        ));
    }
    Ok(())
}

/// `key` as three numbers (one number stands for all three); `default` when absent or null.
fn three_numbers(
    json: &Value,
    key: &str,
    default: [f64; 3],
    path: &Path,
) -> Result<[f64; 3], Error> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            Ok([x; 3])
        }
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut out = [0.0; 3];
            for (o, v) in out.iter_mut().zip(a) {
                *o = v.as_f64().ok_or_else(|| {
                    config_error(path, format!("`{key}` holds a non-number: {v}"))
                })?;
            }
            Ok(out)
        }
        Some(v) => Err(config_error(
            path,
            format!("`{key}` must be 3 numbers: {v}"),
        )),
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

/// Open an image file and convert it as transformers' `convert_to_rgb` does
/// ([`image_io::convert_to_rgb`]).
pub fn open_rgb(path: impl AsRef<Path>) -> Result<RgbImage, Error> {
    let path = path.as_ref();
    let image = image::open(path).map_err(|error| Error::ImageDecode {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(image_io::convert_to_rgb(&image))
}

#[cfg(test)]
mod tests {
    use super::*;

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
