//! The case file as written: the TOML schema (unknown keys refused), before any default is
//! filled or path checked.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub defaults: Option<toml::Spanned<String>>,
    pub gt_root: Option<String>,
    pub thresholds: Option<toml::Spanned<String>>,
    pub case: Vec<toml::Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCase {
    pub id: toml::Spanned<String>,
    pub model: String,
    pub prompt: Option<String>,
    pub negative_prompt: Option<String>,
    pub true_cfg_scale: Option<f32>,
    pub guidance_scale: Option<f32>,
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub num_inference_steps: Option<usize>,
    pub seed: Option<u64>,
    pub generator: Option<String>,
    pub latents: Option<String>,
    pub image: Option<OneOrMany>,
    pub num_gpus: Option<u32>,
    pub output_format: Option<String>,
    pub skip: Option<String>,
    pub layers: Option<usize>,
    pub resolution: Option<u32>,
    pub cfg_normalize: Option<bool>,
    pub use_en_prompt: Option<bool>,
    pub vision_positions: Option<String>,
}

/// `image = "a.png"` or `image = ["a.png", "https://…/b.jpg"]`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "`image` to be a file or http(s) URL, or a list of them"
)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
