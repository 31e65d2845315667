//! The Qwen2.5-VL language model and the Qwen-Image prompt paths: template (by pipeline class),
//! drop the leading tokens (34, Edit 64), re-pad, embedding-aligned mask; for the Edit pipelines
//! the image placeholders, the vision tower's embeddings scattered in and 3-D M-RoPE.
//!
//! [`QwenTextEncoder`] is `Qwen2_5_VLForConditionalGeneration`'s language model as transformers
//! runs it (RMSNorm, grouped-query attention with rotate-half M-RoPE, SwiGLU), loaded from a
//! `text_encoder/` folder in either key layout. [`PromptEncoder`] adds the tokenizer, the
//! pipeline's [`PromptTemplate`] and for Edit folders the image side, and does what diffusers'
//! `encode_prompt` does, returning [`PromptEmbeds`] ([`PromptEncoder::encode`] for text,
//! [`PromptEncoder::encode_with_images`] for Edit / Edit-Plus prompts; the README has the traps,
//! notably [`VisionPositions`]).
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
//! ## Layered auto-caption
//!
//! [`Captioner`] ([`caption`]) is `QwenImageLayeredPipeline.get_image_caption`: the caption
//! prompt with the image, the vision tower, a KV-cached `generate` ([`KvCache`],
//! [`QwenTextEncoder::forward_cached`], [`LmHead`], [`GenerationConfig`]) and the decode. It is
//! the only user of the LM head.
//!
//! ## Vision side
//!
//! The Qwen2.5-VL vision tower and `Qwen2VLImageProcessor` (transformers 5.24, torchvision
//! backend), loaded only when a prompt comes with images:
//!
//! * [`image_processor::open_rgb`] (with image-io's [`image_io::convert_to_rgb`]): transformers'
//!   `convert_to_rgb` (alpha composited onto white exactly as PIL's `alpha_composite`, grey
//!   replicated).
//! * [`ImageProcessor`] (`from_preprocessor_config(path)` or `default()`): [`smart_resize`],
//!   torch's uint8 antialiased bicubic ([`image_io::resize_bicubic_antialias`]), rescale +
//!   normalise, patchify; `.preprocess(&[RgbImage])` returns a [`VisionInput`] (`pixel_values`
//!   `[N, 3·2·14·14]`, `grid_thw`, `.merged_tokens(merge)` = the `<|image_pad|>` count per image).
//! * [`VisionTower`] (`load(text_encoder_dir)` reads only `visual.*` / `model.visual.*`,
//!   strictly): `.forward(pixel_values, &grid_thw)` gives `image_embeds` `[N / merge²,
//!   out_hidden_size]`, every image's tokens in order.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use text_encoder::image_processor::open_rgb;
//! use text_encoder::{ImageProcessor, VisionTower};
//!
//! let device = Default::default();
//! let processor = ImageProcessor::from_preprocessor_config("processor/preprocessor_config.json")?;
//! let input = processor.preprocess(&[open_rgb("cat.png")?])?;
//! let tower = VisionTower::<Flex>::load("text_encoder", &device)?;
//! let embeds = tower.forward(input.pixel_values_tensor(&device), &input.grid_thw)?;
//! assert_eq!(embeds.dims()[0], input.merged_tokens(2).iter().sum::<usize>());
//! # Ok::<(), text_encoder::Error>(())
//! ```

pub mod caption;
mod config;
mod decoder;
mod error;
mod generation;
pub mod image_processor;
mod kv_cache;
mod lm_head;
mod model;
mod multimodal;
mod prompt;
mod rope;
mod template;
pub mod vision;

pub use caption::{
    CAPTION_PROMPT_EN, CAPTION_PROMPT_ZH, Caption, CaptionLanguage, Captioner,
    DEFAULT_MAX_NEW_TOKENS, StopReason,
};
pub use config::TextConfig;
pub use error::Error;
pub use generation::{GenerationConfig, TokenPicker};
pub use image_processor::{ImageProcessor, VisionInput, smart_resize};
pub use kv_cache::KvCache;
pub use lm_head::{LM_HEAD_WEIGHT, LmHead, LmHeadSource, tie_word_embeddings};
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
