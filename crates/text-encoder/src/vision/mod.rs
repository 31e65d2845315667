//! The Qwen2.5-VL vision tower (`Qwen2_5_VisionTransformerPretrainedModel`, transformers 5.24):
//! what turns `pixel_values` from the [`ImageProcessor`](crate::ImageProcessor) into the image
//! embeddings the multimodal prompt path scatters over the `<|image_pad|>` tokens.
//!
//! Loaded only when an image is given: [`VisionTower::load`] reads the `visual.*` tensors of the
//! same `text_encoder/` checkpoint the language model comes from.

mod config;
mod grid;
mod tower;

pub use config::VisionConfig;
pub use grid::{check_grid, cu_seqlens, position_ids, window_index};
pub use tower::{VisionIntermediates, VisionTower};
