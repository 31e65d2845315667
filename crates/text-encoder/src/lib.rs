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
//!
//! ## Vision side (issue 17 part 3; landing in steps, this is the planned public API)
//!
//! The Qwen2.5-VL vision tower and `Qwen2VLImageProcessor` (transformers 5.24.0, torchvision
//! backend), for the multimodal prompt path of the Edit pipelines:
//!
//! * `image_processor::to_rgb(&image::DynamicImage) -> image::RgbImage`: transformers'
//!   `convert_to_rgb` (alpha composited onto white exactly as PIL's `alpha_composite`).
//! * `smart_resize(height, width, factor, min_pixels, max_pixels) -> Result<(usize, usize), Error>`.
//! * `ImageProcessor::from_preprocessor_config(path)` / `ImageProcessor::default()` (transformers'
//!   defaults: min_pixels 56·56, max_pixels 28·28·1280, patch 14, temporal 2, merge 2, CLIP
//!   mean/std); `.preprocess(&[image::RgbImage]) -> Result<VisionInput, Error>`.
//! * `VisionInput { pixel_values: Vec<f32> /* [N, 3·2·14·14] row-major */, patch_dim, grid_thw:
//!   Vec<[usize; 3]> }` with `.num_patches()`, `.merged_tokens(merge) -> Vec<usize>` (the
//!   `<|image_pad|>` count per image, t·h·w / merge²) and `.pixel_values_tensor::<B>(&device)`.
//! * `VisionConfig::from_file(config.json)` (the `vision_config` block).
//! * `VisionTower::<B>::load(text_encoder_dir, &device)` / `VisionTower::from_weights(&Weights,
//!   VisionConfig, &device)`: reads only `visual.*` (or `model.visual.*`) tensors, strictly.
//! * `VisionTower::forward(&self, pixel_values: Tensor<B, 2>, grid_thw: &[[usize; 3]]) ->
//!   Result<Tensor<B, 2>, Error>`: `image_embeds` `[N / merge², out_hidden_size]`, images in
//!   order (what `Qwen2_5_VLModel.get_image_features` concatenates before splitting).

mod config;
mod error;
pub mod image_processor;
mod model;
mod multimodal;
mod prompt;
mod rope;
mod template;
pub mod vision;

pub use config::TextConfig;
pub use error::Error;
pub use image_processor::{ImageProcessor, VisionInput, smart_resize};
pub use model::{HiddenStates, MultimodalInputs, QwenTextEncoder};
pub use multimodal::{
    DEFAULT_MROPE_SECTION, ImageEmbeds, VisionPositions, image_token_count, load_image,
    mrope_position_ids,
};
pub use prompt::{
    DEFAULT_MAX_SEQUENCE_LENGTH, MAX_SEQUENCE_LENGTH_LIMIT, PromptEmbeds, PromptEncoder,
    TOKENIZER_MAX_LENGTH,
};
pub use template::{
    EDIT_PROMPT_TEMPLATE, EDIT_TEMPLATE_PREFIX_TOKENS, IMAGE_PLACEHOLDER, PROMPT_TEMPLATE,
    PromptTemplate, TEMPLATE_PREFIX_TOKENS, format_prompt,
};
pub use vision::{VisionConfig, VisionTower};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
