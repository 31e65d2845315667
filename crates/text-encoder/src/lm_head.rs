//! `Qwen2_5_VLForConditionalGeneration.lm_head`: final hidden states → vocabulary logits. Only the
//! caption path loads it (the prompt encoders take hidden states and never do).

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde_json::Value;
use weights::Weights;

use crate::{Error, QwenTextEncoder};

/// The checkpoint name of the LM head's weight `[vocab_size, hidden_size]` (no bias).
pub const LM_HEAD_WEIGHT: &str = "lm_head.weight";

/// Where the head's weight came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LmHeadSource {
    /// The checkpoint's own `lm_head.weight`.
    Own,
    /// The input embedding table (`tie_word_embeddings` and no `lm_head.weight` stored).
    TiedEmbeddings,
}

/// The LM head: `logits = h · Wᵀ`, `W` `[vocab_size, hidden_size]`.
#[derive(Module, Debug)]
pub struct LmHead<B: Backend> {
    weight: Param<Tensor<B, 2>>,
    #[module(skip)]
    source: LmHeadSource,
}

impl<B: Backend> LmHead<B> {
    /// Load the head of the `text_encoder/` folder `encoder` was loaded from.
    ///
    /// transformers' rule, reduced to what it computes: the checkpoint's `lm_head.weight` when
    /// it has one (with `tie_word_embeddings` transformers ties only equal tensors and otherwise
    /// keeps both, so the stored head is always what runs), else the input embeddings when the
    /// config ties them (`tie_word_embeddings` at the top level or, as 4.x saved it, in
    /// `text_config`), else an error (transformers would run a randomly initialised head).
    pub fn load(
        dir: impl AsRef<Path>,
        encoder: &QwenTextEncoder<B>,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let tied = tie_word_embeddings(&config)?;
        let weights = Weights::open(dir)?;
        Self::from_weights(&weights, tied, &config, encoder, device)
    }

    /// Build from an opened checkpoint; `tied` is the config's `tie_word_embeddings`, `config`
    /// only names the file in errors. Reads `lm_head.weight` and nothing else.
    pub fn from_weights(
        w: &Weights,
        tied: bool,
        config: &Path,
        encoder: &QwenTextEncoder<B>,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let cfg = encoder.config();
        if w.contains(LM_HEAD_WEIGHT) {
            let weight = w.get(LM_HEAD_WEIGHT, [cfg.vocab_size, cfg.hidden_size], device)?;
            return Ok(Self {
                weight: Param::from_tensor(weight),
                source: LmHeadSource::Own,
            });
        }
        if tied {
            return Ok(Self::tied(encoder));
        }
        Err(Error::Config {
            path: config.to_path_buf(),
            reason: format!(
                "tie_word_embeddings is false but the checkpoint ({}) has no {LM_HEAD_WEIGHT}",
                w.files()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The head of a tied checkpoint: `encoder`'s embedding table (shared, not copied).
    pub fn tied(encoder: &QwenTextEncoder<B>) -> Self {
        Self {
            weight: Param::from_tensor(encoder.embed_tokens_weight()),
            source: LmHeadSource::TiedEmbeddings,
        }
    }

    /// Where the weight came from.
    pub fn source(&self) -> LmHeadSource {
        self.source
    }

    /// Output size (rows of the weight).
    pub fn vocab_size(&self) -> usize {
        self.weight.val().dims()[0]
    }

    /// Logits `[N, vocab_size]` of hidden states `[N, D]`, in the model's dtype (as upstream;
    /// `generate` then reads them as f32).
    pub fn forward(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        hidden.matmul(self.weight.val().transpose())
    }
}

/// `tie_word_embeddings` of a Qwen2.5-VL `config.json`: the top-level value, or `text_config`'s
/// (transformers 5 forwards a true one from there, for configs saved by 4.x). Absent = false,
/// `Qwen2_5_VLConfig`'s default.
pub fn tie_word_embeddings(config: &Path) -> Result<bool, Error> {
    let json: Value = config_file::read_json(config)?;
    let flag = |v: Option<&Value>| -> Result<bool, Error> {
        match v {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::Config {
                path: PathBuf::from(config),
                reason: format!("tie_word_embeddings is not a boolean: {other}"),
            }),
        }
    };
    Ok(flag(json.get("tie_word_embeddings"))?
        || flag(
            json.get("text_config")
                .and_then(|t| t.get("tie_word_embeddings")),
        )?)
}
