//! The image type: pixels in one of PIL's modes, laid out as PIL's `np.asarray(img)` shows them.

use crate::{Error, Result};

/// A PIL image mode (`Image.mode`). Only the modes that PNG, JPEG and WebP files open as in PIL
/// and that the pipelines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `"L"`: 8-bit grey.
    L,
    /// `"LA"`: 8-bit grey + alpha.
    La,
    /// `"RGB"`: 8-bit RGB.
    Rgb,
    /// `"RGBA"`: 8-bit RGB + alpha (not premultiplied).
    Rgba,
    /// `"I;16"`: 16-bit grey, what PIL opens a 16-bit grey PNG as.
    I16,
}

impl Mode {
    /// PIL's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::L => "L",
            Mode::La => "LA",
            Mode::Rgb => "RGB",
            Mode::Rgba => "RGBA",
            Mode::I16 => "I;16",
        }
    }

    /// Values per pixel (`np.asarray(img).shape[2]`, 1 for `L` and `I;16`).
    pub fn channels(self) -> usize {
        match self {
            Mode::L | Mode::I16 => 1,
            Mode::La => 2,
            Mode::Rgb => 3,
            Mode::Rgba => 4,
        }
    }

    /// Bytes per value: 2 for `I;16`, else 1.
    pub fn bytes_per_value(self) -> usize {
        if self == Mode::I16 { 2 } else { 1 }
    }

    /// Whether the mode has an alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(self, Mode::La | Mode::Rgba)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An image as PIL holds it: a mode, a size and row-major interleaved pixels (`I;16` values as
/// little-endian `u16` byte pairs, PIL's in-memory `I;16`).
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    mode: Mode,
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} {}x{})", self.mode, self.width, self.height)
    }
}

impl Image {
    /// Wraps pixel data; the length must be `width · height · channels · bytes_per_value`.
    pub fn from_raw(mode: Mode, width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let want = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(mode.channels() * mode.bytes_per_value()));
        if want != Some(data.len()) {
            return Err(Error::Invalid(format!(
                "{} bytes for a {mode} image of {width}x{height}",
                data.len()
            )));
        }
        Ok(Self {
            mode,
            width,
            height,
            data,
        })
    }

    /// A 16-bit grey (`I;16`) image from its values.
    pub fn from_u16(width: u32, height: u32, values: &[u16]) -> Result<Self> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::from_raw(Mode::I16, width, height, data)
    }

    /// The image's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// `(width, height)`, as PIL's `Image.size`.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The pixel bytes (see the type's docs for the layout).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Takes the pixel bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The values of an `I;16` image; `None` for other modes.
    pub fn as_u16(&self) -> Option<Vec<u16>> {
        (self.mode == Mode::I16).then(|| {
            self.data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect()
        })
    }
}

impl From<image::RgbImage> for Image {
    fn from(img: image::RgbImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            mode: Mode::Rgb,
            width,
            height,
            data: img.into_raw(),
        }
    }
}

impl From<image::RgbaImage> for Image {
    fn from(img: image::RgbaImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            mode: Mode::Rgba,
            width,
            height,
            data: img.into_raw(),
        }
    }
}

impl From<image::GrayImage> for Image {
    fn from(img: image::GrayImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            mode: Mode::L,
            width,
            height,
            data: img.into_raw(),
        }
    }
}

impl Image {
    /// As an `image::RgbImage` if the mode is `RGB` (no conversion; see [`Image::convert`]).
    pub fn to_rgb_image(&self) -> Option<image::RgbImage> {
        (self.mode == Mode::Rgb)
            .then(|| image::RgbImage::from_raw(self.width, self.height, self.data.clone()))
            .flatten()
    }

    /// As an `image::RgbaImage` if the mode is `RGBA`.
    pub fn to_rgba_image(&self) -> Option<image::RgbaImage> {
        (self.mode == Mode::Rgba)
            .then(|| image::RgbaImage::from_raw(self.width, self.height, self.data.clone()))
            .flatten()
    }
}
