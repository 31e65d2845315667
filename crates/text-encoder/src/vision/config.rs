//! The `vision_config` block of a Qwen2.5-VL `config.json`.

use std::path::Path;

use serde_json::Value;

use crate::Error;

/// The sizes of the Qwen2.5-VL vision tower (`Qwen2_5_VLVisionConfig`).
///
/// Keys missing from the file take transformers' class defaults, as `from_pretrained` would;
/// `in_chans` (configs saved by 4.x, e.g. the released `Qwen/Qwen-Image` one) is accepted for
/// `in_channels`.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// Number of vision blocks (32 released).
    pub depth: usize,
    /// Width C of the blocks (1280 released).
    pub hidden_size: usize,
    /// Width of the blocks' SwiGLU MLP.
    pub intermediate_size: usize,
    /// Attention heads; head_dim = hidden_size / num_heads.
    pub num_heads: usize,
    /// Image channels (3).
    pub in_channels: usize,
    /// Spatial patch side (14).
    pub patch_size: usize,
    /// Frames per patch (2).
    pub temporal_patch_size: usize,
    /// Patches merged per side into one language-model token (2).
    pub spatial_merge_size: usize,
    /// Window side in pixels (112): windows of `window_size / merge / patch` merged units.
    pub window_size: usize,
    /// Width D of the merger's output: the language model's hidden size.
    pub out_hidden_size: usize,
    /// Blocks that attend over the whole image instead of windows.
    pub fullatt_block_indexes: Vec<usize>,
    /// Base of the 2-D rotary embedding (10000).
    pub rope_theta: f64,
}

impl VisionConfig {
    /// Read and validate the `vision_config` of a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let json: Value = config_file::read_json(path)?;
        Self::from_json(&json, path)
    }

    /// Build from an already parsed `config.json`; `path` is only used in error messages.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self, Error> {
        let path = path.to_path_buf();
        let v = json
            .get("vision_config")
            .filter(|v| v.is_object())
            .ok_or_else(|| error(&path, "`vision_config` is missing".into()))?;
        let u = |key: &str, default: usize| -> Result<usize, Error> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        error(&path, format!("vision_config.{key} is not an integer: {x}"))
                    }),
            }
        };
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(error(
                &path,
                format!("vision_config.hidden_act `{act}` is not supported (only silu)"),
            ));
        }
        let in_channels = match v.get("in_channels").filter(|x| !x.is_null()) {
            Some(_) => u("in_channels", 3)?,
            None => u("in_chans", 3)?,
        };
        let fullatt_block_indexes = match v.get("fullatt_block_indexes") {
            None | Some(Value::Null) => vec![7, 15, 23, 31],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().map(|n| n as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    error(
                        &path,
                        "vision_config.fullatt_block_indexes holds a non-integer".into(),
                    )
                })?,
            Some(x) => {
                return Err(error(
                    &path,
                    format!("vision_config.fullatt_block_indexes is not a list: {x}"),
                ));
            }
        };
        let rope_theta = match v.get("rope_parameters").and_then(|p| p.get("rope_theta")) {
            Some(t) => t
                .as_f64()
                .ok_or_else(|| error(&path, "vision rope_theta is not a number".into()))?,
            None => 10000.0,
        };
        if let Some(kind) = v
            .get("rope_parameters")
            .and_then(|p| p.get("rope_type"))
            .and_then(Value::as_str)
            && kind != "axial"
            && kind != "default"
        {
            return Err(error(
                &path,
                format!("vision rope_type `{kind}` is not supported (only axial)"),
            ));
        }
        let cfg = Self {
            depth: u("depth", 32)?,
            hidden_size: u("hidden_size", 3584)?,
            intermediate_size: u("intermediate_size", 3420)?,
            num_heads: u("num_heads", 16)?,
            in_channels,
            patch_size: u("patch_size", 14)?,
            temporal_patch_size: u("temporal_patch_size", 2)?,
            spatial_merge_size: u("spatial_merge_size", 2)?,
            window_size: u("window_size", 112)?,
            out_hidden_size: u("out_hidden_size", 3584)?,
            fullatt_block_indexes,
            rope_theta,
        };
        cfg.validate(&path)?;
        Ok(cfg)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Values per patch row of `pixel_values`: channels · temporal · patch² (1176).
    pub fn patch_dim(&self) -> usize {
        // Saturating: `validate` bounds the product, an unvalidated config cannot panic here.
        self.in_channels
            .saturating_mul(self.temporal_patch_size)
            .saturating_mul(self.patch_size)
            .saturating_mul(self.patch_size)
    }

    /// Window side in merged units (`window_size // merge // patch`, 4 released).
    pub fn merged_window(&self) -> usize {
        self.window_size / self.spatial_merge_size / self.patch_size
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let positive = [
            ("depth", self.depth),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_heads", self.num_heads),
            ("in_channels", self.in_channels),
            ("patch_size", self.patch_size),
            ("temporal_patch_size", self.temporal_patch_size),
            ("spatial_merge_size", self.spatial_merge_size),
            ("out_hidden_size", self.out_hidden_size),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(error(path, format!("vision_config.{k} must be positive")));
        }
        // Bounds before any product: every value may come from a hostile file.
        let window = [("window_size", self.window_size)];
        if let Some((k, v)) = positive.iter().chain(&window).find(|(_, v)| *v > MAX_SIZE) {
            return Err(error(
                path,
                format!("vision_config.{k} {v} exceeds the maximum {MAX_SIZE}"),
            ));
        }
        let patch_dim = self
            .in_channels
            .checked_mul(self.temporal_patch_size)
            .and_then(|d| d.checked_mul(self.patch_size))
            .and_then(|d| d.checked_mul(self.patch_size));
        if patch_dim.is_none_or(|d| d > MAX_SIZE) {
            return Err(error(
                path,
                format!(
                    "vision in_channels {} × temporal_patch_size {} × patch_size {}² exceeds the \
                     maximum patch width {MAX_SIZE}",
                    self.in_channels, self.temporal_patch_size, self.patch_size
                ),
            ));
        }
        // The 2-D rotary embedding splits head_dim into (h, w) halves of rotate-half pairs.
        if !self.hidden_size.is_multiple_of(self.num_heads) || !self.head_dim().is_multiple_of(4) {
            return Err(error(
                path,
                format!(
                    "vision hidden_size {} / num_heads {} must give a head_dim divisible by 4",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if self.merged_window() == 0 {
            return Err(error(
                path,
                format!(
                    "vision window_size {} is smaller than one merged unit ({} pixels)",
                    self.window_size,
                    self.spatial_merge_size * self.patch_size
                ),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(error(
                path,
                format!("vision rope_theta {} is not positive", self.rope_theta),
            ));
        }
        Ok(())
    }
}

/// The largest size (widths, patch sizes, window) a vision config may ask for; the released tower
/// uses 3584. A bound keeps a hostile config from overflowing the products sized from it.
const MAX_SIZE: usize = 1 << 20;

fn error(path: &Path, reason: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The released Qwen/Qwen-Image `text_encoder/config.json` (saved by transformers 4.x):
    /// `in_chans`, no `rope_parameters`.
    #[test]
    fn a_transformers_4_vision_config_reads_with_defaults() {
        let json: Value = serde_json::from_str(
            r#"{"vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
                "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584,
                "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
                "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
                "tokens_per_second": 2, "temporal_patch_size": 2}}"#,
        )
        .unwrap();
        let c = VisionConfig::from_json(&json, Path::new("config.json")).unwrap();
        assert_eq!(
            (c.head_dim(), c.patch_dim(), c.merged_window()),
            (80, 1176, 4)
        );
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(c.fullatt_block_indexes, vec![7, 15, 23, 31]);
    }

    #[test]
    fn unsupported_vision_configs_are_errors_naming_the_file() {
        for bad in [
            r#"{}"#,
            r#"{"vision_config": {"hidden_act": "gelu"}}"#,
            r#"{"vision_config": {"hidden_size": 1280, "num_heads": 24}}"#,
            r#"{"vision_config": {"window_size": 20}}"#,
            r#"{"vision_config": {"depth": "x"}}"#,
        ] {
            let json: Value = serde_json::from_str(bad).unwrap();
            let err = VisionConfig::from_json(&json, Path::new("te/config.json")).unwrap_err();
            assert!(err.to_string().contains("te/config.json"), "{bad}: {err}");
        }
    }
}
