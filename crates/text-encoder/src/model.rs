//! The Qwen2.5-VL language model (transformers `Qwen2_5_VLTextModel`), for text and for text
//! with image embeddings scattered in (`Qwen2_5_VLModel.forward` minus the vision tower).
//!
//! Embedding → N × [x += o_proj(Attn(RMSNorm(x))); x += down(SiLU(gate(h)) · up(h)), h = RMSNorm(x)]
//! → final RMSNorm. Field names mirror the PyTorch module tree, so `layers.{i}.self_attn.q_proj`
//! here is `model.layers.{i}.self_attn.q_proj` in the checkpoint.
//! One layer is [`crate::decoder`]'s; this module loads the stack and runs it.

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::embedding;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use weights::Weights;
use weights::nn::RmsNorm;

use crate::decoder::DecoderLayer;
use crate::kv_cache::KvCache;
use crate::rope;
use crate::{DEFAULT_MROPE_SECTION, Error, TextConfig};

/// Checkpoint prefixes that belong to other heads of `Qwen2_5_VLForConditionalGeneration`: the
/// vision tower (flat and transformers-5 layouts) and the LM head (the prompt paths take hidden
/// states; only captioning reads it, through [`LmHead`](crate::LmHead); tied checkpoints do not
/// store it at all).
const IGNORED_PREFIXES: [&str; 3] = ["visual.", "model.visual.", "lm_head."];

/// Where the language model's tensors live: the released flat layout (`model.layers.*`) or the
/// transformers ≥ 4.52 layout (`model.language_model.layers.*`).
const LAYOUTS: [&str; 2] = ["model.language_model.", "model."];

/// Every intermediate of one forward pass, for locating a parity failure.
#[derive(Debug, Clone)]
pub struct HiddenStates<B: Backend> {
    /// Token embeddings `[B, L, D]` (transformers' `hidden_states[0]`).
    pub embeddings: Tensor<B, 3>,
    /// Each decoder layer's output `[B, L, D]`, before the final norm.
    pub layers: Vec<Tensor<B, 3>>,
    /// The final RMSNorm's output `[B, L, D]`: transformers' `last_hidden_state`, and what it
    /// reports as `hidden_states[-1]` (the tensor Qwen-Image uses).
    pub last_hidden_state: Tensor<B, 3>,
}

/// The Qwen2.5-VL language model (`Qwen2_5_VLForConditionalGeneration` minus the vision tower
/// and the LM head), generic over the burn backend.
#[derive(Module, Debug)]
pub struct QwenTextEncoder<B: Backend> {
    embed_tokens: Param<Tensor<B, 2>>,
    layers: Vec<DecoderLayer<B>>,
    norm: RmsNorm<B>,
    #[module(skip)]
    config: TextConfig,
    #[module(skip)]
    inv_freq: Vec<f32>,
}

impl<B: Backend> QwenTextEncoder<B> {
    /// Load from a transformers `text_encoder/` folder: `config.json` plus `model.safetensors`
    /// or shards with their `model.safetensors.index.json` (bf16, f16 or f32 stored).
    ///
    /// Both key layouts are accepted (`model.layers.*` and `model.language_model.layers.*`).
    /// Loading is strict: a missing, wrong-shaped, non-float or unexpected tensor is an error
    /// naming the tensor and the file; `visual.*` and `lm_head.*` are skipped without reading.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = TextConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::from_weights(&weights, config, device)
    }

    /// Build from an opened checkpoint and its config (the layout is detected from the names).
    pub fn from_weights(
        w: &Weights,
        config: TextConfig,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let root = LAYOUTS
            .into_iter()
            .find(|p| w.contains(&format!("{p}embed_tokens.weight")))
            .unwrap_or("model.");
        let (d, eps) = (config.hidden_size, config.rms_norm_eps);
        let embed_tokens = Param::from_tensor(w.get(
            &format!("{root}embed_tokens.weight"),
            [config.vocab_size, d],
            device,
        )?);
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(w, &format!("{root}layers.{i}"), &config, device))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = RmsNorm::load(w, &format!("{root}norm"), d, eps, device)?;
        w.check_all_used(&IGNORED_PREFIXES)?;
        let inv_freq = rope::inv_freq(config.rope_theta, config.head_dim());
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            config,
            inv_freq,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    pub(crate) fn embed_tokens_device(&self) -> B::Device {
        self.embed_tokens.val().device()
    }

    /// The RoPE inverse frequencies `[head_dim / 2]` (f32, as upstream's `inv_freq` buffer).
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Final-norm hidden states `[B, L, D]` for token ids `[B, L]` and their attention mask
    /// `[B, L]` (1 = token, 0 = padding; either padding side).
    ///
    /// Both are checked first ([`TextConfig::check_tokens`]: not empty, every id below
    /// `vocab_size`, every mask value 0 or 1; read back from the device, `2·B·L` integers): an
    /// input the model cannot take is an [`Error::Tokens`], never a panic in the lookup.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Result<Tensor<B, 3>, Error> {
        self.check_token_tensors(&input_ids, &attention_mask)?;
        Ok(self.run(input_ids, attention_mask, None))
    }

    /// Like [`forward`](Self::forward), keeping the embeddings and every layer's output.
    pub fn forward_hidden_states(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Result<HiddenStates<B>, Error> {
        self.check_token_tensors(&input_ids, &attention_mask)?;
        let mut layers = Vec::with_capacity(self.layers.len() + 1);
        let last_hidden_state = self.run(input_ids, attention_mask, Some(&mut layers));
        let embeddings = layers.remove(0);
        Ok(HiddenStates {
            embeddings,
            layers,
            last_hidden_state,
        })
    }

    /// [`TextConfig::check_tokens`] on token ids and a mask held as tensors.
    fn check_token_tensors(
        &self,
        input_ids: &Tensor<B, 2, Int>,
        attention_mask: &Tensor<B, 2, Int>,
    ) -> Result<(), Error> {
        if input_ids.dims() != attention_mask.dims() {
            return Err(Error::Tokens(format!(
                "attention mask {:?} for {:?} token ids",
                attention_mask.dims(),
                input_ids.dims()
            )));
        }
        let ids = read_ints(input_ids.clone(), "token ids")?;
        let mask = read_ints(attention_mask.clone(), "attention mask")?;
        self.config.check_tokens(&ids, &mask, input_ids.dims())
    }

    /// Token embeddings `[B, L, D]` of a prompt with images: each `<|image_pad|>` token's row
    /// replaced by the next row of `image_embeds` `[N, D]`, in row-major token order (upstream's
    /// `masked_scatter`). The number of `<|image_pad|>` tokens must equal N; with no image tokens
    /// `image_embeds` may be `None`. The image rows are cast to the model's dtype, as upstream.
    pub fn embed_multimodal(
        &self,
        input_ids: Tensor<B, 2, Int>,
        image_embeds: Option<Tensor<B, 2>>,
    ) -> Result<Tensor<B, 3>, Error> {
        let [b, l] = input_ids.dims();
        let d = self.config.hidden_size;
        let ids = read_ints(input_ids.clone(), "token ids")?;
        self.config.check_ids(&ids)?;
        let image_id = i64::from(self.config.image_token_id);
        let slots: Vec<usize> = (0..ids.len()).filter(|&p| ids[p] == image_id).collect();
        let x = embedding(self.embed_tokens.val(), input_ids);
        let Some(image_embeds) = image_embeds else {
            if slots.is_empty() {
                return Ok(x);
            }
            return Err(Error::Images(format!(
                "{} <|image_pad|> tokens but no image embeddings",
                slots.len()
            )));
        };
        let [n, width] = image_embeds.dims();
        if width != d || n != slots.len() {
            return Err(Error::Images(format!(
                "image embeddings are [{n}, {width}] but the prompt has {} <|image_pad|> tokens \
                 of width {d}",
                slots.len()
            )));
        }
        // One gather over [token rows; image rows]: row p of the result is token p, or image row
        // k when p is the k-th image slot. Copies only, so the values are upstream's bit for bit.
        let mut index: Vec<i64> = (0..(b * l) as i64).collect();
        for (k, &p) in slots.iter().enumerate() {
            index[p] = (b * l + k) as i64;
        }
        let device = x.device();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [b * l]), &device);
        let dtype = x.dtype();
        let table = Tensor::cat(vec![x.reshape([b * l, d]), image_embeds.cast(dtype)], 0);
        Ok(table.select(0, index).reshape([b, l, d]))
    }

    /// Final-norm hidden states `[B, L, D]` of a prompt with images ([`MultimodalInputs`]).
    pub fn forward_multimodal(&self, inputs: MultimodalInputs<B>) -> Result<Tensor<B, 3>, Error> {
        let (x, mask, positions) = self.prepare_multimodal(inputs)?;
        Ok(self.run_embeds(x, mask, positions, None))
    }

    /// Like [`forward_multimodal`](Self::forward_multimodal), keeping the embeddings (after the
    /// image scatter) and every layer's output.
    pub fn forward_multimodal_hidden_states(
        &self,
        inputs: MultimodalInputs<B>,
    ) -> Result<HiddenStates<B>, Error> {
        let (x, mask, positions) = self.prepare_multimodal(inputs)?;
        let mut layers = Vec::with_capacity(self.layers.len() + 1);
        let last_hidden_state = self.run_embeds(x, mask, positions, Some(&mut layers));
        let embeddings = layers.remove(0);
        Ok(HiddenStates {
            embeddings,
            layers,
            last_hidden_state,
        })
    }

    /// Token embeddings `[B, L, D]` of `input_ids` `[B, L]`, a plain lookup (what a decode
    /// step feeds the model; ids must be below `vocab_size`).
    pub fn embed_tokens(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        embedding(self.embed_tokens.val(), input_ids)
    }

    /// The input embedding table `[vocab_size, D]` (the LM head of a tied checkpoint).
    pub(crate) fn embed_tokens_weight(&self) -> Tensor<B, 2> {
        self.embed_tokens.val()
    }

    /// Final-norm hidden states `[1, n, D]` of `x` `[1, n, D]` (embeddings, images already
    /// scattered in), the n tokens that follow the ones in `cache`, at M-RoPE positions
    /// `position_ids` `[3, 1, n]`; their keys and values are added to `cache`. An empty cache
    /// makes this the prefill (equal to [`forward_multimodal`](Self::forward_multimodal) on an
    /// unpadded prompt); then one token at a time, as transformers' `generate` feeds it.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        position_ids: Tensor<B, 3, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>, Error> {
        let [b, l, d] = x.dims();
        if b != 1 || d != self.config.hidden_size || l == 0 {
            return Err(Error::Tokens(format!(
                "cached forward takes one sequence of new tokens [1, n, {}], got {:?}",
                self.config.hidden_size,
                [b, l, d]
            )));
        }
        if position_ids.dims() != [3, b, l] {
            return Err(Error::Tokens(format!(
                "position ids {:?} for {b}×{l} new tokens (expected [3, {b}, {l}])",
                position_ids.dims()
            )));
        }
        if cache.num_layers() != self.layers.len() {
            return Err(Error::Tokens(format!(
                "a KV cache for {} layers given to a {}-layer model",
                cache.num_layers(),
                self.layers.len()
            )));
        }
        let section = self.mrope_section();
        let half = self.inv_freq.len();
        if section.iter().sum::<usize>() != half {
            return Err(Error::MropeSection { section, half });
        }
        let rope = rope::tables_mrope::<B>(position_ids, &self.inv_freq, section, &x.device());
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_cached(x, &rope, cache, i);
        }
        cache.advance(l);
        Ok(self.norm.forward(x))
    }

    /// The rotary split in use: the config's `mrope_section`, or transformers' default.
    pub fn mrope_section(&self) -> [usize; 3] {
        self.config.mrope_section.unwrap_or(DEFAULT_MROPE_SECTION)
    }

    #[allow(clippy::type_complexity)]
    fn prepare_multimodal(
        &self,
        inputs: MultimodalInputs<B>,
    ) -> Result<(Tensor<B, 3>, Tensor<B, 2, Int>, Option<Tensor<B, 3, Int>>), Error> {
        let [b, l] = inputs.input_ids.dims();
        self.check_token_tensors(&inputs.input_ids, &inputs.attention_mask)?;
        if let Some(p) = &inputs.position_ids {
            if p.dims() != [3, b, l] {
                return Err(Error::Tokens(format!(
                    "position ids {:?} for {b}×{l} token ids (expected [3, {b}, {l}])",
                    p.dims()
                )));
            }
            let section = self.mrope_section();
            let half = self.inv_freq.len();
            if section.iter().sum::<usize>() != half {
                return Err(Error::MropeSection { section, half });
            }
        }
        let x = self.embed_multimodal(inputs.input_ids, inputs.image_embeds)?;
        Ok((x, inputs.attention_mask, inputs.position_ids))
    }

    fn run(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        collect: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Tensor<B, 3> {
        let x = embedding(self.embed_tokens.val(), input_ids);
        self.run_embeds(x, attention_mask, None, collect)
    }

    /// The decoder stack on embeddings `x`; `position_ids` `[3, B, L]` selects M-RoPE, `None`
    /// the 1-D positions of text.
    fn run_embeds(
        &self,
        x: Tensor<B, 3>,
        attention_mask: Tensor<B, 2, Int>,
        position_ids: Option<Tensor<B, 3, Int>>,
        mut collect: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Tensor<B, 3> {
        let device = x.device();
        let [b, l, _] = x.dims();
        let is_pad = attention_mask.clone().equal_elem(0);
        let padded = attention_mask.clone().min().into_scalar().elem::<i64>() == 0;
        let rope = match position_ids {
            // Positions count real tokens only: p = cumsum(mask) − 1 (0…n−1 whatever the padding
            // side); pads get a dummy 1, as transformers 4.x's get_rope_index gives them. RoPE is
            // relative, so this equals transformers 5's plain 0…L−1 on real tokens under right
            // padding and up to rounding under left padding; pad rows are dropped downstream.
            None => {
                let positions = attention_mask
                    .cumsum(1)
                    .sub_scalar(1)
                    .mask_fill(is_pad.clone(), 1);
                rope::tables::<B>(positions, &self.inv_freq, &device)
            }
            Some(p) => rope::tables_mrope::<B>(p, &self.inv_freq, self.mrope_section(), &device),
        };
        // Key-padding mask, materialised once for all layers as [B, 1, L, L]; skipped when
        // nothing is padded (every single prompt), which spares the CPU kernel a per-score test
        // (~40% of the prefill time at 1058 tokens).
        let mask = padded.then(|| is_pad.clone().reshape([b, 1, 1, l]).repeat_dim(2, l));

        let mut x = x;
        for layer in &self.layers {
            if let Some(c) = collect.as_deref_mut() {
                c.push(x.clone());
            }
            x = layer.forward(x, &rope, mask.as_ref());
        }
        if let Some(c) = collect {
            c.push(x.clone());
        }
        self.norm.forward(x)
    }
}

/// A forward pass over a prompt with images: transformers' `Qwen2_5_VLModel.forward` given the
/// vision tower's output instead of pixels.
#[derive(Debug, Clone)]
pub struct MultimodalInputs<B: Backend> {
    /// Token ids `[B, L]`, `<|image_pad|>` repeated once per merged patch of each image.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, L]`: 1 = token, 0 = padding (either side).
    pub attention_mask: Tensor<B, 2, Int>,
    /// `[N, D]`: every image's embeddings, in the order their `<|image_pad|>` tokens appear
    /// (row by row); `None` when the prompt has no image.
    pub image_embeds: Option<Tensor<B, 2>>,
    /// `[3, B, L]` M-RoPE positions ([`mrope_position_ids`](crate::mrope_position_ids));
    /// `None` numbers the tokens 0, 1, 2, … on all three axes, as for text.
    pub position_ids: Option<Tensor<B, 3, Int>>,
}

/// An integer tensor's values, read back from the device.
fn read_ints<B: Backend>(t: Tensor<B, 2, Int>, what: &str) -> Result<Vec<i64>, Error> {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .map_err(|e| Error::Tokens(format!("reading the {what} back: {e:?}")))
}
