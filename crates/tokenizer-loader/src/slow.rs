//! The slow path: rebuild Qwen2's byte-level BPE from `vocab.json` + `merges.txt` and the added
//! tokens of `tokenizer_config.json` / `added_tokens.json`, exactly as transformers'
//! `Qwen2Tokenizer` assembles it (NFC normaliser, Qwen2 split regex, byte-level without prefix
//! space, byte-level decoder).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};
use crate::source::{read_json, read_to_string};

/// Qwen2's pre-tokenizer split pattern (transformers `tokenization_qwen2.PRETOKENIZE_REGEX`).
/// It needs look-ahead (`\s+(?!\S)`), hence the `onig` regex engine.
pub const QWEN2_SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The special-token defaults of transformers' `Qwen2Tokenizer.__init__` (unk/eos/pad).
const QWEN2_DEFAULT_SPECIAL: &str = "<|endoftext|>";

/// The slow files of one tokenizer folder.
pub(crate) struct SlowFiles {
    pub vocab: PathBuf,
    pub merges: PathBuf,
    pub config: Option<PathBuf>,
    pub added_tokens: Option<PathBuf>,
}

/// Parse `vocab.json`: an object of token -> non-negative integer id.
pub(crate) fn read_vocab(path: &Path) -> Result<Vocab> {
    let map: HashMap<String, u32> = read_json(path)?;
    Ok(map.into_iter().collect())
}

/// Parse `merges.txt`: one `left right` pair per line; an optional `#version` header, CRLF line
/// ends and trailing blank lines are accepted (released Qwen files exist in both forms).
pub(crate) fn read_merges(path: &Path, vocab: &Vocab) -> Result<Merges> {
    let text = read_to_string(path)?;
    let mut merges = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() || (i == 0 && line.starts_with("#version")) {
            continue;
        }
        let mut parts = line.split(' ');
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Format {
                path: path.to_owned(),
                message: format!(
                    "line {}: expected two tokens separated by one space, got {line:?}",
                    i + 1
                ),
            });
        };
        for token in [a, b] {
            if !vocab.contains_key(token) {
                return Err(Error::UnknownMergeToken {
                    path: path.to_owned(),
                    line: i + 1,
                    token: token.to_owned(),
                });
            }
        }
        // The merged token must exist too, or BPE would produce an id-less piece.
        let merged = format!("{a}{b}");
        if !vocab.contains_key(&merged) {
            return Err(Error::UnknownMergeToken {
                path: path.to_owned(),
                line: i + 1,
                token: merged,
            });
        }
        merges.push((a.to_owned(), b.to_owned()));
    }
    Ok(merges)
}

/// One entry of the added vocabulary, with the id the files declare.
struct Added {
    id: Option<u32>,
    token: AddedToken,
}

/// Build the slow tokenizer.
pub(crate) fn build(files: &SlowFiles) -> Result<Tokenizer> {
    let mut vocab = read_vocab(&files.vocab)?;
    let merges = read_merges(&files.merges, &vocab)?;
    let config: Option<Value> = files.config.as_deref().map(read_json).transpose()?;
    let added = added_tokens(files, config.as_ref())?;

    // Give each declared added token its declared id by putting it in the model vocabulary:
    // `tokenizers` then reuses that id instead of appending, so gaps and order cannot shift ids.
    let mut taken: HashMap<u32, String> = vocab.iter().map(|(t, &i)| (i, t.clone())).collect();
    for a in &added {
        let Some(id) = a.id else { continue };
        match vocab.get(&a.token.content) {
            Some(&have) if have != id => {
                return Err(Error::Format {
                    path: files.vocab.clone(),
                    message: format!(
                        "added token {:?} has id {id} in the tokenizer config but {have} in vocab.json",
                        a.token.content
                    ),
                });
            }
            Some(_) => {}
            None => {
                if let Some(other) = taken.get(&id) {
                    return Err(Error::Format {
                        path: files.config.clone().unwrap_or_else(|| files.vocab.clone()),
                        message: format!(
                            "added token {:?} wants id {id}, already used by {other:?}",
                            a.token.content
                        ),
                    });
                }
                vocab.insert(a.token.content.clone(), id);
                taken.insert(id, a.token.content.clone());
            }
        }
    }

    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::Tokenizers {
            path: files.merges.clone(),
            message: e.to_string(),
        })?;
    let mut tok = Tokenizer::new(bpe);
    let tok_err = |e: tokenizers::Error| Error::Tokenizers {
        path: files.vocab.clone(),
        message: e.to_string(),
    };
    tok.with_normalizer(Some(NFC)).map_err(tok_err)?;
    let split = Split::new(
        SplitPattern::Regex(QWEN2_SPLIT_PATTERN.to_owned()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| Error::Tokenizers {
        path: files.vocab.clone(),
        message: format!("Qwen2 split regex: {e}"),
    })?;
    // use_regex=false: the split above already did GPT-2's job; trim_offsets only moves offsets.
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // `AddedVocabulary` splits special and added tokens out of the text before normalisation,
    // so they are never broken into BPE pieces (`split_special_tokens=False` in transformers).
    let (special, plain): (Vec<_>, Vec<_>) = added.into_iter().partition(|a| a.token.special);
    tok.add_tokens(plain.into_iter().map(|a| a.token))
        .map_err(tok_err)?;
    tok.add_special_tokens(special.into_iter().map(|a| a.token))
        .map_err(tok_err)?;
    Ok(tok)
}

/// Collect added tokens: `added_tokens_decoder` of `tokenizer_config.json`, then `added_tokens.json`
/// (legacy layout), then the named special tokens (`eos_token`, `pad_token`, ...) that neither
/// listed, as transformers' `Qwen2Tokenizer` adds every special token it was given.
fn added_tokens(files: &SlowFiles, config: Option<&Value>) -> Result<Vec<Added>> {
    let cfg_path = files.config.clone().unwrap_or_default();
    let mut out: Vec<Added> = Vec::new();
    let mut seen: BTreeMap<String, Option<u32>> = BTreeMap::new();

    if let Some(decoder) = config.and_then(|c| c.get("added_tokens_decoder")) {
        let obj = decoder.as_object().ok_or_else(|| Error::Format {
            path: cfg_path.clone(),
            message: "added_tokens_decoder must be an object of id -> token".to_owned(),
        })?;
        let mut entries: Vec<(u32, &Value)> = Vec::with_capacity(obj.len());
        for (key, value) in obj {
            let id: u32 = key.parse().map_err(|_| Error::Format {
                path: cfg_path.clone(),
                message: format!("added_tokens_decoder key {key:?} is not a token id"),
            })?;
            entries.push((id, value));
        }
        entries.sort_by_key(|(id, _)| *id);
        for (id, value) in entries {
            let token = added_token_from_json(value, false).ok_or_else(|| Error::Format {
                path: cfg_path.clone(),
                message: format!("added_tokens_decoder[{id}] has no string \"content\""),
            })?;
            seen.insert(token.content.clone(), Some(id));
            out.push(Added {
                id: Some(id),
                token,
            });
        }
    }

    let named = named_special_tokens(config, &cfg_path)?;

    if let Some(path) = &files.added_tokens {
        let map: BTreeMap<String, u32> = read_json(path)?;
        let mut by_id: Vec<(u32, String)> = map.into_iter().map(|(t, i)| (i, t)).collect();
        by_id.sort();
        for (id, content) in by_id {
            match seen.get(&content) {
                Some(Some(have)) if *have != id => {
                    return Err(Error::Format {
                        path: path.clone(),
                        message: format!(
                            "token {content:?} has id {id} here but {have} in added_tokens_decoder"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    let special = named.contains(&content);
                    seen.insert(content.clone(), Some(id));
                    out.push(Added {
                        id: Some(id),
                        token: AddedToken::from(content, special).normalized(!special),
                    });
                }
            }
        }
    }

    for content in named {
        if !seen.contains_key(&content) {
            seen.insert(content.clone(), None);
            out.push(Added {
                id: None,
                token: AddedToken::from(content, true).normalized(false),
            });
        }
    }
    Ok(out)
}

/// `bos/eos/unk/pad_token` and `additional_special_tokens` (or transformers 5's
/// `extra_special_tokens`), with Qwen2's defaults for unk/eos/pad when the config is silent.
fn named_special_tokens(config: Option<&Value>, cfg_path: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
        let value = config.and_then(|c| c.get(key));
        match value {
            None if key != "bos_token" => names.push(QWEN2_DEFAULT_SPECIAL.to_owned()),
            None | Some(Value::Null) => {}
            Some(v) => {
                let t = added_token_from_json(v, true).ok_or_else(|| Error::Format {
                    path: cfg_path.to_owned(),
                    message: format!("{key} must be a string, an object with \"content\", or null"),
                })?;
                names.push(t.content);
            }
        }
    }
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        let Some(v) = config.and_then(|c| c.get(key)) else {
            continue;
        };
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            // transformers 5 may write a name -> token object.
            Value::Object(o) => o.values().collect(),
            Value::Null => Vec::new(),
            _ => {
                return Err(Error::Format {
                    path: cfg_path.to_owned(),
                    message: format!("{key} must be a list of tokens"),
                });
            }
        };
        for item in items {
            let t = added_token_from_json(item, true).ok_or_else(|| Error::Format {
                path: cfg_path.to_owned(),
                message: format!("{key} holds an entry that is not a token"),
            })?;
            names.push(t.content);
        }
    }
    let mut dedup = Vec::new();
    for n in names {
        if !dedup.contains(&n) {
            dedup.push(n);
        }
    }
    Ok(dedup)
}

/// A token given as `"text"` or as `{"content": ..., "special": ..., "lstrip": ...}`.
fn added_token_from_json(v: &Value, default_special: bool) -> Option<AddedToken> {
    match v {
        Value::String(s) => Some(AddedToken::from(s.clone(), default_special).normalized(false)),
        Value::Object(o) => {
            let content = o.get("content")?.as_str()?.to_owned();
            let flag = |k: &str, d: bool| o.get(k).and_then(Value::as_bool).unwrap_or(d);
            let special = flag("special", default_special);
            Some(
                AddedToken::from(content, special)
                    .single_word(flag("single_word", false))
                    .lstrip(flag("lstrip", false))
                    .rstrip(flag("rstrip", false))
                    .normalized(flag("normalized", !special)),
            )
        }
        _ => None,
    }
}
