//! The vision half of a Hugging Face CLIP `config.json` (a `CLIPConfig` with `vision_config`, or a
//! `CLIPVisionConfig` of a `CLIPVisionModelWithProjection`).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result, parse_json};

/// Activation of the encoder MLPs (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// `x · sigmoid(1.702 x)`, what the OpenAI checkpoints use.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU.
    #[serde(rename = "gelu")]
    Gelu,
}

/// Shape of a CLIP image tower. Missing fields take `CLIPVisionConfig`'s defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    /// Width of the transformer.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Output width of `visual_projection` (for a `CLIPConfig`: its top-level `projection_dim`).
    pub projection_dim: usize,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            projection_dim: 512,
        }
    }
}

impl ClipConfig {
    /// Reads `config.json` of a `CLIPModel` or a `CLIPVisionModelWithProjection`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&crate::input::read_json(path)?, path)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        Self::from_value(&parse_json(text, origin)?, origin)
    }

    /// A config's JSON value; `origin` names it in errors.
    fn from_value(value: &serde_json::Value, origin: &Path) -> Result<Self> {
        let json = |error| Error::Json {
            path: origin.to_path_buf(),
            error,
        };
        let cfg = match value.get("vision_config") {
            // CLIPConfig: the tower's shape is nested, the projection width is top-level.
            Some(vision) => {
                let mut cfg = Self::deserialize(vision).map_err(json)?;
                cfg.projection_dim = match value.get("projection_dim") {
                    None => 512,
                    Some(p) => usize::deserialize(p).map_err(json)?,
                };
                cfg
            }
            None => Self::deserialize(value).map_err(json)?,
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, problem: String| Error::BadValue {
            path: origin.to_path_buf(),
            key: key.into(),
            problem,
        };
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "must divide hidden_size {}, found {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(bad(
                "patch_size",
                format!(
                    "must divide image_size {}, found {}",
                    self.image_size, self.patch_size
                ),
            ));
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_model_config_takes_the_top_level_projection_dim() {
        let text = r#"{"projection_dim": 768, "vision_config": {"hidden_size": 1024,
            "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "patch_size": 14, "projection_dim": 512}}"#;
        let c = ClipConfig::parse(text, Path::new("config.json")).unwrap();
        assert_eq!(
            (c.hidden_size, c.projection_dim, c.patch_size),
            (1024, 768, 14)
        );
        assert_eq!(c.num_positions(), 257);
        assert_eq!(c.hidden_act, Activation::QuickGelu);
    }

    #[test]
    fn unsupported_activation_and_bad_shapes_name_the_file() {
        let e =
            ClipConfig::parse(r#"{"hidden_act": "relu"}"#, Path::new("m/config.json")).unwrap_err();
        assert!(e.to_string().contains("m/config.json"), "{e}");
        let e =
            ClipConfig::parse(r#"{"hidden_size": 10}"#, Path::new("m/config.json")).unwrap_err();
        assert!(e.to_string().contains("num_attention_heads"), "{e}");
    }
}
