//! The image tower of a Hugging Face CLIP checkpoint and the similarity upstream compares:
//! `get_image_features` (patch embedding, class token, position embedding, pre-LayerNorm, the
//! encoder, post-LayerNorm of the class token, `visual_projection`), L2-normalised, dot product.

mod config;
mod hub;

use std::path::Path;

use burn::nn::Linear;
use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use weights::Weights;

pub use config::{Activation, ClipConfig};
pub use hub::DEFAULT_CLIP_MODEL;

use crate::error::{Error, Result};
use crate::preprocess::ClipPreprocessor;

/// Weight-name prefixes a `CLIPModel` checkpoint has besides the image tower.
const TEXT_PREFIXES: [&str; 4] = [
    "text_model.",
    "text_projection.",
    "logit_scale",
    "vision_model.embeddings.position_ids",
];

/// Cosine similarity of two L2-normalised embeddings: upstream's `float(np.dot(a, b))`.
pub fn clip_similarity(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// `LayerNorm` with its learned scale and shift (PyTorch's biased variance).
#[derive(Debug)]
struct LayerNorm<B: Backend> {
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    fn load(w: &Weights, prefix: &str, dim: usize, eps: f64, device: &B::Device) -> Result<Self> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), [dim], device)?,
            bias: w.get(&format!("{prefix}.bias"), [dim], device)?,
            eps,
        })
    }

    fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let normed = (x - mean) / (var + self.eps).sqrt();
        normed * self.weight.clone().unsqueeze() + self.bias.clone().unsqueeze()
    }
}

/// One pre-norm transformer layer (`CLIPEncoderLayer`).
#[derive(Debug)]
struct EncoderLayer<B: Backend> {
    layer_norm1: LayerNorm<B>,
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    out_proj: Linear<B>,
    layer_norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> EncoderLayer<B> {
    fn load(w: &Weights, prefix: &str, cfg: &ClipConfig, device: &B::Device) -> Result<Self> {
        let (d, m) = (cfg.hidden_size, cfg.intermediate_size);
        let lin = |name: &str, d_in, d_out| {
            w.linear::<B>(&format!("{prefix}.{name}"), d_in, d_out, true, device)
        };
        Ok(Self {
            layer_norm1: LayerNorm::load(
                w,
                &format!("{prefix}.layer_norm1"),
                d,
                cfg.layer_norm_eps,
                device,
            )?,
            q_proj: lin("self_attn.q_proj", d, d)?,
            k_proj: lin("self_attn.k_proj", d, d)?,
            v_proj: lin("self_attn.v_proj", d, d)?,
            out_proj: lin("self_attn.out_proj", d, d)?,
            layer_norm2: LayerNorm::load(
                w,
                &format!("{prefix}.layer_norm2"),
                d,
                cfg.layer_norm_eps,
                device,
            )?,
            fc1: lin("mlp.fc1", d, m)?,
            fc2: lin("mlp.fc2", m, d)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, heads: usize, act: Activation) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let hd = d / heads;
        let h = self.layer_norm1.forward(x.clone());
        let split = |t: Tensor<B, 3>| t.reshape([b, n, heads, hd]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(h.clone()));
        let k = split(self.k_proj.forward(h.clone()));
        let v = split(self.v_proj.forward(h));
        // Eager attention as CLIPAttention: softmax(q kᵀ · head_dim^-0.5) v, no mask for images.
        let scores = q.matmul(k.swap_dims(2, 3)) * (hd as f64).powf(-0.5);
        let attn = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, n, d]);
        let x = x + self.out_proj.forward(attn);
        let h = self.fc1.forward(self.layer_norm2.forward(x.clone()));
        let h = match act {
            Activation::QuickGelu => h.clone() * sigmoid(h * 1.702),
            Activation::Gelu => gelu(h),
        };
        x + self.fc2.forward(h)
    }
}

/// The tower's outputs, for parity checks of its stages.
#[derive(Debug, Clone)]
pub struct VisionOutput<B: Backend> {
    /// Embeddings after `pre_layrnorm` (transformers' `hidden_states[0]`), `[batch, tokens, hidden]`.
    pub embeddings: Tensor<B, 3>,
    /// Output of the last encoder layer, `[batch, tokens, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// `post_layernorm` of the class token, `[batch, hidden]`.
    pub pooler_output: Tensor<B, 2>,
}

/// The image tower of a CLIP checkpoint, with the preprocessing of its `preprocessor_config.json`.
#[derive(Debug)]
pub struct ClipImageEncoder<B: Backend> {
    config: ClipConfig,
    preprocessor: ClipPreprocessor,
    /// Patch convolution (kernel = stride = patch, no bias) as a matrix `[C·p·p, hidden]`.
    patch_embedding: Tensor<B, 2>,
    class_embedding: Tensor<B, 1>,
    position_embedding: Tensor<B, 2>,
    pre_layrnorm: LayerNorm<B>,
    layers: Vec<EncoderLayer<B>>,
    post_layernorm: LayerNorm<B>,
    visual_projection: Linear<B>,
    device: B::Device,
}

impl<B: Backend> ClipImageEncoder<B> {
    /// Loads a model given as a local folder or an HF repo id (e.g. [`DEFAULT_CLIP_MODEL`]). A repo
    /// is looked up in the HF cache first and downloaded otherwise, unless `HF_HUB_OFFLINE=1`.
    /// [`Error::ModelUnavailable`] means the model could not be had: report CLIP as skipped.
    pub fn load(model: &str, device: &B::Device) -> Result<Self> {
        let dir = hub::resolve(model)?;
        Self::from_dir(&dir, device)
    }

    /// Loads `config.json`, `preprocessor_config.json` (defaults if absent) and the safetensors of
    /// a `CLIPModel` or `CLIPVisionModelWithProjection` folder.
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = ClipConfig::from_file(&dir.join("config.json"))?;
        let pp = dir.join("preprocessor_config.json");
        let preprocessor = if pp.is_file() {
            ClipPreprocessor::from_file(&pp)?
        } else {
            ClipPreprocessor::default()
        };
        let weights = Weights::open(dir)?;
        Self::from_weights(config, preprocessor, &weights, device)
    }

    /// Builds the tower from already opened weights. Every `vision_model.*` and
    /// `visual_projection.*` tensor must be used; a `CLIPModel`'s text tower is ignored.
    pub fn from_weights(
        config: ClipConfig,
        preprocessor: ClipPreprocessor,
        w: &Weights,
        device: &B::Device,
    ) -> Result<Self> {
        let (d, c, p) = (config.hidden_size, config.num_channels, config.patch_size);
        let eps = config.layer_norm_eps;
        let conv: Tensor<B, 4> = w.get(
            "vision_model.embeddings.patch_embedding.weight",
            [d, c, p, p],
            device,
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                EncoderLayer::load(
                    w,
                    &format!("vision_model.encoder.layers.{i}"),
                    &config,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = Self {
            patch_embedding: conv.reshape([d, c * p * p]).transpose(),
            class_embedding: w.get("vision_model.embeddings.class_embedding", [d], device)?,
            position_embedding: w.get(
                "vision_model.embeddings.position_embedding.weight",
                [config.num_positions(), d],
                device,
            )?,
            // Sic: transformers names it `pre_layrnorm`.
            pre_layrnorm: LayerNorm::load(w, "vision_model.pre_layrnorm", d, eps, device)?,
            layers,
            post_layernorm: LayerNorm::load(w, "vision_model.post_layernorm", d, eps, device)?,
            visual_projection: w.linear::<B>(
                "visual_projection",
                d,
                config.projection_dim,
                false,
                device,
            )?,
            config,
            preprocessor,
            device: device.clone(),
        };
        w.check_all_used(&TEXT_PREFIXES)?;
        Ok(encoder)
    }

    /// The model's shape.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// The model's preprocessing.
    pub fn preprocessor(&self) -> &ClipPreprocessor {
        &self.preprocessor
    }

    /// The tower on `pixel_values` `[batch, channels, image_size, image_size]`.
    pub fn forward_vision(&self, pixel_values: Tensor<B, 4>) -> VisionOutput<B> {
        let cfg = &self.config;
        let [b, c, _, _] = pixel_values.dims();
        let (g, p, d) = (cfg.grid(), cfg.patch_size, cfg.hidden_size);
        // Non-overlapping patches flattened in (channel, row, column) order, the layout of the
        // conv kernel, so the stride-p convolution is one matmul.
        let patches = pixel_values
            .reshape([b, c, g, p, g, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, g * g, c * p * p]);
        let patch_embeds = patches.matmul(self.patch_embedding.clone().unsqueeze());
        let class = self
            .class_embedding
            .clone()
            .reshape([1, 1, d])
            .expand([b, 1, d]);
        let tokens =
            Tensor::cat(vec![class, patch_embeds], 1) + self.position_embedding.clone().unsqueeze();
        let embeddings = self.pre_layrnorm.forward(tokens);
        let mut h = embeddings.clone();
        for layer in &self.layers {
            h = layer.forward(h, cfg.num_attention_heads, cfg.hidden_act);
        }
        let cls = h.clone().narrow(1, 0, 1).reshape([b, d]);
        VisionOutput {
            embeddings,
            last_hidden_state: h,
            pooler_output: self.post_layernorm.forward(cls),
        }
    }

    /// Projected image features `[batch, projection_dim]`, not normalised (`get_image_features`).
    pub fn image_features(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 2> {
        self.visual_projection
            .forward(self.forward_vision(pixel_values).pooler_output)
    }

    /// The L2-normalised embedding of one image, preprocessed as the checkpoint specifies.
    pub fn embed(&self, img: &RgbImage) -> Result<Vec<f32>> {
        let pv = self.preprocessor.pixel_values(img);
        let side = self.config.image_size;
        if (pv.height, pv.width) != (side, side) {
            return Err(Error::BadValue {
                path: "preprocessor_config.json".into(),
                key: "crop_size".into(),
                problem: format!(
                    "gives {}x{} pixel values but the model expects {side}x{side}",
                    pv.width, pv.height
                ),
            });
        }
        let data = TensorData::new(pv.data, [1, 3, pv.height, pv.width]);
        let features = self.image_features(Tensor::from_data(data, &self.device));
        let v: Vec<f32> = features
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap_or_default();
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        Ok(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
    }

    /// Cosine similarity of the two images' embeddings.
    pub fn similarity(&self, a: &RgbImage, b: &RgbImage) -> Result<f64> {
        Ok(clip_similarity(&self.embed(a)?, &self.embed(b)?))
    }
}
