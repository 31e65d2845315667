//! The Qwen2.5-VL language model (text-only path) and the Qwen-Image prompt path: template,
//! drop the 34-token prefix, re-pad, embedding-aligned mask.
//!
//! [`QwenTextEncoder`] is `Qwen2_5_VLForConditionalGeneration`'s language model as transformers
//! runs it for text (RMSNorm, grouped-query attention with rotate-half RoPE, SwiGLU), loaded from
//! a `text_encoder/` folder in either key layout. [`PromptEncoder`] adds the tokenizer and does
//! what diffusers' `QwenImagePipeline.encode_prompt` does, returning [`PromptEmbeds`].
//!
//! ```no_run
//! use burn::backend::Flex;
//! use text_encoder::{DEFAULT_MAX_SEQUENCE_LENGTH, PromptEncoder};
//!
//! let device = Default::default();
//! let enc = PromptEncoder::<Flex>::from_pipeline_dir("testdata/tiny-qwen-image", &device)?;
//! let out = enc.encode(&["A cat on a windowsill".into(), " ".into()], DEFAULT_MAX_SEQUENCE_LENGTH)?;
//! println!("{:?} {:?} {:?}", out.embeds.dims(), out.lengths, out.mask_if_needed().is_some());
//! # Ok::<(), text_encoder::Error>(())
//! ```

mod config;
mod error;
mod model;
mod prompt;
mod rope;

pub use config::TextConfig;
pub use error::Error;
pub use model::{HiddenStates, QwenTextEncoder};
pub use prompt::{
    DEFAULT_MAX_SEQUENCE_LENGTH, MAX_SEQUENCE_LENGTH_LIMIT, PROMPT_TEMPLATE, PromptEmbeds,
    PromptEncoder, TEMPLATE_PREFIX_TOKENS, TOKENIZER_MAX_LENGTH, format_prompt,
};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
