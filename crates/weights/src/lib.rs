//! Safetensors checkpoints into burn tensors, strictly.
//!
//! [`Weights`] opens one `.safetensors` file, or a folder holding a `*.safetensors.index.json`
//! (sharded, as diffusers and transformers save large models) or plain `*.safetensors` files. The
//! files are memory-mapped; a tensor is copied out only when a model asks for it, so loading never
//! holds two full copies of the weights. Model crates build their modules by name
//! ([`Weights::get`], [`Weights::linear`]) and finish with [`Weights::check_all_used`], so a
//! missing, unexpected or wrong-shaped tensor is an error naming the tensor, the file and the
//! expected shape.
//!
//! [`PipelineDir`] reads a diffusers-layout pipeline folder; [`resolve_pipeline`] also takes an HF
//! repo id, fetched through [`HubRepo`] into the cache Python's huggingface_hub shares.
//!
//! [`nn`] holds the building blocks the model crates share (RMSNorm, the f32 island).

mod cast;
mod error;
mod hub;
pub mod nn;
mod pipeline_dir;
mod store;

pub use cast::CastFloats;
pub use error::Error;
pub use hub::{HubOptions, HubRepo, is_repo_id};
pub use pipeline_dir::{PipelineDir, resolve_pipeline};
pub use store::{StoredDType, Weights};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
