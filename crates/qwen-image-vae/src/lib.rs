//! `AutoencoderKLQwenImage` decoder for single images, plus the pipeline's latent unpack /
//! de-normalise / u8 post-processing around it.
//!
//! The released Qwen-Image VAE is the Wan-2.1 causal video VAE. For one frame its causal 3-D
//! convolutions reduce exactly to 2-D convolutions (the last temporal tap), and the temporal
//! upsampling is skipped, so this crate runs a plain 2-D decoder that loads the released weights
//! by name and matches diffusers 0.42.1 within 1e-4 (f32).
//!
//! ```no_run
//! use burn::backend::Flex;
//! use qwen_image_vae::{QwenImageVae, denormalize, to_rgb_images, unpack_latents};
//!
//! let dev = Default::default();
//! let vae = QwenImageVae::<Flex>::load("testdata/tiny-qwen-image/vae", &dev)?;
//! let packed = burn::tensor::Tensor::<Flex, 3>::zeros([1, 16, 64], &dev); // from the DiT loop
//! let latents = unpack_latents(packed, 64, 64, vae.config().scale_factor())?;
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
pub use postprocess::to_rgb_images;

/// Compiles the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
