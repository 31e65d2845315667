//! QwenImagePipeline in Rust: prompt → text embeddings → flow-match loop over the MMDiT with true
//! CFG → VAE decode → u8 RGB image, as diffusers' `QwenImagePipeline.__call__` does it.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use pipeline::{InitialLatents, Pipeline, Request};
//!
//! let pipe = Pipeline::<Flex>::load("testdata/tiny-qwen-image", &Default::default())?;
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
//! [`Pipeline::load`] is the one way in: it reads the folder's `_class_name`, loads the parts
//! every kind shares once (prompt encoder, transformer, scheduler, VAE scale factor, device,
//! cancel flag) and then the kind's own ([`QwenImagePipeline`], [`QwenImageEditPipeline`],
//! [`QwenImageLayeredPipeline`]; each taken out of a [`Pipeline`] with `try_from`).
//!
//! The stages are the only thing this crate knows: it owns no maths of its own beyond wiring.
//! Each stage is one function (`stages`), composed in diffusers' order by each pipeline's
//! `generate`. Text embeddings are computed once per call; RoPE tables once
//! per (size, text length). The consistency case file is the `cases` crate's, which maps
//! each case onto a [`Request`].

mod any;
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

pub use any::Pipeline;
pub use edit::QwenImageEditPipeline;
pub use error::Error;
pub use input::InputImage;
pub use kind::PipelineKind;
pub use latents::{InitialLatents, load_latents_file, seeded_latents, torch_noise};
pub use layered::{LayeredInput, MAX_LAYERS, QwenImageLayeredPipeline, drop_alpha, needs_caption};
pub use limits::{MAX_PIXELS, MAX_SIDE, MAX_STEPS, Names as RequestFieldNames};
pub use request::{Event, LayeredOptions, Output, Request, StageTimings};
/// How a prompt's image tokens are numbered (a [`Request`] setting, re-exported for its callers).
pub use text_encoder::VisionPositions;
pub use text_to_image::QwenImagePipeline;

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
