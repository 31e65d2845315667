//! The Qwen2 tokenizer as a pipeline's class asks for it, fast or slow (the README below is the
//! crate's documentation).

#![doc = include_str!("../README.md")]

mod decision;
mod error;
mod slow;
mod source;
mod tokenizer;

pub use decision::{ClassSource, Decision, TokenizerPath, path_for_class};
pub use error::{Error, Result};
pub use slow::QWEN2_SPLIT_PATTERN;
pub use tokenizer::{Batch, QwenTokenizer};
/// Where and how a Hub repo is read; shared with every other `--model REPO` through `weights`.
pub use weights::HubOptions;
