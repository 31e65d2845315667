//! `AutoencoderKLQwenImage` for single images — decoder, encoder, or both — plus the pipelines'
//! latent pack / unpack / (de-)normalise and u8 post-processing around it.
//!
//! The released Qwen-Image VAE is the Wan-2.1 causal video VAE. For one frame its causal 3-D
//! convolutions reduce exactly to 2-D convolutions (the last temporal tap), and the temporal
//! up/downsampling is skipped, so this crate runs a plain 2-D decoder and encoder that load the
//! released weights by name and match diffusers 0.42.1 within 1e-4 (f32), for RGB and for the
//! Layered model's RGBA VAE.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use qwen_image_vae::{QwenImageAutoencoder, denormalize, normalize, to_rgb_images};
//!
//! let dev = Default::default();
//! let vae = QwenImageAutoencoder::<Flex>::load("testdata/tiny-qwen-image/vae", &dev)?;
//! let image = burn::tensor::Tensor::<Flex, 5>::zeros([1, 3, 1, 64, 64], &dev); // in [-1, 1]
//! let latents = normalize(vae.encode(image)?, vae.config())?; // what the Edit pipelines pack
//! let sample = vae.decode(denormalize(latents, vae.config())?)?;
//! to_rgb_images(sample)?[0].save("out.png").ok();
//! # Ok::<(), qwen_image_vae::Error>(())
//! ```

mod config;
mod encoder;
mod error;
mod latents;
mod layers;
mod model;
mod postprocess;

pub use config::VaeConfig;
pub use encoder::{QwenImageAutoencoder, QwenImageVaeEncoder};
pub use error::Error;
pub use latents::{denormalize, normalize, pack_latents, unpack_latents};
pub use model::QwenImageVae;
pub use postprocess::{to_rgb_images, to_rgba_images};

/// Compiles the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
