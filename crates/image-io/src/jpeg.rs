//! JPEG exactly as PIL writes and reads it, through libjpeg-turbo (the library in PIL's wheels).
//!
//! * Encode = `img.save(f, "JPEG", quality=q)`: baseline Huffman with the standard tables (no
//!   `optimize`, not progressive), the IJG quality-scaled Annex K quantisation tables, the accurate
//!   integer DCT (ISLOW), 4:2:0 by default, a JFIF APP0 with density 1:1 and no other marker.
//! * Decode = `Image.open(f)` + `load()`: the ISLOW inverse DCT and "fancy" (triangle) chroma
//!   upsampling, YCbCr → RGB with libjpeg's fixed-point tables.
//!
//! TurboJPEG's v3 API defaults are exactly those (`TJPARAM_FASTDCT` = 0, `TJPARAM_FASTUPSAMPLE` = 0,
//! `TJPARAM_OPTIMIZE` = 0, `TJPARAM_PROGRESSIVE` = 0), and it calls the same libjpeg code PIL calls.
//! The tests prove it on files PIL made: decoded pixels equal, encoded bytes identical.

use std::path::Path;

use turbojpeg::{Compressor, Decompressor, PixelFormat, Subsamp};

use crate::image::{Image, Mode};
use crate::{Error, Result};

/// Chroma subsampling of an encode, named as PIL's `subsampling=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Subsampling {
    /// `subsampling=0`: none.
    S444,
    /// `subsampling=1`: half horizontal resolution.
    S422,
    /// `subsampling=2` and PIL's default (libjpeg's `jpeg_set_defaults`): half in both directions.
    #[default]
    S420,
}

/// How to encode; [`JpegOptions::default`] is PIL's `save(format="JPEG")` with no options
/// (quality 75, 4:2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JpegOptions {
    /// IJG quality, 1..=100 (PIL's `quality=`).
    pub quality: u8,
    /// Chroma subsampling (ignored for `L` images).
    pub subsampling: Subsampling,
}

impl Default for JpegOptions {
    fn default() -> Self {
        Self {
            quality: 75,
            subsampling: Subsampling::S420,
        }
    }
}

impl JpegOptions {
    /// PIL's `save(quality=quality)` with the default 4:2:0.
    pub fn quality(quality: u8) -> Self {
        Self {
            quality,
            ..Self::default()
        }
    }
}

const MEMORY: &str = "<memory>";

fn tj_err(path: &Path) -> impl Fn(turbojpeg::Error) -> Error + '_ {
    move |error| Error::Jpeg {
        path: path.to_path_buf(),
        error,
    }
}

/// Encodes an `RGB` or `L` image as PIL's `save(format="JPEG", quality=…, subsampling=…)` does,
/// byte for byte. Other modes are an error, as in PIL ("cannot write mode RGBA as JPEG").
pub fn encode_jpeg(img: &Image, options: JpegOptions) -> Result<Vec<u8>> {
    if !(1..=100).contains(&options.quality) {
        return Err(Error::Invalid(format!(
            "JPEG quality {} is outside 1..=100",
            options.quality
        )));
    }
    let (format, subsamp) = match img.mode() {
        Mode::Rgb => (
            PixelFormat::RGB,
            match options.subsampling {
                Subsampling::S444 => Subsamp::None,
                Subsampling::S422 => Subsamp::Sub2x1,
                Subsampling::S420 => Subsamp::Sub2x2,
            },
        ),
        Mode::L => (PixelFormat::GRAY, Subsamp::Gray),
        other => {
            return Err(Error::Mode {
                op: "JPEG encode",
                mode: other.name(),
            });
        }
    };
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Invalid("JPEG encode of an empty image".into()));
    }
    let err = tj_err(Path::new(MEMORY));
    let mut compressor = Compressor::new().map_err(&err)?;
    compressor
        .set_quality(i32::from(options.quality))
        .map_err(&err)?;
    compressor.set_subsamp(subsamp).map_err(&err)?;
    // PIL's defaults, stated rather than inherited: Huffman tables from the standard, baseline.
    compressor.set_optimize(false).map_err(&err)?;
    compressor.set_progressive(false).map_err(&err)?;
    let width = img.width() as usize;
    let image = turbojpeg::Image {
        pixels: img.as_bytes(),
        width,
        pitch: width * format.size(),
        height: img.height() as usize,
        format,
    };
    compressor.compress_to_vec(image).map_err(&err)
}

/// PIL's decompression-bomb error threshold: `2 × Image.MAX_IMAGE_PIXELS` (2 × 89 478 485).
const MAX_PIXELS: usize = 2 * 89_478_485;

/// Decodes JPEG bytes as PIL's `Image.open` + `load()` does: `L` for a greyscale file, `RGB` for
/// YCbCr and RGB files. CMYK/YCCK files (PIL mode `CMYK`) are [`Error::Unsupported`].
pub fn decode_jpeg(bytes: &[u8]) -> Result<Image> {
    decode_jpeg_named(bytes, Path::new(MEMORY))
}

/// [`decode_jpeg`] with the file name to put in errors.
pub(crate) fn decode_jpeg_named(bytes: &[u8], path: &Path) -> Result<Image> {
    let err = tj_err(path);
    let mut decompressor = Decompressor::new().map_err(&err)?;
    let header = decompressor.read_header(bytes).map_err(&err)?;
    let (mode, format) = match header.colorspace {
        turbojpeg::Colorspace::Gray => (Mode::L, PixelFormat::GRAY),
        turbojpeg::Colorspace::YCbCr | turbojpeg::Colorspace::RGB => (Mode::Rgb, PixelFormat::RGB),
        other => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("JPEG colour space {other:?} (PIL opens it as CMYK)"),
            });
        }
    };
    // PIL refuses more than twice `Image.MAX_IMAGE_PIXELS` (DecompressionBombError); so does
    // this, before allocating what a hostile header claims (up to 65535² pixels).
    let pixel_count = header.width.checked_mul(header.height);
    if pixel_count.is_none_or(|n| n > MAX_PIXELS) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "JPEG of {}×{} pixels, more than PIL's decompression-bomb limit of {MAX_PIXELS}",
                header.width, header.height
            ),
        });
    }
    let pitch = header.width * format.size();
    let mut pixels = vec![0u8; pitch * header.height];
    let out = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format,
    };
    decompressor.decompress(bytes, out).map_err(&err)?;
    let size = |v: usize| u32::try_from(v).map_err(|_| Error::Invalid(format!("JPEG size {v}")));
    Image::from_raw(mode, size(header.width)?, size(header.height)?, pixels)
}

/// What a JPEG consumer sees of `img`: encoded as PIL would (`options`) and decoded back as PIL
/// would. Upstream's consistency check compares images after exactly this round trip.
pub fn jpeg_round_trip(img: &Image, options: JpegOptions) -> Result<Image> {
    decode_jpeg(&encode_jpeg(img, options)?)
}
