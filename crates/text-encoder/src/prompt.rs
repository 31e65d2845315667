//! The Qwen-Image prompt path (diffusers `QwenImagePipeline._get_qwen_prompt_embeds` followed by
//! the truncation of `encode_prompt`): template → tokens → final-norm hidden states → keep each
//! sample's real tokens → drop the 34-token system prefix → re-pad with zeros → mask.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use tokenizer_loader::{Batch, QwenTokenizer};
use weights::PipelineDir;

use crate::{Error, QwenTextEncoder};

/// The prompt template of `QwenImagePipeline` (`prompt_template_encode`); the prompt replaces `{}`.
pub const PROMPT_TEMPLATE: &str = "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";

/// Tokens of the template before the prompt (`prompt_template_encode_start_idx`): dropped from
/// the embeddings. The 5-token assistant suffix after the prompt is kept.
pub const TEMPLATE_PREFIX_TOKENS: usize = 34;

/// `tokenizer_max_length`: the tokenizer truncates at this plus [`TEMPLATE_PREFIX_TOKENS`].
pub const TOKENIZER_MAX_LENGTH: usize = 1024;

/// The largest `max_sequence_length` diffusers accepts (its `check_inputs` refuses more).
pub const MAX_SEQUENCE_LENGTH_LIMIT: usize = 1024;

/// `QwenImagePipeline.__call__`'s default `max_sequence_length`.
pub const DEFAULT_MAX_SEQUENCE_LENGTH: usize = 512;

/// A prompt inside the template, exactly as `PROMPT_TEMPLATE.format(prompt)` (the prompt is
/// inserted verbatim, braces included).
pub fn format_prompt(prompt: &str) -> String {
    let (prefix, suffix) = PROMPT_TEMPLATE
        .split_once("{}")
        .unwrap_or((PROMPT_TEMPLATE, ""));
    format!("{prefix}{prompt}{suffix}")
}

/// Prompt embeddings ready for the DiT.
#[derive(Debug, Clone)]
pub struct PromptEmbeds<B: Backend> {
    /// `[B, L, D]`: each sample's rows after the template prefix, zero rows after its end.
    pub embeds: Tensor<B, 3>,
    /// `[B, L]`: 1 for real rows, 0 for padding, aligned with `embeds`.
    pub mask: Tensor<B, 2, Int>,
    /// Real rows per sample (`mask.sum(1)`), after truncation.
    pub lengths: Vec<usize>,
}

impl<B: Backend> PromptEmbeds<B> {
    /// The mask as the pipeline passes it on: `None` when every row is real (diffusers ≥ 0.37
    /// replaces an all-ones mask by `None`, e.g. for every single prompt), else the mask.
    pub fn mask_if_needed(&self) -> Option<Tensor<B, 2, Int>> {
        let l = self.embeds.dims()[1];
        (!self.lengths.iter().all(|&n| n == l)).then(|| self.mask.clone())
    }
}

impl<B: Backend> QwenTextEncoder<B> {
    /// The prompt path from templated prompts already tokenized as the pipeline does it
    /// ([`PromptEncoder::tokenize`]): run the model, keep each sample's real tokens, drop the
    /// first [`TEMPLATE_PREFIX_TOKENS`], re-pad with zeros to the longest, then keep at most
    /// `max_sequence_length` rows (1..=1024).
    pub fn encode_tokens(
        &self,
        tokens: &Batch,
        max_sequence_length: usize,
    ) -> Result<PromptEmbeds<B>, Error> {
        check_max_sequence_length(max_sequence_length)?;
        let (b, t) = (tokens.batch_size, tokens.seq_len);
        let kept = self.check_tokens(tokens)?;
        let device = self.embed_tokens_device();
        let to_tensor = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, [b, t]), &device)
        };
        let hidden = self.forward(to_tensor(&tokens.ids), to_tensor(&tokens.mask));
        let d = hidden.dims()[2];

        // Gather the kept rows of every sample into [B, L, D] with one `select`; padding slots
        // point at row 0 and are zeroed afterwards (upstream pads with `new_zeros`).
        let longest = kept.iter().map(Vec::len).max().unwrap_or(0);
        let len = longest.min(max_sequence_length);
        let mut index = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for (row, rows) in kept.iter().enumerate() {
            for k in 0..len {
                let real = rows.get(k);
                index.push((row * t + real.copied().unwrap_or(0)) as i64);
                mask.push(i64::from(real.is_some()));
            }
        }
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [b * len]), &device);
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [b, len]), &device);
        let embeds = hidden
            .reshape([b * t, d])
            .select(0, index)
            .reshape([b, len, d]);
        let pad = mask
            .clone()
            .equal_elem(0)
            .unsqueeze_dim::<3>(2)
            .expand([b, len, d]);
        Ok(PromptEmbeds {
            embeds: embeds.mask_fill(pad, 0.0),
            mask,
            lengths: kept.iter().map(|r| r.len().min(len)).collect(),
        })
    }

    /// Validate a token batch; per sample, the positions of its real tokens after the prefix.
    fn check_tokens(&self, tokens: &Batch) -> Result<Vec<Vec<usize>>, Error> {
        let (b, t) = (tokens.batch_size, tokens.seq_len);
        if b == 0 || t == 0 {
            return Err(Error::Tokens("empty batch".into()));
        }
        if tokens.ids.len() != b * t || tokens.mask.len() != b * t {
            return Err(Error::Tokens(format!(
                "{} ids and {} mask values for a {b}×{t} batch",
                tokens.ids.len(),
                tokens.mask.len()
            )));
        }
        let vocab = self.config().vocab_size;
        if let Some(&id) = tokens.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Tokens(format!(
                "token id {id} is outside the vocabulary ({vocab})"
            )));
        }
        let mut kept = Vec::with_capacity(b);
        for (row, m) in tokens.mask.chunks_exact(t).enumerate() {
            if m.iter().any(|&v| v > 1) {
                return Err(Error::Tokens(format!(
                    "row {row}: attention mask values must be 0 or 1"
                )));
            }
            let real: Vec<usize> = (0..t).filter(|&i| m[i] == 1).collect();
            if real.len() <= TEMPLATE_PREFIX_TOKENS {
                return Err(Error::Tokens(format!(
                    "row {row} has {} tokens: a templated prompt has more than the {TEMPLATE_PREFIX_TOKENS}-token prefix",
                    real.len()
                )));
            }
            kept.push(real[TEMPLATE_PREFIX_TOKENS..].to_vec());
        }
        Ok(kept)
    }
}

fn check_max_sequence_length(n: usize) -> Result<(), Error> {
    if (1..=MAX_SEQUENCE_LENGTH_LIMIT).contains(&n) {
        Ok(())
    } else {
        Err(Error::MaxSequenceLength {
            got: n,
            limit: MAX_SEQUENCE_LENGTH_LIMIT,
        })
    }
}

/// Tokenizer + text encoder: prompts in, [`PromptEmbeds`] out.
#[derive(Debug)]
pub struct PromptEncoder<B: Backend> {
    tokenizer: QwenTokenizer,
    encoder: QwenTextEncoder<B>,
}

impl<B: Backend> PromptEncoder<B> {
    /// Load the tokenizer and the text encoder of a diffusers pipeline folder (`model_index.json`,
    /// `tokenizer/`, `text_encoder/`).
    pub fn from_pipeline_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let pipeline = PipelineDir::open(dir)?;
        let encoder = QwenTextEncoder::load(pipeline.component("text_encoder")?, device)?;
        let tokenizer = QwenTokenizer::from_pipeline_dir(dir)?;
        Ok(Self::new(tokenizer, encoder))
    }

    /// Pair an already loaded tokenizer and model.
    pub fn new(tokenizer: QwenTokenizer, encoder: QwenTextEncoder<B>) -> Self {
        Self { tokenizer, encoder }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &QwenTokenizer {
        &self.tokenizer
    }

    /// The language model.
    pub fn encoder(&self) -> &QwenTextEncoder<B> {
        &self.encoder
    }

    /// The pipeline's tokenizer call: each prompt in the template, right-padded to the longest,
    /// truncated at 1024 + 34 tokens.
    pub fn tokenize(&self, prompts: &[String]) -> Result<Batch, Error> {
        let texts: Vec<String> = prompts.iter().map(|p| format_prompt(p)).collect();
        Ok(self
            .tokenizer
            .encode_batch_padded(&texts, TOKENIZER_MAX_LENGTH + TEMPLATE_PREFIX_TOKENS)?)
    }

    /// Encode prompts as `QwenImagePipeline.encode_prompt` does, keeping at most
    /// `max_sequence_length` (1..=1024, default [`DEFAULT_MAX_SEQUENCE_LENGTH`]) rows.
    pub fn encode(
        &self,
        prompts: &[String],
        max_sequence_length: usize,
    ) -> Result<PromptEmbeds<B>, Error> {
        check_max_sequence_length(max_sequence_length)?;
        if prompts.is_empty() {
            return Err(Error::Tokens("no prompts to encode".into()));
        }
        let tokens = self.tokenize(prompts)?;
        self.encoder.encode_tokens(&tokens, max_sequence_length)
    }
}
