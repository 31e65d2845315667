//! CLIP image preprocessing as transformers' `CLIPImageProcessor` (PIL backend) does it: resize the
//! shortest side (8-bit PIL resampling), centre crop, rescale by 1/255, normalise by mean/std.

use std::path::Path;

use image::RgbImage;
use serde_json::{Map, Value};

use image_io::Resample;

use crate::error::{Error, Result, parse_json};

/// How the image is resized before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// Shortest side to this many pixels, the other side `floor(n · long / short)`.
    ShortestEdge(u32),
    /// Exactly this size, ignoring the aspect ratio.
    Exact {
        /// Target height.
        height: u32,
        /// Target width.
        width: u32,
    },
}

/// The preprocessing of a CLIP checkpoint, read from its `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocessor {
    /// Resize step, if enabled.
    pub resize: Option<ResizeTo>,
    /// Resampling filter of the resize step.
    pub resample: Resample,
    /// Centre crop (height, width), if enabled.
    pub crop: Option<(u32, u32)>,
    /// Multiplier applied to the 0–255 values, if enabled (1/255).
    pub rescale: Option<f64>,
    /// Per-channel (mean, std), if normalisation is enabled.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// Preprocessed pixels in CHW order (`pixel_values[0]` of transformers' output).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// `3 × height × width` values, channel-major.
    pub data: Vec<f32>,
}

const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
// Written as transformers' OPENAI_CLIP_STD so that the default and a parsed config round alike.
#[allow(clippy::excessive_precision)]
const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

impl Default for ClipPreprocessor {
    /// `CLIPImageProcessor`'s class defaults, which are also the values of
    /// openai/clip-vit-large-patch14: shortest edge 224 (bicubic), crop 224, OpenAI mean/std.
    fn default() -> Self {
        Self {
            resize: Some(ResizeTo::ShortestEdge(224)),
            resample: Resample::Bicubic,
            crop: Some((224, 224)),
            rescale: Some(1.0 / 255.0),
            normalize: Some((OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)),
        }
    }
}

impl ClipPreprocessor {
    /// Reads a `preprocessor_config.json`, in the current layout (`"size": {"shortest_edge": 224}`,
    /// `"crop_size": {"height": .., "width": ..}`) or the legacy one of the openai repos
    /// (`"size": 224`, `"crop_size": 224`). Missing keys take `CLIPImageProcessor`'s defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&crate::input::read_json(path)?, path)
    }

    /// Parses `preprocessor_config.json` text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        Self::from_value(&parse_json(text, origin)?, origin)
    }

    /// A `preprocessor_config.json` value; `origin` names it in errors.
    fn from_value(json: &Value, origin: &Path) -> Result<Self> {
        let Value::Object(obj) = json else {
            return Err(bad(origin, "(top level)", "must be a JSON object".into()));
        };
        let keys = Keys { obj, origin };
        let defaults = Self::default();
        // Read in the file's documented order, so the first bad key is the one reported.
        Ok(Self {
            resize: match keys.flag("do_resize")? {
                false => None,
                true => keys.resize()?.or(defaults.resize),
            },
            resample: keys.resample()?.unwrap_or(defaults.resample),
            crop: match keys.flag("do_center_crop")? {
                false => None,
                true => keys.crop()?.or(defaults.crop),
            },
            rescale: match keys.flag("do_rescale")? {
                false => None,
                true => keys.number("rescale_factor")?.or(defaults.rescale),
            },
            normalize: match keys.flag("do_normalize")? {
                false => None,
                true => Some((
                    keys.three("image_mean", OPENAI_CLIP_MEAN)?,
                    keys.three("image_std", OPENAI_CLIP_STD)?,
                )),
            },
        })
    }

    /// The target (height, width) of the resize step for an image of this size.
    fn resized_size(&self, width: u32, height: u32) -> Option<(u32, u32)> {
        match self.resize? {
            ResizeTo::Exact { height, width } => Some((height, width)),
            ResizeTo::ShortestEdge(short) => {
                // transformers: new_long = int(short * long / short_side), a float division truncated.
                let long = |l: u32, s: u32| (f64::from(short) * f64::from(l) / f64::from(s)) as u32;
                Some(if width <= height {
                    (long(height, width), short)
                } else {
                    (short, long(width, height))
                })
            }
        }
    }

    /// Runs the whole preprocessing on one RGB image.
    pub fn pixel_values(&self, img: &RgbImage) -> PixelValues {
        let resized;
        let img = match self.resized_size(img.width(), img.height()) {
            // PIL returns a plain copy when the size does not change, whatever the filter.
            Some((h, w)) if (w, h) != img.dimensions() && img.width() > 0 && img.height() > 0 => {
                resized = image_io::resize_like_pil(img, w, h, self.resample);
                &resized
            }
            _ => img,
        };
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (ch, cw) = self
            .crop
            .map_or((h, w), |(ch, cw)| (ch as usize, cw as usize));
        // transformers' center_crop: offset floor((h - ch) / 2) inside a large image; a smaller
        // image is first zero-padded to the crop size with ceil((ch - h) / 2) rows above it.
        let offset = |size: usize, crop: usize| -> isize {
            if size >= crop {
                ((size - crop) / 2) as isize
            } else {
                -((crop - size).div_ceil(2) as isize)
            }
        };
        let (dy, dx) = (offset(h, ch), offset(w, cw));
        let raw = img.as_raw();
        let mut data = vec![0f32; 3 * ch * cw];
        for c in 0..3 {
            let (mean, std) = self.normalize.map_or((0.0, 1.0), |(m, s)| (m[c], s[c]));
            for y in 0..ch {
                for x in 0..cw {
                    let (sy, sx) = (y as isize + dy, x as isize + dx);
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        raw[(sy as usize * w + sx as usize) * 3 + c]
                    } else {
                        0
                    };
                    // rescale in float64 then cast to float32, normalise in float32 (as transformers).
                    let v = match self.rescale {
                        Some(f) => (f64::from(v) * f) as f32,
                        None => f32::from(v),
                    };
                    data[(c * ch + y) * cw + x] = if self.normalize.is_some() {
                        (v - mean) / std
                    } else {
                        v
                    };
                }
            }
        }
        PixelValues {
            height: ch,
            width: cw,
            data,
        }
    }
}

/// A [`Error::BadValue`] about `key` of the file `origin`.
fn bad(origin: &Path, key: &str, problem: String) -> Error {
    Error::BadValue {
        path: origin.to_path_buf(),
        key: key.to_string(),
        problem,
    }
}

/// The keys of a `preprocessor_config.json` object, each read with its own check.
struct Keys<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a Path,
}

impl Keys<'_> {
    fn bad(&self, key: &str, problem: String) -> Error {
        bad(self.origin, key, problem)
    }

    /// A `do_*` switch; every one defaults to true for CLIP.
    fn flag(&self, key: &str) -> Result<bool> {
        match self.obj.get(key) {
            None => Ok(true),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(key, format!("must be true or false, found {v}"))),
        }
    }

    /// A side length in pixels.
    fn side(&self, key: &str, v: &Value) -> Result<u32> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| self.bad(key, format!("must be a positive integer, found {v}")))
    }

    /// `{"height": .., "width": ..}` of the object `o` (at `key`), if it has both.
    fn height_width(&self, key: &str, o: &Map<String, Value>) -> Result<Option<(u32, u32)>> {
        match (o.get("height"), o.get("width")) {
            (Some(h), Some(w)) => Ok(Some((self.side(key, h)?, self.side(key, w)?))),
            _ => Ok(None),
        }
    }

    /// `size`: an integer (shortest edge), `{"shortest_edge": n}` or `{"height", "width"}`.
    fn resize(&self) -> Result<Option<ResizeTo>> {
        let Some(size) = self.obj.get("size") else {
            return Ok(None);
        };
        // An int means "shortest edge" here, since CLIPImageProcessor sets default_to_square=False.
        Ok(Some(match size {
            Value::Number(_) => ResizeTo::ShortestEdge(self.side("size", size)?),
            Value::Object(o) => match (o.get("shortest_edge"), self.height_width("size", o)?) {
                (Some(s), _) => ResizeTo::ShortestEdge(self.side("size.shortest_edge", s)?),
                (None, Some((height, width))) => ResizeTo::Exact { height, width },
                (None, None) => {
                    return Err(self.bad(
                        "size",
                        format!("needs shortest_edge or height and width, found {size}"),
                    ));
                }
            },
            _ => {
                return Err(self.bad(
                    "size",
                    format!("must be an integer or an object, found {size}"),
                ));
            }
        }))
    }

    /// `resample`: a PIL filter number.
    fn resample(&self) -> Result<Option<Resample>> {
        let Some(r) = self.obj.get("resample") else {
            return Ok(None);
        };
        r.as_u64()
            .and_then(Resample::from_pil)
            .map(Some)
            .ok_or_else(|| {
                self.bad(
                    "resample",
                    format!("must be a PIL convolution filter number 1-5, found {r}"),
                )
            })
    }

    /// `crop_size`: an integer (square) or `{"height", "width"}`.
    fn crop(&self) -> Result<Option<(u32, u32)>> {
        let Some(c) = self.obj.get("crop_size") else {
            return Ok(None);
        };
        Ok(Some(match c {
            Value::Number(_) => (self.side("crop_size", c)?, self.side("crop_size", c)?),
            Value::Object(o) => self.height_width("crop_size", o)?.ok_or_else(|| {
                self.bad("crop_size", format!("needs height and width, found {c}"))
            })?,
            _ => {
                return Err(self.bad(
                    "crop_size",
                    format!("must be an integer or an object, found {c}"),
                ));
            }
        }))
    }

    /// A number, if present.
    fn number(&self, key: &str) -> Result<Option<f64>> {
        let Some(f) = self.obj.get(key) else {
            return Ok(None);
        };
        f.as_f64()
            .map(Some)
            .ok_or_else(|| self.bad(key, format!("must be a number, found {f}")))
    }

    /// A list of three numbers (per-channel mean or std), `default` when absent.
    fn three(&self, key: &str, default: [f32; 3]) -> Result<[f32; 3]> {
        let Some(v) = self.obj.get(key) else {
            return Ok(default);
        };
        let values: Option<Vec<f32>> = v.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_f64().map(|x| x as f32))
                .collect()
        });
        match values {
            Some(values) if values.len() == 3 => Ok([values[0], values[1], values[2]]),
            _ => Err(self.bad(key, format!("must be a list of 3 numbers, found {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_current_layouts_mean_the_same() {
        let legacy = r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true,
            "do_resize": true, "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}"#;
        let current = r#"{"crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 224},
            "rescale_factor": 0.00392156862745098, "resample": 3}"#;
        let p = Path::new("p.json");
        assert_eq!(
            ClipPreprocessor::parse(legacy, p).unwrap(),
            ClipPreprocessor::default()
        );
        assert_eq!(
            ClipPreprocessor::parse(current, p).unwrap(),
            ClipPreprocessor::default()
        );
    }

    #[test]
    fn bad_values_name_the_key_and_file() {
        let e = ClipPreprocessor::parse(r#"{"resample": 9}"#, Path::new("x/pp.json")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("x/pp.json") && msg.contains("resample"),
            "{msg}"
        );
        let e = ClipPreprocessor::parse("{", Path::new("x/pp.json")).unwrap_err();
        assert!(e.to_string().contains("x/pp.json"));
    }

    #[test]
    fn shortest_edge_truncates_like_transformers() {
        let p = ClipPreprocessor::default();
        assert_eq!(p.resized_size(301, 241), Some((224, 279))); // int(224 * 301 / 241) = 279
        assert_eq!(p.resized_size(100, 150), Some((336, 224)));
        assert_eq!(p.resized_size(224, 224), Some((224, 224)));
    }

    #[test]
    fn small_images_are_zero_padded_around_the_centre() {
        let p = ClipPreprocessor {
            resize: None,
            rescale: None,
            normalize: None,
            crop: Some((4, 5)),
            ..Default::default()
        };
        let img = RgbImage::from_pixel(2, 1, image::Rgb([9, 9, 9]));
        let pv = p.pixel_values(&img);
        // ceil((4-1)/2) = 2 rows above, ceil((5-2)/2) = 2 columns left.
        let plane: Vec<f32> = pv.data[..20].to_vec();
        let mut want = vec![0f32; 20];
        want[2 * 5 + 2] = 9.0;
        want[2 * 5 + 3] = 9.0;
        assert_eq!(plane, want);
    }
}
