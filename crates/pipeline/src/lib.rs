//! QwenImagePipeline in Rust: prompt → text embeddings → flow-match loop over the MMDiT with true
//! CFG → VAE decode → u8 RGB image, as diffusers' `QwenImagePipeline.__call__` does it.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use pipeline::{InitialLatents, QwenImagePipeline, Request};
//!
//! let pipe = QwenImagePipeline::<Flex>::load("testdata/tiny-qwen-image", &Default::default())?;
//! let req = Request::new("Doraemon is eating dorayaki", 64, 64)
//!     .negative_prompt(" ")
//!     .true_cfg_scale(4.0)
//!     .steps(6)
//!     .latents(InitialLatents::Seed(42));
//! let out = pipe.generate(&req, &mut |_| {})?;
//! out.image.save("doraemon.png").ok();
//! # Ok::<(), pipeline::Error>(())
//! ```
//!
//! The stages are the only thing this crate knows: it owns no maths of its own beyond wiring.
//! Each stage is one function (`stages`), composed in diffusers' order by
//! [`QwenImagePipeline::generate`]. Text embeddings are computed once per call; RoPE tables once
//! per (size, text length). [`case`] reads the consistency case file into [`Request`]s.

pub mod case;
mod edit;
mod error;
mod input;
mod kind;
mod latents;
mod layered;
mod limits;
mod request;
mod stages;
mod text_to_image;

pub use edit::QwenImageEditPipeline;
pub use error::Error;
pub use input::InputImage;
pub use kind::{Pipeline, PipelineKind};
pub use latents::{InitialLatents, load_latents_file, seeded_latents, torch_noise};
pub use layered::{
    LayeredInput, LayeredOptions, MAX_LAYERS, QwenImageLayeredPipeline, drop_alpha, needs_caption,
};
pub use limits::{MAX_PIXELS, MAX_SIDE, MAX_STEPS};
pub use request::{Event, Output, Request, StageTimings};
pub use text_to_image::QwenImagePipeline;

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
