//! diffusers' `VaeImageProcessor` (0.42.1, `image_processor.py`) for PIL inputs, and the sizes the
//! Qwen-Image Edit, Edit-Plus and Layered pipelines ask it for.

use crate::image::{Image, Mode};
use crate::resample::Resample;
use crate::{Error, Result};

/// A preprocessed image: `[1, C, H, W]` f32 (C = the image's channels), row-major, what
/// `VaeImageProcessor.preprocess` returns as a torch tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// The values, `shape` order.
    pub data: Vec<f32>,
    /// `[batch = 1, channels, height, width]`.
    pub shape: [usize; 4],
}

/// The settings of a `VaeImageProcessor` that apply to PIL images (`do_binarize`,
/// `do_convert_grayscale` and `reducing_gap` keep their defaults: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaeImageProcessor {
    /// `vae_scale_factor`: sizes are floored to a multiple of it when none is given.
    pub vae_scale_factor: u32,
    /// `resample`: the PIL filter of `resize` (diffusers' default `"lanczos"`).
    pub resample: Resample,
    /// `do_resize`.
    pub do_resize: bool,
    /// `do_normalize`: map [0, 1] to [-1, 1].
    pub do_normalize: bool,
    /// `do_convert_rgb`: `convert("RGB")` after resizing.
    pub do_convert_rgb: bool,
}

impl Default for VaeImageProcessor {
    /// `VaeImageProcessor()`: scale factor 8, Lanczos, resize and normalise, no RGB conversion.
    fn default() -> Self {
        Self {
            vae_scale_factor: 8,
            resample: Resample::Lanczos,
            do_resize: true,
            do_normalize: true,
            do_convert_rgb: false,
        }
    }
}

impl VaeImageProcessor {
    /// What every Qwen-Image pipeline builds: `VaeImageProcessor(vae_scale_factor=2 ·
    /// vae_scale_factor)` with the VAE's factor 8, so 16; Lanczos; no RGB conversion (an RGBA
    /// input stays 4 channels, which Layered relies on).
    pub fn qwen_image() -> Self {
        Self {
            vae_scale_factor: 16,
            ..Self::default()
        }
    }

    /// `get_default_height_width`: the given size, or the image's, floored to a multiple of
    /// `vae_scale_factor` (applied to given sizes too). Returns `(height, width)` as diffusers.
    pub fn default_height_width(
        &self,
        img: &Image,
        height: Option<u32>,
        width: Option<u32>,
    ) -> (u32, u32) {
        let f = self.vae_scale_factor.max(1);
        let h = height.unwrap_or(img.height());
        let w = width.unwrap_or(img.width());
        (h - h % f, w - w % f)
    }

    /// `resize(image, height, width)` (default mode): PIL's `image.resize((width, height),
    /// resample)`.
    pub fn resize(&self, img: &Image, height: u32, width: u32) -> Result<Image> {
        img.resize(width, height, self.resample)
    }

    /// `preprocess(image, height, width)` for one PIL image: resize (if `do_resize`) to
    /// [`Self::default_height_width`], `convert("RGB")` (if `do_convert_rgb`), `np.array(img) /
    /// 255` in float32, then `2x - 1` (if `do_normalize`), channels first.
    pub fn preprocess(
        &self,
        img: &Image,
        height: Option<u32>,
        width: Option<u32>,
    ) -> Result<Preprocessed> {
        let mut img = std::borrow::Cow::Borrowed(img);
        if self.do_resize {
            let (h, w) = self.default_height_width(&img, height, width);
            img = std::borrow::Cow::Owned(self.resize(&img, h, w)?);
        }
        if self.do_convert_rgb && img.mode() != Mode::Rgb {
            img = std::borrow::Cow::Owned(img.convert(Mode::Rgb)?);
        }
        let (w, h, ch) = (
            img.width() as usize,
            img.height() as usize,
            img.mode().channels(),
        );
        // np.array of an I;16 image is uint16: diffusers divides it by 255 too (values > 1).
        let values: Vec<f32> = match img.as_u16() {
            Some(v) => v.into_iter().map(f32::from).collect(),
            None => img.as_bytes().iter().map(|&v| f32::from(v)).collect(),
        };
        let mut data = vec![0f32; values.len()];
        for (i, &v) in values.iter().enumerate() {
            let (pixel, c) = (i / ch, i % ch);
            // float32 throughout, as numpy: (v / 255) then 2·x − 1, each step rounded to f32.
            let x = v / 255.0;
            data[c * w * h + pixel] = if self.do_normalize { 2.0 * x - 1.0 } else { x };
        }
        Ok(Preprocessed {
            data,
            shape: [1, ch, h, w],
        })
    }
}

/// The Qwen pipelines' `calculate_dimensions(target_area, ratio)`: the width and height of area
/// `target_area` at aspect `ratio` = width / height, each rounded to a multiple of 32 with
/// Python's `round` (half to even). Returns `(width, height)` as the pipelines do.
pub fn calculate_dimensions(target_area: u32, ratio: f64) -> (u32, u32) {
    let width = (f64::from(target_area) * ratio).sqrt();
    let height = width / ratio;
    let snap = |v: f64| ((v / 32.0).round_ties_even() * 32.0) as u32;
    (snap(width), snap(height))
}

/// `image_width / image_height` as Python computes it (one correctly rounded f64 division).
fn aspect(img: &Image) -> f64 {
    f64::from(img.width()) / f64::from(img.height())
}

/// `VAE_IMAGE_SIZE` of the Edit pipelines: the area of the image the VAE encodes.
pub const EDIT_VAE_AREA: u32 = 1024 * 1024;
/// `CONDITION_IMAGE_SIZE` of `QwenImageEditPlusPipeline`: the area of the image the vision tower sees.
pub const EDIT_PLUS_CONDITION_AREA: u32 = 384 * 384;

/// One input image made ready for a Qwen Edit/Layered pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineImage {
    /// The PIL image handed to the text encoder's processor (`prompt_image` / `condition_images`),
    /// still 8-bit; `Qwen2VLImageProcessor` resizes it again on its own.
    pub condition: Image,
    /// The VAE input, `[1, C, H, W]` in [-1, 1] (the pipelines then `unsqueeze(2)` a frame axis).
    pub vae: Preprocessed,
    /// `(width, height)` of the VAE input.
    pub vae_size: (u32, u32),
}

fn vae_scale_floor(v: u32) -> u32 {
    // multiple_of = vae_scale_factor * 2 = 16 in every Qwen pipeline.
    v / 16 * 16
}

/// `QwenImageEditPipeline` (Qwen-Image-Edit): `calculate_dimensions(1024², w / h)`, a Lanczos
/// resize to it (that resized image is also the prompt image), then `preprocess` of the resized
/// image. Pass the image as the pipeline receives it (diffusers' `load_image` gives `RGB`).
pub fn qwen_edit_image(img: &Image) -> Result<PipelineImage> {
    check_nonempty(img)?;
    let p = VaeImageProcessor::qwen_image();
    let (w, h) = calculate_dimensions(EDIT_VAE_AREA, aspect(img));
    let resized = p.resize(img, h, w)?;
    let vae = p.preprocess(&resized, Some(h), Some(w))?;
    let vae_size = (vae.shape[3] as u32, vae.shape[2] as u32);
    Ok(PipelineImage {
        condition: resized,
        vae,
        vae_size,
    })
}

/// `QwenImageEditPlusPipeline` (Edit-2509/2511), one image of the list: the condition image is a
/// Lanczos resize of the *original* to `calculate_dimensions(384², w / h)`, the VAE input is
/// `preprocess` of the *original* at `calculate_dimensions(1024², w / h)`.
pub fn qwen_edit_plus_image(img: &Image) -> Result<PipelineImage> {
    check_nonempty(img)?;
    let p = VaeImageProcessor::qwen_image();
    let ratio = aspect(img);
    let (cw, ch) = calculate_dimensions(EDIT_PLUS_CONDITION_AREA, ratio);
    let (vw, vh) = calculate_dimensions(EDIT_VAE_AREA, ratio);
    let condition = p.resize(img, ch, cw)?;
    let vae = p.preprocess(img, Some(vh), Some(vw))?;
    let vae_size = (vae.shape[3] as u32, vae.shape[2] as u32);
    Ok(PipelineImage {
        condition,
        vae,
        vae_size,
    })
}

/// Output `(width, height)` of the Edit and Edit-Plus pipelines when the caller gives none:
/// `calculate_dimensions(1024², w / h)` of the (last) input image, floored to a multiple of 16.
/// A caller-given size is floored to 16 the same way ([`floor_to_16`]).
pub fn qwen_edit_output_size(last_image: (u32, u32)) -> (u32, u32) {
    let (w, h) = calculate_dimensions(
        EDIT_VAE_AREA,
        f64::from(last_image.0) / f64::from(last_image.1),
    );
    (vae_scale_floor(w), vae_scale_floor(h))
}

/// The pipelines' `x // multiple_of * multiple_of` with `multiple_of` = 16.
pub fn floor_to_16(size: (u32, u32)) -> (u32, u32) {
    (vae_scale_floor(size.0), vae_scale_floor(size.1))
}

/// `QwenImageLayeredPipeline`'s `resolution` bucket (its `assert resolution in [640, 1024]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LayeredResolution {
    /// 640 (the pipeline's default).
    #[default]
    R640,
    /// 1024.
    R1024,
}

impl LayeredResolution {
    /// The bucket for `resolution`, `None` unless 640 or 1024.
    pub fn from_pixels(resolution: u32) -> Option<Self> {
        match resolution {
            640 => Some(Self::R640),
            1024 => Some(Self::R1024),
            _ => None,
        }
    }

    /// The side length.
    pub fn pixels(self) -> u32 {
        match self {
            Self::R640 => 640,
            Self::R1024 => 1024,
        }
    }
}

/// `QwenImageLayeredPipeline`: `calculate_dimensions(resolution², w / h)`, a Lanczos resize (the
/// prompt image for captioning), `preprocess` of that. The pipeline is given an `RGBA` image
/// (`.convert("RGBA")`), and the 4 channels go to the VAE; the output size is `vae_size` floored
/// to 16 (a no-op: it is a multiple of 32).
pub fn qwen_layered_image(img: &Image, resolution: LayeredResolution) -> Result<PipelineImage> {
    check_nonempty(img)?;
    let p = VaeImageProcessor::qwen_image();
    let side = resolution.pixels();
    let (w, h) = calculate_dimensions(side * side, aspect(img));
    let resized = p.resize(img, h, w)?;
    let vae = p.preprocess(&resized, Some(h), Some(w))?;
    let vae_size = (vae.shape[3] as u32, vae.shape[2] as u32);
    Ok(PipelineImage {
        condition: resized,
        vae,
        vae_size,
    })
}

fn check_nonempty(img: &Image) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Invalid(format!(
            "empty {}x{} input image",
            img.width(),
            img.height()
        )));
    }
    Ok(())
}
