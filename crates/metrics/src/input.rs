//! Reading the crate's input files (images, threshold files, the CLIP model's JSON): only
//! regular files, each under a size cap, refused by name before a byte is read otherwise, so
//! that a FIFO cannot block a run and a device such as `/dev/zero` cannot fill the memory.

use std::path::Path;

use crate::error::{Error, Result, parse_json};

/// The largest image file read: 256 MiB (a 8192² RGBA PNG stored without compression; upstream's
/// GT and outputs are a few MiB).
pub const MAX_IMAGE_BYTES: u64 = 256 * 1024 * 1024;

/// The largest JSON file read (a threshold file, a preprocessor or model config): 16 MiB.
pub const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) use config_file::read_regular;

/// A JSON file ([`MAX_JSON_BYTES`] at most): [`Error::Io`] when it cannot be read (naming what
/// it is when it is not a regular file), [`Error::Json`] when it is not JSON.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let bytes = read_regular(path, MAX_JSON_BYTES).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })?;
    parse_json(&text, path)
}

/// Reads an image file (PNG, JPEG or WebP, format from the content; [`MAX_IMAGE_BYTES`] at most)
/// as 8-bit RGB exactly as upstream's `PIL.Image.open(path).convert("RGB")` does: JPEG through
/// libjpeg-turbo as PIL decodes it (the `image` crate's decoder differs from PIL on ~19 % of the
/// values of a q75 4:2:0 file, by up to 3), alpha dropped, not composited. Errors name the file.
pub fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    let read = |error| Error::ImageRead {
        path: path.to_path_buf(),
        error,
    };
    let img = read_image(path)?
        .convert(image_io::Mode::Rgb)
        .map_err(read)?;
    let (w, h) = img.size();
    image::RgbImage::from_raw(w, h, img.into_bytes()).ok_or_else(|| {
        read(image_io::Error::Invalid(format!(
            "{} bytes for an RGB image of {w}x{h}",
            3 * w as usize * h as usize
        )))
    })
}

/// Reads an image file into the mode PIL's `Image.open(path)` gives it (see [`image_io::decode`]),
/// as [`load_rgb`] reads it: a regular file of at most [`MAX_IMAGE_BYTES`]; errors name the file.
pub fn read_image(path: &Path) -> Result<image_io::Image> {
    let read = |error| Error::ImageRead {
        path: path.to_path_buf(),
        error,
    };
    let bytes = read_regular(path, MAX_IMAGE_BYTES).map_err(|error| {
        read(image_io::Error::Io {
            path: path.to_path_buf(),
            error,
        })
    })?;
    image_io::decode(&bytes).map_err(|e| read(named(e, path)))
}

/// A decoder error of bytes read from `path`, naming `path` instead of `<memory>`.
fn named(e: image_io::Error, path: &Path) -> image_io::Error {
    let path = path.to_path_buf();
    match e {
        image_io::Error::Decode { error, .. } => image_io::Error::Decode { path, error },
        image_io::Error::Jpeg { error, .. } => image_io::Error::Jpeg { path, error },
        image_io::Error::Unsupported { what, .. } => image_io::Error::Unsupported { path, what },
        other => other,
    }
}
