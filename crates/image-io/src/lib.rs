//! Images exactly as PIL, diffusers' and transformers' image processors see them (the README
//! below is the crate's documentation).

#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod convert;
mod error;
mod image;
mod jpeg;
mod load;
mod png_crc;
mod resample;
mod rgb;
mod save;
mod torch_resize;
mod vae;

pub use error::{Error, Result};
pub use image::{Image, Mode};
pub use jpeg::{JpegOptions, Subsampling, decode_jpeg, encode_jpeg, jpeg_round_trip};
pub use load::{decode, decode_from, load};
pub use resample::{Resample, resize_like_pil};
pub use rgb::convert_to_rgb;
pub use save::{
    DEFAULT_JPEG_QUALITY, OutputFormat, encode_rgb, encode_rgba, format_of_bytes, format_of_path,
};
pub use torch_resize::resize_bicubic_antialias;
pub use vae::{
    EDIT_PLUS_CONDITION_AREA, EDIT_VAE_AREA, LayeredResolution, PipelineImage, Preprocessed,
    VaeImageProcessor, calculate_dimensions, floor_to_16, qwen_edit_image, qwen_edit_output_size,
    qwen_edit_plus_image, qwen_layered_image,
};
