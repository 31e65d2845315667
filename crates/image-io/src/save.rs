//! Images as files: PNG and WebP through the `image` crate, JPEG as PIL's `save(quality=…)`
//! writes it (libjpeg-turbo, [`crate::encode_jpeg`]); one encoder for `cargo xtask generate --out
//! x.png|x.jpg|x.webp` and the server's answers, so that both give the same bytes for the same
//! picture; and the format of bytes from their signature.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

/// The file format of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG (lossless).
    Png,
    /// JPEG, as PIL writes it.
    Jpeg,
    /// WebP (lossless with the `image` crate's encoder).
    Webp,
}

impl OutputFormat {
    /// `png`, `jpeg` (or `jpg`) and `webp`, any case; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// The file extension (`jpg` for JPEG, as SGLang names its files).
    pub fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Webp => ImageFormat::WebP,
        }
    }
}

/// PIL's default JPEG quality, which SGLang's `output_quality="default"` also means.
pub const DEFAULT_JPEG_QUALITY: u8 = 75;

/// Encode an RGB image; `quality` (1..=100) is used by JPEG only (PNG is lossless, and the
/// `image` crate's WebP encoder is lossless).
pub fn encode_rgb(img: &RgbImage, format: OutputFormat, quality: u8) -> Result<Vec<u8>, String> {
    if format == OutputFormat::Jpeg {
        let options = crate::JpegOptions {
            quality: quality.clamp(1, 100),
            ..crate::JpegOptions::default()
        };
        return crate::encode_jpeg(&crate::Image::from(img.clone()), options)
            .map_err(|e| e.to_string());
    }
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), format.image_format())
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Encode an RGBA image (a Layered layer): PNG and WebP keep the alpha; JPEG has none, so the
/// alpha is dropped first (PIL's `convert("RGB")`).
pub fn encode_rgba(img: &RgbaImage, format: OutputFormat, quality: u8) -> Result<Vec<u8>, String> {
    if format == OutputFormat::Jpeg {
        let rgb = RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let [r, g, b, _] = img.get_pixel(x, y).0;
            image::Rgb([r, g, b])
        });
        return encode_rgb(&rgb, format, quality);
    }
    let mut bytes = Vec::new();
    DynamicImage::ImageRgba8(img.clone())
        .write_to(&mut Cursor::new(&mut bytes), format.image_format())
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// The format of encoded bytes from their signature (PNG, JPEG's SOI marker, RIFF…WEBP).
pub fn format_of_bytes(bytes: &[u8]) -> Option<OutputFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(OutputFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(OutputFormat::Jpeg)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(OutputFormat::Webp)
    } else {
        None
    }
}

/// The format of a file path's extension (`.png`, `.jpg`/`.jpeg`, `.webp`).
pub fn format_of_path(path: &std::path::Path) -> Option<OutputFormat> {
    OutputFormat::parse(path.extension()?.to_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_decodes_back() {
        let img = RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 9, y as u8 * 20, 7]));
        for f in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            let bytes = encode_rgb(&img, f, 75).unwrap();
            let back = image::load_from_memory(&bytes).unwrap();
            assert_eq!((back.width(), back.height()), (16, 8), "{f:?}");
        }
        let rgba = RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 4]));
        let png = encode_rgba(&rgba, OutputFormat::Png, 75).unwrap();
        assert_eq!(image::load_from_memory(&png).unwrap().to_rgba8(), rgba);
        assert!(encode_rgba(&rgba, OutputFormat::Jpeg, 75).is_ok());
        assert_eq!(OutputFormat::parse("JPG"), Some(OutputFormat::Jpeg));
        assert_eq!(OutputFormat::parse("gif"), None);
        for f in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            assert_eq!(format_of_bytes(&encode_rgb(&img, f, 75).unwrap()), Some(f));
        }
        assert_eq!(format_of_bytes(b"<html>"), None);
    }
}
