//! [`QwenTokenizer`]: the loaded tokenizer, its [`Decision`], and the pipeline's batch encoding.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::decision::{ClassSource, Decision, TokenizerPath, decide, decide_forced};
use crate::error::{Error, Result};
use crate::slow::{self, SlowFiles};
use crate::source::{Source, read_json};
use weights::HubOptions;

/// The padding token transformers' `Qwen2Tokenizer` uses when the config names none.
const DEFAULT_PAD: &str = "<|endoftext|>";

/// A tokenizer loaded the way a diffusers pipeline declares it, plus the reason for the choice.
#[derive(Debug, Clone)]
pub struct QwenTokenizer {
    inner: tokenizers::Tokenizer,
    decision: Decision,
    pad_id: u32,
    location: String,
}

/// Token ids of a batch, right-padded to the longest sequence (after truncation).
///
/// `ids` and `mask` are row-major `[batch, seq_len]`, ready for a tensor constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Token ids, padded with the pad token (`<|endoftext|>` for Qwen2).
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Number of real tokens per row.
    pub lens: Vec<usize>,
    /// Number of rows.
    pub batch_size: usize,
    /// Length of every row (the longest row, capped at the truncation length).
    pub seq_len: usize,
}

impl Batch {
    /// The ids of row `i` (padding included); `None` when out of range.
    pub fn row(&self, i: usize) -> Option<&[u32]> {
        (i < self.batch_size).then(|| &self.ids[i * self.seq_len..(i + 1) * self.seq_len])
    }

    /// The mask of row `i`; `None` when out of range.
    pub fn mask_row(&self, i: usize) -> Option<&[u32]> {
        (i < self.batch_size).then(|| &self.mask[i * self.seq_len..(i + 1) * self.seq_len])
    }
}

impl QwenTokenizer {
    /// Load the tokenizer of a diffusers pipeline folder (`model_index.json` + `tokenizer/`).
    ///
    /// The class comes from `model_index.json`'s `"tokenizer"` entry, else from
    /// `tokenizer/tokenizer_config.json`'s `tokenizer_class`.
    pub fn from_pipeline_dir(dir: impl AsRef<Path>) -> Result<Self> {
        load_pipeline(Source::Local(dir.as_ref().to_owned()), "tokenizer")
    }

    /// Load a tokenizer folder on its own; the class comes from its `tokenizer_config.json`.
    pub fn from_folder(tokenizer_dir: impl AsRef<Path>) -> Result<Self> {
        load_folder(Source::Local(tokenizer_dir.as_ref().to_owned()), None)
    }

    /// Load a tokenizer folder with the path chosen by the caller (falling back to the other path
    /// when its files are missing, as the [`Decision`] then says).
    pub fn from_folder_as(tokenizer_dir: impl AsRef<Path>, path: TokenizerPath) -> Result<Self> {
        let source = Source::Local(tokenizer_dir.as_ref().to_owned());
        source.check_exists()?;
        let (has_fast, has_slow) = available(&source)?;
        let decision = decide_forced(path, has_fast, has_slow, &source.location())?;
        build(&source, decision)
    }

    /// Load from the Hugging Face Hub (or its local cache). With `subfolder = Some("tokenizer")`
    /// the repository is a pipeline (`model_index.json` at its root is consulted); with `None`
    /// the repository root is the tokenizer folder.
    pub fn from_hub(repo_id: &str, subfolder: Option<&str>, opts: &HubOptions) -> Result<Self> {
        let root = Source::hub(repo_id, opts)?;
        match subfolder
            .map(|s| s.trim_matches('/'))
            .filter(|s| !s.is_empty())
        {
            Some(sub) => load_pipeline(root, sub),
            None => load_folder(root, None),
        }
    }

    /// Which path was loaded and why.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Where the files came from (a folder, or `hf://repo/subfolder`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The id of a token (regular or added), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The padding id (`<|endoftext|>` for Qwen2).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) are always
    /// recognised; `add_special` only controls the post-processor, which adds nothing for Qwen2
    /// (no BOS), so both values give the same ids here.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|e| self.encode_error(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode several texts as the pipeline does: `padding=True` (right, to the longest),
    /// `truncation=True` at `max_len` (keeping the first `max_len` tokens), with the attention
    /// mask. Qwen-Image uses `max_len = 1024 + 34`.
    pub fn encode_batch_padded<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        max_len: usize,
    ) -> Result<Batch> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encs = self
            .inner
            .encode_batch_fast(inputs, true)
            .map_err(|e| self.encode_error(e))?;
        let lens: Vec<usize> = encs
            .iter()
            .map(|e| e.get_ids().len().min(max_len))
            .collect();
        let seq_len = lens.iter().copied().max().unwrap_or(0);
        let batch_size = encs.len();
        let mut ids = vec![self.pad_id; batch_size * seq_len];
        let mut mask = vec![0u32; batch_size * seq_len];
        for (row, (enc, &len)) in encs.iter().zip(&lens).enumerate() {
            let start = row * seq_len;
            ids[start..start + len].copy_from_slice(&enc.get_ids()[..len]);
            mask[start..start + len].fill(1);
        }
        Ok(Batch {
            ids,
            mask,
            lens,
            batch_size,
            seq_len,
        })
    }

    /// Text of `ids` (byte-level decoded); special tokens dropped when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| self.encode_error(e))
    }

    fn encode_error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizers {
            path: PathBuf::from(&self.location),
            message: e.to_string(),
        }
    }
}

/// `(has tokenizer.json, has vocab.json + merges.txt)`.
fn available(source: &Source) -> Result<(bool, bool)> {
    let has_fast = source.find("tokenizer.json")?.is_some();
    let has_slow = source.find("vocab.json")?.is_some() && source.find("merges.txt")?.is_some();
    Ok((has_fast, has_slow))
}

fn load_pipeline(root: Source, component: &str) -> Result<QwenTokenizer> {
    root.check_exists()?;
    let mut declared = None;
    let index_path = root.find("model_index.json")?;
    if let Some(path) = &index_path {
        let path = path.clone();
        let index: Value = read_json(&path)?;
        if let Some(entry) = index.get(component) {
            let class = entry
                .as_array()
                .and_then(|a| a.get(1))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Format {
                    path: path.clone(),
                    message: format!(
                        "entry {component:?} must be [\"<library>\", \"<Class>\"], got {entry}"
                    ),
                })?;
            declared = Some(class.to_owned());
        }
    }
    let folder = root.child(component);
    folder.check_exists()?;
    load_folder(
        folder,
        declared.zip(index_path.map(ClassSource::ModelIndex)),
    )
}

fn load_folder(folder: Source, declared: Option<(String, ClassSource)>) -> Result<QwenTokenizer> {
    folder.check_exists()?;
    let declared = match declared {
        Some(d) => Some(d),
        None => match folder.find("tokenizer_config.json")? {
            Some(path) => {
                let cfg: Value = read_json(&path)?;
                match cfg.get("tokenizer_class") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(c)) => {
                        Some((c.clone(), ClassSource::TokenizerConfig(path.clone())))
                    }
                    Some(other) => {
                        return Err(Error::Format {
                            path,
                            message: format!("tokenizer_class must be a string, got {other}"),
                        });
                    }
                }
            }
            None => None,
        },
    };
    let (has_fast, has_slow) = available(&folder)?;
    let decision = decide(
        declared.as_ref().map(|(c, s)| (c.as_str(), s.clone())),
        has_fast,
        has_slow,
        &folder.location(),
    )?;
    build(&folder, decision)
}

fn build(source: &Source, decision: Decision) -> Result<QwenTokenizer> {
    let location = source.location();
    let missing = || Error::NoTokenizerFiles {
        location: location.clone(),
    };
    let config = source.find("tokenizer_config.json")?;
    let inner = match decision.path {
        TokenizerPath::Fast => {
            let path = source.find("tokenizer.json")?.ok_or_else(missing)?;
            // Parsed as JSON first: tokenizers 0.23 deserialises its decoder while streaming
            // and `expect`s on a syntax error there (a truncated or hand-edited file panicked,
            // found by tests/fuzz.rs); from a parsed value that cannot happen.
            let json: serde_json::Value = read_json(&path)?;
            serde_json::from_value::<tokenizers::Tokenizer>(json).map_err(|e| {
                Error::Tokenizers {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?
        }
        TokenizerPath::Slow => slow::build(&SlowFiles {
            vocab: source.find("vocab.json")?.ok_or_else(missing)?,
            merges: source.find("merges.txt")?.ok_or_else(missing)?,
            config: config.clone(),
            added_tokens: source.find("added_tokens.json")?,
        })?,
    };
    // tokenizer.json may carry its own padding/truncation; the pipeline's rules are applied in
    // `encode_batch_padded` instead, so a plain `encode` never pads or cuts.
    let mut inner = inner;
    inner.with_padding(None);
    inner.with_truncation(None).map_err(|e| Error::Tokenizers {
        path: PathBuf::from(&location),
        message: e.to_string(),
    })?;
    let pad = match &config {
        Some(path) => pad_token(path)?,
        None => DEFAULT_PAD.to_owned(),
    };
    let pad_id = inner.token_to_id(&pad).ok_or_else(|| Error::MissingToken {
        token: pad.clone(),
        role: "padding",
        location: location.clone(),
    })?;
    Ok(QwenTokenizer {
        inner,
        decision,
        pad_id,
        location,
    })
}

/// `pad_token` of `tokenizer_config.json` (string or `{"content": ...}`), else `<|endoftext|>`.
fn pad_token(config: &Path) -> Result<String> {
    let cfg: Value = read_json(config)?;
    match cfg.get("pad_token") {
        None | Some(Value::Null) => Ok(DEFAULT_PAD.to_owned()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Format {
                path: config.to_owned(),
                message: "pad_token object has no string \"content\"".to_owned(),
            }),
        Some(other) => Err(Error::Format {
            path: config.to_owned(),
            message: format!("pad_token must be a string or an object, got {other}"),
        }),
    }
}
