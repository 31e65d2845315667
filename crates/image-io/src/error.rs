//! [`Error`]: what reading, converting, resizing or JPEG-coding an image can fail with.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. A file-level error names the file.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read from disk.
    #[error("cannot read image {path}: {error}")]
    Io {
        /// The image file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },

    /// PNG or WebP content the `image` crate could not decode.
    #[error("cannot decode image {path}: {error}")]
    Decode {
        /// The image file (`<memory>` for bytes given directly).
        path: PathBuf,
        /// What the decoder said.
        error: image::ImageError,
    },

    /// JPEG content libjpeg-turbo could not decode or encode.
    #[error("JPEG error in {path}: {error}")]
    Jpeg {
        /// The image file (`<memory>` for bytes given directly or an encode).
        path: PathBuf,
        /// What libjpeg-turbo said.
        error: turbojpeg::Error,
    },

    /// A file whose content is valid but holds something PIL would give a mode this crate does not
    /// model (CMYK JPEG, 16-bit RGB WebP, ...).
    #[error("{path}: unsupported image: {what}")]
    Unsupported {
        /// The image file.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },

    /// An operation PIL does not define for this mode (e.g. a convolution resize of `I;16` here,
    /// or a JPEG of an RGBA image, which PIL refuses too).
    #[error("{op} is not supported for mode {mode}")]
    Mode {
        /// The operation.
        op: &'static str,
        /// The image's PIL mode name.
        mode: &'static str,
    },

    /// A size or parameter out of range (zero width, buffer of the wrong length, quality 0, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
