//! [`InputImage`]: an Edit request's picture, read as diffusers' `load_image` reads it.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage, metadata::Orientation};
use image_io::{Image, Mode};

use crate::error::Error;

/// One input image of an Edit / Edit-Plus request, as the pipelines receive it from
/// `diffusers.utils.load_image`: EXIF orientation applied (`ImageOps.exif_transpose`), then PIL's
/// `convert("RGB")` (alpha dropped, not composited; grey replicated), so the pixels are RGB
/// whatever the file held. PNG, JPEG (decoded by libjpeg-turbo as PIL does) and WebP.
#[derive(Debug, Clone)]
pub struct InputImage {
    image: Image,
    /// The picture as decoded, in its own mode (the Layered pipeline converts it to RGBA).
    original: Image,
    /// The EXIF orientation applied to `image` (and to `original` when it is converted).
    orientation: Orientation,
    source: String,
}

impl InputImage {
    /// Read a file; errors name it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        Self::load_as(path, path.display().to_string())
    }

    /// Read a file that stands for `source` (e.g. the cached download of a URL): errors and
    /// reports name `source`.
    pub fn load_as(path: impl AsRef<Path>, source: impl Into<String>) -> Result<Self, Error> {
        let source = source.into();
        let bytes = std::fs::read(path.as_ref()).map_err(|e| Error::InputImage {
            image: source.clone(),
            reason: format!("cannot read {}: {e}", path.as_ref().display()),
        })?;
        Self::decode(&bytes, source)
    }

    /// Decode PNG, JPEG or WebP bytes; `source` names the image in errors and reports.
    pub fn decode(bytes: &[u8], source: impl Into<String>) -> Result<Self, Error> {
        let source = source.into();
        let image = image_io::decode(bytes).map_err(|e| Error::InputImage {
            image: source.clone(),
            reason: decode_cause(e),
        })?;
        let rgb = Self::from_image(image, source)?;
        match exif_orientation(bytes) {
            Orientation::NoTransforms => Ok(rgb),
            o => {
                // A pixel permutation: it commutes with the per-pixel RGB conversion.
                let mut img = DynamicImage::ImageRgb8(rgb.to_rgb());
                img.apply_orientation(o);
                Ok(Self {
                    image: Image::from(img.to_rgb8()),
                    orientation: o,
                    ..rgb
                })
            }
        }
    }

    /// An image already in memory (as PIL would hold it), converted to RGB as `load_image` does.
    /// No EXIF orientation is applied: the pixels are taken as they are.
    pub fn from_image(image: Image, source: impl Into<String>) -> Result<Self, Error> {
        let source = source.into();
        let original = image.clone();
        let image = match image.mode() {
            Mode::Rgb => image,
            _ => image.convert(Mode::Rgb).map_err(|e| Error::InputImage {
                image: source.clone(),
                reason: e.to_string(),
            })?,
        };
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::InputImage {
                image: source,
                reason: "the image is empty".into(),
            });
        }
        Ok(Self {
            image,
            original,
            orientation: Orientation::NoTransforms,
            source,
        })
    }

    /// The RGB picture.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The picture as the Layered pipeline takes it: PIL's `convert("RGBA")` of the image as
    /// decoded (an RGB or grey file gets alpha 255, an RGBA one keeps its alpha), with the same
    /// EXIF orientation as [`Self::image`].
    pub fn rgba(&self) -> Result<Image, Error> {
        let fail = |reason: String| Error::InputImage {
            image: self.source.clone(),
            reason,
        };
        let rgba = match self.original.mode() {
            Mode::Rgba => self.original.clone(),
            _ => self
                .original
                .convert(Mode::Rgba)
                .map_err(|e| fail(e.to_string()))?,
        };
        if self.orientation == Orientation::NoTransforms {
            return Ok(rgba);
        }
        // A pixel permutation: it commutes with the per-pixel RGBA conversion.
        let pixels = rgba
            .to_rgba_image()
            .ok_or_else(|| fail("the RGBA conversion gave another mode".into()))?;
        let mut img = DynamicImage::ImageRgba8(pixels);
        img.apply_orientation(self.orientation);
        Ok(Image::from(img.to_rgba8()))
    }

    /// Where it came from (a path or a URL), for messages and reports.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        self.image.size()
    }

    /// The picture as an `image::RgbImage` (e.g. for a report).
    pub fn to_rgb(&self) -> RgbImage {
        let (w, h) = self.image.size();
        // Always RGB by construction; the fallback is unreachable but not a panic.
        self.image
            .to_rgb_image()
            .unwrap_or_else(|| RgbImage::new(w, h))
    }
}

/// The EXIF orientation PIL's `exif_transpose` would apply; none when the file has no EXIF or
/// its format is one the `image` crate cannot read the metadata of.
fn exif_orientation(bytes: &[u8]) -> Orientation {
    let read = || -> Option<Orientation> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()?;
        reader.into_decoder().ok()?.orientation().ok()
    };
    read().unwrap_or(Orientation::NoTransforms)
}

/// What the decoder said about bytes given directly, without the `<memory>` it names them by:
/// the error names the image itself.
fn decode_cause(e: image_io::Error) -> String {
    match e {
        image_io::Error::Decode { error, .. } => format!("cannot decode: {error}"),
        image_io::Error::Jpeg { error, .. } => format!("JPEG error: {error}"),
        image_io::Error::Unsupported { what, .. } => format!("unsupported image: {what}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_and_grey_become_rgb_as_pil_converts() {
        let rgba = Image::from_raw(Mode::Rgba, 2, 1, vec![10, 20, 30, 0, 40, 50, 60, 255]).unwrap();
        let img = InputImage::from_image(rgba, "x").unwrap();
        assert_eq!(img.image().as_bytes(), &[10, 20, 30, 40, 50, 60]);
        let grey = Image::from_raw(Mode::L, 2, 1, vec![7, 200]).unwrap();
        let img = InputImage::from_image(grey, "y").unwrap();
        assert_eq!(img.image().as_bytes(), &[7, 7, 7, 200, 200, 200]);
    }

    #[test]
    fn a_bad_file_names_itself() {
        let e = InputImage::decode(b"not an image", "https://example.com/cat.png")
            .unwrap_err()
            .to_string();
        assert!(e.contains("https://example.com/cat.png"), "{e}");
        let e = InputImage::load("/no/such/file.png")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/file.png"), "{e}");
    }
}
