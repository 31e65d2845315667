//! `transformer/config.json`, as diffusers writes it for `QwenImageTransformer2DModel`.

use std::path::Path;

use serde::Deserialize;

use crate::DitError;

/// The model configuration. Field names and defaults are those of the diffusers class, so the
/// checkpoint's `config.json` deserialises directly; keys the class ignores (`_class_name`,
/// `pooled_projection_dim`, …) are ignored here too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DitConfig {
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
    /// Edit-2511 variant (t = 0 modulation for condition images): not supported.
    #[serde(default)]
    pub zero_cond_t: bool,
    /// Layered variant (extra timestep embedding): not supported.
    #[serde(default)]
    pub use_additional_t_cond: bool,
    /// Layered variant (3-D layer RoPE): not supported.
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

impl DitConfig {
    /// Read and validate a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, DitError> {
        let text = std::fs::read_to_string(path).map_err(|source| DitError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| DitError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.validate().map_err(|reason| DitError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(cfg)
    }

    /// The model width `D = heads · head_dim` (3072 for the released model).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Latent channels per patch position (`out_channels`, or `in_channels` when null).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Channels of one output token: `patch_size² · out_channels` (64 for the released model).
    pub fn proj_out_dim(&self) -> usize {
        self.patch_size * self.patch_size * self.out_channels()
    }

    /// Check the invariants the forward pass relies on; the message says which key is wrong.
    fn validate(&self) -> Result<(), String> {
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
        let axes = self.axes_dims_rope;
        if axes.iter().any(|d| d % 2 != 0) {
            return Err(format!("`axes_dims_rope` {axes:?} must all be even"));
        }
        if axes.iter().sum::<usize>() != self.attention_head_dim {
            return Err(format!(
                "`axes_dims_rope` {axes:?} must sum to `attention_head_dim` ({})",
                self.attention_head_dim
            ));
        }
        for (name, on) in [
            ("zero_cond_t", self.zero_cond_t),
            ("use_additional_t_cond", self.use_additional_t_cond),
            ("use_layer3d_rope", self.use_layer3d_rope),
        ] {
            if on {
                return Err(format!(
                    "`{name}` = true (an Edit/Layered variant) is not supported by this port"
                ));
            }
        }
        Ok(())
    }
}
