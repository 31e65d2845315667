//! `transformer/config.json`, as diffusers writes it for `QwenImageTransformer2DModel`.

use std::path::Path;

use serde::Deserialize;

use crate::DitError;
use crate::layers::{ADDITION_T_CLASSES, TIME_PROJ_DIM};

/// The diffusers class every Qwen-Image transformer checkpoint (base, Edit, Edit-Plus, Layered)
/// declares in its `config.json`.
pub const CLASS_NAME: &str = "QwenImageTransformer2DModel";

/// The widest model width (`heads · head_dim`) a config may declare: 2^16, twenty times the
/// released 3072. It keeps every derived size (`6·D`, the `D × 6D` modulation weights, …) far
/// from overflow, so that a hostile `config.json` is refused by name instead of wrapping.
pub const MAX_INNER_DIM: usize = 1 << 16;

/// The most channels a config may declare for `in_channels`, `out_channels`, `patch_size²·out`
/// and `joint_attention_dim` (2^20; the released model uses 64, 16, 64 and 3584).
pub const MAX_CHANNELS: usize = 1 << 20;

/// The most dual-stream blocks a config may declare: 1024, seventeen times the released 60. A
/// checkpoint bounds its layers by the tensors it holds, but [`QwenImageTransformer::random`]
/// makes every block it is told to (`bench dit-step`): 10^9 of them would only end in the
/// allocator.
///
/// [`QwenImageTransformer::random`]: crate::QwenImageTransformer::random
pub const MAX_NUM_LAYERS: usize = 1024;

/// The model configuration. Field names and defaults are those of the diffusers class, so the
/// checkpoint's `config.json` deserialises directly; keys the class ignores
/// (`pooled_projection_dim`, …) are ignored here too. `_class_name`, when present, must be
/// [`CLASS_NAME`]: a VAE or text-encoder config passed by mistake is refused by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DitConfig {
    /// The diffusers class named in `config.json` (`None` when the key is absent).
    #[serde(default, rename = "_class_name")]
    pub class_name: Option<String>,
    /// Latent patch size (2): `proj_out` emits `patch_size² · out_channels` per token.
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    /// Channels of a packed latent token (64 = 16 latent channels × 2×2 patch).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Latent channels per output patch position; `null` means `in_channels` (as upstream).
    #[serde(default = "default_out_channels")]
    pub out_channels: Option<usize>,
    /// Number of dual-stream blocks.
    #[serde(default = "default_num_layers")]
    pub num_layers: usize,
    /// Width of one attention head.
    #[serde(default = "default_attention_head_dim")]
    pub attention_head_dim: usize,
    /// Number of attention heads; the model width is `heads · head_dim`.
    #[serde(default = "default_num_attention_heads")]
    pub num_attention_heads: usize,
    /// Width of the text-encoder hidden states (3584 for Qwen2.5-VL-7B).
    #[serde(default = "default_joint_attention_dim")]
    pub joint_attention_dim: usize,
    /// MSRoPE widths of the (frame, height, width) axes; they must sum to the head width.
    #[serde(default = "default_axes_dims_rope")]
    pub axes_dims_rope: [usize; 3],
    /// Present in the released config; the class builds nothing from it.
    #[serde(default)]
    pub guidance_embeds: bool,
    /// Edit-2511 variant: the condition-image tokens (every image after the first in
    /// `img_shapes`) are modulated with the embedding of t = 0, the output tokens and the text
    /// with that of t (upstream's `modulate_index`).
    #[serde(default)]
    pub zero_cond_t: bool,
    /// Layered variant: `time_text_embed.addition_t_embedding` `[2, D]` adds a per-sample class
    /// embedding (`additional_t_cond`, 0 = RGB, what the Layered pipeline passes) to temb.
    #[serde(default)]
    pub use_additional_t_cond: bool,
    /// Layered variant: `QwenEmbedLayer3DRope` (the last image of `img_shapes` is the condition
    /// image at frame position −1).
    #[serde(default)]
    pub use_layer3d_rope: bool,
}

fn default_patch_size() -> usize {
    2
}
fn default_in_channels() -> usize {
    64
}
fn default_out_channels() -> Option<usize> {
    Some(16)
}
fn default_num_layers() -> usize {
    60
}
fn default_attention_head_dim() -> usize {
    128
}
fn default_num_attention_heads() -> usize {
    24
}
fn default_joint_attention_dim() -> usize {
    3584
}
fn default_axes_dims_rope() -> [usize; 3] {
    [16, 56, 56]
}

impl Default for DitConfig {
    /// The released `Qwen/Qwen-Image` configuration.
    fn default() -> Self {
        Self {
            class_name: Some(CLASS_NAME.to_string()),
            patch_size: default_patch_size(),
            in_channels: default_in_channels(),
            out_channels: default_out_channels(),
            num_layers: default_num_layers(),
            attention_head_dim: default_attention_head_dim(),
            num_attention_heads: default_num_attention_heads(),
            joint_attention_dim: default_joint_attention_dim(),
            axes_dims_rope: default_axes_dims_rope(),
            guidance_embeds: false,
            zero_cond_t: false,
            use_additional_t_cond: false,
            use_layer3d_rope: false,
        }
    }
}

impl From<config_file::ConfigFileError> for DitError {
    fn from(e: config_file::ConfigFileError) -> Self {
        match e {
            config_file::ConfigFileError::Read { path, error } => Self::Io { path, error },
            config_file::ConfigFileError::Parse { path, error } => Self::Config {
                path,
                reason: error.to_string(),
            },
        }
    }
}

impl DitConfig {
    /// Read and validate a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, DitError> {
        let cfg: Self = config_file::read_json(path)?;
        cfg.validate().map_err(|reason| DitError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(cfg)
    }

    /// The model width `D = heads · head_dim` (3072 for the released model).
    /// (Saturating, so that an unvalidated hand-made config cannot panic here; loading validates.)
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads
            .saturating_mul(self.attention_head_dim)
    }

    /// Latent channels per patch position (`out_channels`, or `in_channels` when null).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Channels of one output token: `patch_size² · out_channels` (64 for the released model).
    /// (Saturating, as [`Self::inner_dim`].)
    pub fn proj_out_dim(&self) -> usize {
        self.patch_size
            .saturating_mul(self.patch_size)
            .saturating_mul(self.out_channels())
    }

    /// The number of weights a model of this config holds (20.4 · 10^9 for the released one),
    /// counted from the same sizes the loader asks for, so that a caller can size the memory
    /// before making the model. (Saturating, as [`Self::inner_dim`].)
    pub fn num_parameters(&self) -> u64 {
        let n = |v: usize| v as u64;
        let (d, head) = (n(self.inner_dim()), n(self.attention_head_dim));
        let linear = |i: u64, o: u64| i.saturating_mul(o).saturating_add(o);
        let block = [
            linear(d, d.saturating_mul(6)).saturating_mul(2), // img_mod, txt_mod
            linear(d, d).saturating_mul(8),                   // q, k, v, out for both streams
            head.saturating_mul(4),                           // the four q/k RMSNorms
            linear(d, d.saturating_mul(4))
                .saturating_add(linear(d.saturating_mul(4), d))
                .saturating_mul(2), // two MLPs
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add);
        let addition = if self.use_additional_t_cond {
            d.saturating_mul(n(ADDITION_T_CLASSES))
        } else {
            0
        };
        [
            linear(n(self.in_channels), d),                           // img_in
            n(self.joint_attention_dim),                              // txt_norm
            linear(n(self.joint_attention_dim), d),                   // txt_in
            linear(n(TIME_PROJ_DIM), d).saturating_add(linear(d, d)), // timestep_embedder
            addition,                                                 // addition_t_embedding
            block.saturating_mul(n(self.num_layers)),
            linear(d, d.saturating_mul(2)),    // norm_out
            linear(d, n(self.proj_out_dim())), // proj_out
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// Check the invariants the forward pass relies on, with checked arithmetic and explicit
    /// bounds (every value may come from a hostile file); the message names the key.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.class_name
            && name != CLASS_NAME
        {
            return Err(format!(
                "`_class_name` is {name:?}, expected {CLASS_NAME:?} (is this the transformer/ folder?)"
            ));
        }
        for (name, v) in [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
        ] {
            if v == 0 {
                return Err(format!("`{name}` must be positive"));
            }
        }
        if self.num_layers > MAX_NUM_LAYERS {
            return Err(format!(
                "`num_layers` {} exceeds the maximum {MAX_NUM_LAYERS}",
                self.num_layers
            ));
        }
        self.num_attention_heads
            .checked_mul(self.attention_head_dim)
            .filter(|&d| d <= MAX_INNER_DIM)
            .ok_or_else(|| {
                format!(
                    "`num_attention_heads` {} × `attention_head_dim` {} exceeds the maximum model \
                     width {MAX_INNER_DIM}",
                    self.num_attention_heads, self.attention_head_dim
                )
            })?;
        for (name, v) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("joint_attention_dim", self.joint_attention_dim),
        ] {
            if v > MAX_CHANNELS {
                return Err(format!("`{name}` {v} exceeds the maximum {MAX_CHANNELS}"));
            }
        }
        self.patch_size
            .checked_mul(self.patch_size)
            .and_then(|p2| p2.checked_mul(self.out_channels()))
            .filter(|&c| c <= MAX_CHANNELS)
            .ok_or_else(|| {
                format!(
                    "`patch_size` {} squared × `out_channels` {} (the proj_out width) exceeds {MAX_CHANNELS}",
                    self.patch_size,
                    self.out_channels()
                )
            })?;
        let axes = self.axes_dims_rope;
        if axes.iter().any(|d| d % 2 != 0) {
            return Err(format!("`axes_dims_rope` {axes:?} must all be even"));
        }
        let sum = axes.iter().try_fold(0usize, |acc, &d| acc.checked_add(d));
        if sum != Some(self.attention_head_dim) {
            return Err(format!(
                "`axes_dims_rope` {axes:?} must sum to `attention_head_dim` ({})",
                self.attention_head_dim
            ));
        }
        Ok(())
    }
}
