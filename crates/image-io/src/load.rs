//! Reading files into the mode PIL's `Image.open` gives them.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::image::{Image, Mode};
use crate::jpeg::decode_jpeg_named;
use crate::png_crc;
use crate::{Error, Result};

/// Reads a PNG, JPEG or WebP file (format from the content, not the name) into the mode PIL's
/// `Image.open(path)` gives it; see [`decode`]. Errors name the file.
pub fn load(path: impl AsRef<Path>) -> Result<Image> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    decode_named(&bytes, path)
}

/// Decodes PNG, JPEG or WebP bytes as PIL opens them:
///
/// * JPEG through libjpeg-turbo exactly as PIL ([`crate::decode_jpeg`]): `L` or `RGB`.
/// * PNG: chunk CRCs checked where PIL checks them (before the image data; a bad `IDAT` or `IEND`
///   CRC opens, as in PIL); 8-bit grey `L`, grey + alpha `LA`, `RGB`, `RGBA`; 16-bit grey `I;16`; 16-bit colour
///   keeps the high byte of each value, and 16-bit grey + alpha opens as `RGBA`, as in PIL. Sub-byte
///   grey is scaled to 8 bits. Palette files come back already expanded (`RGB`, or `RGBA` with a
///   `tRNS` chunk): what PIL's `convert("RGB")`/`convert("RGBA")` of its `P` image gives.
/// * WebP: `RGB`, or `RGBA` with alpha.
pub fn decode(bytes: &[u8]) -> Result<Image> {
    decode_named(bytes, Path::new("<memory>"))
}

/// [`decode`] for bytes that came from `origin` (a URL, a server's answer), which errors name
/// instead of `<memory>`.
pub fn decode_from(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Image> {
    decode_named(bytes, origin.as_ref())
}

fn decode_named(bytes: &[u8], path: &Path) -> Result<Image> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg_named(bytes, path);
    }
    let decode_err = |error| Error::Decode {
        path: path.to_path_buf(),
        error,
    };
    // PIL skips the CRCs of the image data and what follows it: so does this decode.
    let bytes = png_crc::as_pil_reads(bytes).map_err(|why| {
        decode_err(image::ImageError::Decoding(
            image::error::DecodingError::new(image::ImageFormat::Png.into(), why),
        ))
    })?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&*bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    let img = reader.decode().map_err(decode_err)?;
    from_dynamic(img, path.to_path_buf())
}

/// PIL's unpacker for 16-bit PNG colour (`RGB;16B`, `LA;16B`, ...) keeps the most significant byte.
fn high_bytes(values: &[u16]) -> Vec<u8> {
    values.iter().map(|v| (v >> 8) as u8).collect()
}

fn from_dynamic(img: DynamicImage, path: PathBuf) -> Result<Image> {
    let (w, h) = (img.width(), img.height());
    let (mode, data) = match img {
        DynamicImage::ImageLuma8(i) => (Mode::L, i.into_raw()),
        DynamicImage::ImageLumaA8(i) => (Mode::La, i.into_raw()),
        DynamicImage::ImageRgb8(i) => (Mode::Rgb, i.into_raw()),
        DynamicImage::ImageRgba8(i) => (Mode::Rgba, i.into_raw()),
        DynamicImage::ImageLuma16(i) => {
            return Image::from_u16(w, h, i.as_raw());
        }
        DynamicImage::ImageLumaA16(i) => {
            // PIL: mode RGBA through the "LA;16B" unpacker (grey replicated, high bytes).
            let la = high_bytes(i.as_raw());
            let rgba = la
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            (Mode::Rgba, rgba)
        }
        DynamicImage::ImageRgb16(i) => (Mode::Rgb, high_bytes(i.as_raw())),
        DynamicImage::ImageRgba16(i) => (Mode::Rgba, high_bytes(i.as_raw())),
        other => {
            return Err(Error::Unsupported {
                path,
                what: format!("pixel type {:?}", other.color()),
            });
        }
    };
    Image::from_raw(mode, w, h, data)
}
