//! The language-model part of a Qwen2.5-VL `config.json`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;

/// `Qwen2_5_VLTextConfig`'s default `rope_theta`, used when a config names none.
const DEFAULT_ROPE_THETA: f64 = 1_000_000.0;

/// `<|image_pad|>`'s id in every Qwen2.5-VL vocabulary (`Qwen2_5_VLConfig.image_token_id`).
const DEFAULT_IMAGE_TOKEN_ID: u32 = 151_655;

/// `Qwen2_5_VLVisionConfig.spatial_merge_size`'s default: 2×2 patches become one token.
const DEFAULT_SPATIAL_MERGE_SIZE: usize = 2;

/// The sizes of the Qwen2.5-VL language model, read from `text_encoder/config.json`.
///
/// transformers ≥ 5 nests these under `text_config`; configs saved by 4.x (the released
/// `Qwen/Qwen-Image` one) keep them at the top level. Each key is looked up in `text_config`
/// first, then at the top level.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Model width D (3584 for Qwen2.5-VL-7B).
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); equals `num_attention_heads` when absent.
    pub num_key_value_heads: usize,
    /// Rows of `embed_tokens`.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// How M-RoPE splits the `head_dim / 2` rotary frequencies between the temporal, height and
    /// width position components (`mrope_section`); `None` when the config names none, in which
    /// case transformers uses [`DEFAULT_MROPE_SECTION`](crate::DEFAULT_MROPE_SECTION). Only
    /// prompts with images need it: for text the three components are equal.
    pub mrope_section: Option<[usize; 3]>,
    /// The id of `<|image_pad|>`, the token image embeddings replace (`image_token_id`).
    pub image_token_id: u32,
    /// `vision_config.spatial_merge_size`: each side of the patch grid shrinks by this factor
    /// in the merger, so an image of `t·h·w` patches becomes `t·h·w / merge²` tokens.
    pub spatial_merge_size: usize,
}

impl TextConfig {
    /// Read and validate a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let json: Value = config_file::read_json(path)?;
        Self::from_json(&json, path)
    }

    /// Build from an already parsed config; `path` is only used in error messages.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self, Error> {
        let lookup = Lookup {
            text: json.get("text_config").filter(|v| v.is_object()),
            top: json,
            path: path.to_path_buf(),
        };
        if let Some(act) = lookup.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(lookup.error(format!("hidden_act `{act}` is not supported (only silu)")));
        }
        // `layer_types` lists "sliding_attention" only when use_sliding_window is set (it is not
        // for any released Qwen2.5-VL); refuse rather than silently attend everywhere.
        let sliding = lookup
            .get("layer_types")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|l| l.as_str() == Some("sliding_attention")))
            || lookup.get("use_sliding_window").and_then(Value::as_bool) == Some(true);
        if sliding {
            return Err(lookup.error("sliding-window attention is not supported".into()));
        }

        let hidden_size = lookup.usize("hidden_size")?;
        let num_attention_heads = lookup.usize("num_attention_heads")?;
        let num_key_value_heads = match lookup.get("num_key_value_heads") {
            Some(Value::Null) | None => num_attention_heads,
            Some(_) => lookup.usize("num_key_value_heads")?,
        };
        let cfg = Self {
            hidden_size,
            intermediate_size: lookup.usize("intermediate_size")?,
            num_hidden_layers: lookup.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            vocab_size: lookup.usize("vocab_size")?,
            rms_norm_eps: match lookup.get("rms_norm_eps") {
                None => 1e-6,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| lookup.error("rms_norm_eps is not a number".into()))?,
            },
            rope_theta: lookup.rope_theta()?,
            mrope_section: lookup.mrope_section()?,
            image_token_id: match json.get("image_token_id") {
                None | Some(Value::Null) => DEFAULT_IMAGE_TOKEN_ID,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        lookup.error(format!("image_token_id is not a token id: {v}"))
                    })?,
            },
            spatial_merge_size: match json
                .get("vision_config")
                .and_then(|v| v.get("spatial_merge_size"))
            {
                None | Some(Value::Null) => DEFAULT_SPATIAL_MERGE_SIZE,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        lookup.error(format!(
                            "vision_config.spatial_merge_size is not a positive integer: {v}"
                        ))
                    })?,
            },
        };
        cfg.validate(&lookup)?;
        Ok(cfg)
    }

    /// Per-head width. Upstream's attention always uses `hidden_size / num_attention_heads`
    /// (it ignores a `head_dim` key), and so do we.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Check token ids and their attention mask, both `shape` = `[B, L]` as `i64` (the values a
    /// file or a tensor holds), before they become tensors or reach the model: at least one
    /// sample of one token, every id a row of `embed_tokens` (`0..vocab_size`: the embedding
    /// lookup does not check), every mask value 0 (padding) or 1 (token). A value that does not
    /// fit the backend's integer type cannot even become a tensor, so a caller holding `i64`s
    /// checks them here first.
    pub fn check_tokens(&self, ids: &[i64], mask: &[i64], shape: [usize; 2]) -> Result<(), Error> {
        let err = |m: String| Err(Error::Tokens(m));
        let [b, l] = shape;
        if b == 0 || l == 0 {
            return err(format!(
                "input_ids {shape:?} is empty: at least one sample of one token is needed"
            ));
        }
        let n = b.checked_mul(l);
        if n != Some(ids.len()) || n != Some(mask.len()) {
            return err(format!(
                "{} ids and {} mask values for {shape:?}",
                ids.len(),
                mask.len()
            ));
        }
        self.check_ids(ids)?;
        if let Some(i) = mask.iter().position(|&v| v != 0 && v != 1) {
            return err(format!(
                "attention_mask value {} at flat index {i} is not 0 (padding) or 1 (token)",
                mask[i]
            ));
        }
        Ok(())
    }

    /// Every id a row of `embed_tokens` (`0..vocab_size`).
    pub(crate) fn check_ids(&self, ids: &[i64]) -> Result<(), Error> {
        let vocab = self.vocab_size;
        match ids
            .iter()
            .position(|&id| !usize::try_from(id).is_ok_and(|id| id < vocab))
        {
            Some(i) => Err(Error::Tokens(format!(
                "input_ids value {} at flat index {i} is not a token id (0..{vocab}, the \
                 vocab_size)",
                ids[i]
            ))),
            None => Ok(()),
        }
    }

    fn validate(&self, lookup: &Lookup<'_>) -> Result<(), Error> {
        let nonzero = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("vocab_size", self.vocab_size),
        ];
        if let Some((k, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(lookup.error(format!("{k} must be positive")));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(lookup.error(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(lookup.error(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(lookup.error(format!(
                "head_dim {} is odd: rotate-half RoPE needs an even width",
                self.head_dim()
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(lookup.error(format!("rope_theta {} is not positive", self.rope_theta)));
        }
        Ok(())
    }
}

struct Lookup<'a> {
    text: Option<&'a Value>,
    top: &'a Value,
    path: PathBuf,
}

impl Lookup<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.text
            .and_then(|t| t.get(key))
            .or_else(|| self.top.get(key))
    }

    fn error(&self, reason: String) -> Error {
        Error::Config {
            path: self.path.clone(),
            reason,
        }
    }

    fn usize(&self, key: &str) -> Result<usize, Error> {
        let v = self
            .get(key)
            .ok_or_else(|| self.error(format!("`{key}` is missing")))?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.error(format!("`{key}` is not a non-negative integer: {v}")))
    }

    /// transformers 5 keeps RoPE settings in `rope_parameters`; 4.x configs have a top-level
    /// `rope_theta` next to `rope_scaling` (`{"type": "mrope", "mrope_section": [...]}`).
    /// M-RoPE itself needs no settings here: for text-only input its three position components
    /// are equal, so it is ordinary 1-D RoPE whatever `mrope_section` says.
    fn rope_theta(&self) -> Result<f64, Error> {
        for params in ["rope_parameters", "rope_scaling"] {
            let Some(p) = self.get(params).filter(|p| p.is_object()) else {
                continue;
            };
            let kind = p
                .get("rope_type")
                .or_else(|| p.get("type"))
                .and_then(Value::as_str);
            if let Some(kind) = kind
                && !matches!(kind, "default" | "mrope")
            {
                return Err(self.error(format!(
                    "{params}: rope type `{kind}` is not supported (only default / mrope)"
                )));
            }
            if let Some(theta) = p.get("rope_theta") {
                return theta
                    .as_f64()
                    .ok_or_else(|| self.error(format!("{params}.rope_theta is not a number")));
            }
        }
        match self.get("rope_theta") {
            None | Some(Value::Null) => Ok(DEFAULT_ROPE_THETA),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.error("rope_theta is not a number".into())),
        }
    }

    /// `mrope_section` from `rope_parameters` (transformers 5) or `rope_scaling` (4.x).
    fn mrope_section(&self) -> Result<Option<[usize; 3]>, Error> {
        for params in ["rope_parameters", "rope_scaling"] {
            let Some(v) = self.get(params).and_then(|p| p.get("mrope_section")) else {
                continue;
            };
            if v.is_null() {
                continue;
            }
            let parsed: Option<Vec<usize>> = v.as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().and_then(|n| usize::try_from(n).ok()))
                    .collect()
            });
            return match parsed.as_deref() {
                Some(&[t, h, w]) if v.as_array().is_some_and(|a| a.len() == 3) => {
                    Ok(Some([t, h, w]))
                }
                _ => Err(self.error(format!(
                    "{params}.mrope_section must be three non-negative integers, got {v}"
                ))),
            };
        }
        Ok(None)
    }
}
