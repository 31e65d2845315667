//! QwenImageTransformer2DModel — the Qwen-Image MMDiT — on burn, generic over the backend.
//!
//! The model is built from a diffusers `transformer/` folder (`config.json` + safetensors, one
//! file or shards, f32/bf16) with every PyTorch weight name mapped 1:1, strictly: a missing,
//! unexpected or wrong-shaped tensor is an error naming it. The forward pass follows diffusers
//! 0.42: MSRoPE with centred image positions and interleaved pairs, joint attention in
//! `[text, image]` order with an optional text key mask, and `norm_out` in scale-then-shift order.
//! The Edit / Edit-Plus (several images per sample), Edit-2511 (`zero_cond_t`) and Layered
//! (`use_layer3d_rope`, `use_additional_t_cond`) variants are config flags; see the README.
//! There is one forward pass, [`QwenImageTransformer::forward`], taking [`DitInputs`] (RoPE as
//! image shapes or precomputed tables, optional text mask and Layered `additional_t_cond`);
//! [`QwenImageTransformer::forward_traced`] runs the same pass and keeps its intermediates.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use qwen_image_dit::{DitInputs, ImageShape, QwenImageTransformer};
//!
//! let dev = Default::default();
//! let model = QwenImageTransformer::<Flex>::load("testdata/tiny-qwen-image/transformer", &dev)?;
//! let c = model.config().clone();
//! let shapes = [ImageShape::new(1, 4, 4)];
//! let rope = model.rope(&shapes, 7, &dev)?; // once per image size and text length
//! let latents = Tensor::<Flex, 3>::zeros([1, 16, c.in_channels], &dev);
//! let text = Tensor::<Flex, 3>::zeros([1, 7, c.joint_attention_dim], &dev);
//! let t = Tensor::<Flex, 1>::from_floats([0.5], &dev); // sigma = timestep / 1000
//! let v = model.forward(DitInputs::new(latents, text, t, &rope))?;
//! assert_eq!(v.dims(), [1, 16, c.proj_out_dim()]);
//! # Ok::<(), qwen_image_dit::DitError>(())
//! ```

mod attention;
mod block;
mod config;
mod error;
mod inputs;
mod layers;
mod model;
mod rope;

pub use attention::AttentionImpl;
pub use config::{CLASS_NAME, DitConfig, MAX_CHANNELS, MAX_INNER_DIM, MAX_NUM_LAYERS};
pub use error::DitError;
pub use inputs::{DitInputs, RopeInput, check_encoder_mask_values};
pub use model::{Intermediates, QwenImageTransformer};
pub use rope::{ImageShape, MAX_IMAGE_TOKENS, MAX_ROPE_POSITION, Rope};

/// The README example is compiled as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
