//! How `generate` picks each new token: the text encoder's `generation_config.json` read as
//! transformers 5.24 reads it, and the logits processors it implies.
//!
//! diffusers' Layered caption calls `generate(**inputs, max_new_tokens=512)` with no sampling
//! arguments, so the checkpoint's generation config decides. The one the Qwen-Image releases ship
//! (Qwen2.5-VL-7B-Instruct's) says `do_sample: true` but `top_k: 1` (with `top_p: 0.001`,
//! `temperature: 0.1`, `repetition_penalty: 1.05`): one candidate survives top-k, so the draw is
//! not random at all — it is the argmax of the repetition-penalised logits. [`TokenPicker`]
//! reproduces that, plain greedy decoding (`do_sample: false`), and any sampling configuration
//! whose filters leave a single candidate; a step that would leave several is an error, since
//! the outcome would depend on torch's random stream.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;

/// transformers' global defaults for the keys read here (`_get_default_generation_params`).
const DEFAULT_TEMPERATURE: f64 = 1.0;
const DEFAULT_TOP_K: usize = 50;
const DEFAULT_TOP_P: f64 = 1.0;
const DEFAULT_REPETITION_PENALTY: f64 = 1.0;

/// Whether a value of a key is harmless (unset or a no-op).
type Harmless = fn(&Value) -> bool;

/// Keys whose non-default values change the chosen tokens in ways this port does not implement;
/// with such a value the config is refused rather than silently decoded differently. Each entry:
/// the key and whether a value is harmless.
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("num_beams", |v| v.as_u64().is_some_and(|n| n <= 1)),
    ("num_beam_groups", |v| v.as_u64().is_some_and(|n| n <= 1)),
    ("penalty_alpha", |v| v.as_f64().is_some_and(|x| x == 0.0)),
    ("min_length", |v| v.as_u64() == Some(0)),
    ("min_new_tokens", |v| v.as_u64() == Some(0)),
    ("no_repeat_ngram_size", |v| v.as_u64() == Some(0)),
    ("bad_words_ids", Value::is_null),
    ("sequence_bias", Value::is_null),
    ("suppress_tokens", Value::is_null),
    ("begin_suppress_tokens", Value::is_null),
    ("forced_bos_token_id", Value::is_null),
    ("forced_eos_token_id", Value::is_null),
    ("exponential_decay_length_penalty", Value::is_null),
    ("guidance_scale", |v| v.is_null() || v.as_f64() == Some(1.0)),
    ("stop_strings", Value::is_null),
    ("watermarking_config", Value::is_null),
];

/// Sampling filters that only apply with `do_sample` and are not implemented.
const UNSUPPORTED_WARPERS: &[(&str, Harmless)] = &[
    ("min_p", Value::is_null),
    ("top_h", Value::is_null),
    ("typical_p", |v| v.is_null() || v.as_f64() == Some(1.0)),
    ("epsilon_cutoff", |v| v.is_null() || v.as_f64() == Some(0.0)),
    ("eta_cutoff", |v| v.is_null() || v.as_f64() == Some(0.0)),
];

/// The decoding settings of a text encoder (`generation_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Ids that end the text (`eos_token_id`, one id or a list); the eos itself is kept in the
    /// generated ids, as transformers returns it.
    pub eos_token_ids: Vec<u32>,
    /// `do_sample`: draw from the filtered distribution instead of taking the argmax.
    pub do_sample: bool,
    /// Logits divided by this before the filters (sampling only).
    pub temperature: f64,
    /// Keep the `top_k` largest logits (ties included); 0 = off (sampling only).
    pub top_k: usize,
    /// Keep the smallest set of top tokens whose probability exceeds `top_p` (sampling only).
    pub top_p: f64,
    /// `RepetitionPenaltyLogitsProcessor`: the logit of every id already in the sequence (prompt
    /// included) is divided by this when positive, multiplied when negative; 1 = off. Applies in
    /// greedy mode too.
    pub repetition_penalty: f64,
    /// The file the settings came from (for messages); empty when made in code.
    pub source: PathBuf,
}

impl GenerationConfig {
    /// Plain greedy decoding ending at `eos_token_ids`: transformers' defaults.
    pub fn greedy(eos_token_ids: Vec<u32>) -> Self {
        Self {
            eos_token_ids,
            do_sample: false,
            temperature: DEFAULT_TEMPERATURE,
            top_k: DEFAULT_TOP_K,
            top_p: DEFAULT_TOP_P,
            repetition_penalty: DEFAULT_REPETITION_PENALTY,
            source: PathBuf::new(),
        }
    }

    /// What `from_pretrained` gives a `text_encoder/` folder: its `generation_config.json`, or
    /// without one a config made from `config.json` (greedy; the eos id of `text_config` or the
    /// top level). A generation config without `eos_token_id` also takes it from `config.json`.
    pub fn from_text_encoder_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let model_config = dir.join("config.json");
        let fallback_eos = || -> Result<Vec<u32>, Error> {
            let json = read_json(&model_config)?;
            let text = json.get("text_config").and_then(|t| t.get("eos_token_id"));
            match text.filter(|v| !v.is_null()).or(json.get("eos_token_id")) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(v) => token_ids(v, "eos_token_id", &model_config),
            }
        };
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            let mut cfg = Self::greedy(fallback_eos()?);
            cfg.source = model_config;
            return Ok(cfg);
        }
        let json = read_json(&path)?;
        let mut cfg = Self::from_json(&json, &path)?;
        if json.get("eos_token_id").is_none_or(Value::is_null) {
            cfg.eos_token_ids = fallback_eos()?;
        }
        Ok(cfg)
    }

    /// Read a parsed `generation_config.json` (`path` names it in errors). Unset keys take
    /// transformers' global defaults; keys this port does not implement must be unset or at
    /// their no-op value.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self, Error> {
        let err = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        if !json.is_object() {
            return Err(err("a generation config must be a JSON object".into()));
        }
        let get = |key: &str| json.get(key).filter(|v| !v.is_null());
        let float = |key: &str, default: f64| -> Result<f64, Error> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| err(format!("{key} is not a number: {v}"))),
            }
        };
        let do_sample = match get("do_sample") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| err(format!("do_sample is not a boolean: {v}")))?,
        };
        let top_k = match get("top_k") {
            None => DEFAULT_TOP_K,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| err(format!("top_k is not a non-negative integer: {v}")))?,
        };
        let cfg = Self {
            eos_token_ids: match get("eos_token_id") {
                None => Vec::new(),
                Some(v) => token_ids(v, "eos_token_id", path)?,
            },
            do_sample,
            temperature: float("temperature", DEFAULT_TEMPERATURE)?,
            top_k,
            top_p: float("top_p", DEFAULT_TOP_P)?,
            repetition_penalty: float("repetition_penalty", DEFAULT_REPETITION_PENALTY)?,
            source: path.to_path_buf(),
        };
        if cfg.repetition_penalty.is_nan() || cfg.repetition_penalty <= 0.0 {
            return Err(err(format!(
                "repetition_penalty must be positive, got {}",
                cfg.repetition_penalty
            )));
        }
        let mut refused: Vec<String> = UNSUPPORTED
            .iter()
            .filter_map(|&(key, harmless)| {
                json.get(key)
                    .filter(|v| !harmless(v))
                    .map(|v| format!("{key} = {v}"))
            })
            .collect();
        if cfg.do_sample {
            if cfg.temperature.is_nan() || cfg.temperature <= 0.0 {
                refused.push(format!("temperature = {} with do_sample", cfg.temperature));
            }
            if cfg.top_p.is_nan() || cfg.top_p <= 0.0 || cfg.top_p > 1.0 {
                refused.push(format!("top_p = {} with do_sample", cfg.top_p));
            }
            refused.extend(UNSUPPORTED_WARPERS.iter().filter_map(|&(key, harmless)| {
                json.get(key)
                    .filter(|v| !harmless(v))
                    .map(|v| format!("{key} = {v} with do_sample"))
            }));
        }
        if !refused.is_empty() {
            return Err(err(format!(
                "generation settings not supported by this port: {}",
                refused.join(", ")
            )));
        }
        Ok(cfg)
    }

    /// True when every step's choice is fixed by the logits: greedy decoding, or sampling with
    /// `top_k` = 1 (ties aside). Other sampling configs are decided step by step
    /// ([`TokenPicker::pick`]).
    pub fn is_deterministic(&self) -> bool {
        !self.do_sample || self.top_k == 1
    }
}

/// One generation's token chooser: the configuration plus the ids the sequence holds so far (for
/// the repetition penalty).
#[derive(Debug, Clone)]
pub struct TokenPicker<'a> {
    config: &'a GenerationConfig,
    /// `seen[id]`: id is in the prompt or was generated (sized to the logits).
    seen: Vec<bool>,
    scratch: Vec<f32>,
}

impl<'a> TokenPicker<'a> {
    /// A picker for logits of `vocab_size` entries after the prompt `prompt_ids`.
    pub fn new(config: &'a GenerationConfig, vocab_size: usize, prompt_ids: &[u32]) -> Self {
        let mut seen = vec![false; vocab_size];
        for &id in prompt_ids {
            // Ids beyond the head's output cannot be generated: transformers clamps them away.
            if let Some(s) = seen.get_mut(id as usize) {
                *s = true;
            }
        }
        Self {
            config,
            seen,
            scratch: Vec::new(),
        }
    }

    /// The next token from the last position's raw logits (f32, the model's output read as
    /// `generate` reads it): the repetition penalty over every id seen, then the argmax (greedy;
    /// the first of equal maxima, as `torch.argmax`), or with `do_sample` temperature → top-k →
    /// top-p, which must leave one candidate. `step` (0 = the first new token) names the step in
    /// errors. The chosen id is recorded as seen.
    pub fn pick(&mut self, logits: &[f32], step: usize) -> Result<u32, Error> {
        let cfg = self.config;
        let n = logits.len();
        if n != self.seen.len() || n == 0 {
            return Err(Error::Tokens(format!(
                "{n} logits for a vocabulary of {}",
                self.seen.len()
            )));
        }
        let scores = &mut self.scratch;
        scores.clear();
        scores.extend_from_slice(logits);
        if cfg.repetition_penalty != 1.0 {
            // torch: `where(s < 0, s * p, s / p)` in f32 with the penalty rounded to f32.
            let p = cfg.repetition_penalty as f32;
            for (s, _) in scores.iter_mut().zip(&self.seen).filter(|(_, seen)| **seen) {
                *s = if *s < 0.0 { *s * p } else { *s / p };
            }
        }
        let best = argmax(scores);
        let token = if cfg.do_sample {
            match candidates(scores, cfg) {
                1 => best,
                k => {
                    return Err(Error::Config {
                        path: cfg.source.clone(),
                        reason: format!(
                            "do_sample leaves {k} candidate tokens at step {step} (temperature \
                             {}, top_k {}, top_p {}): transformers would draw one with torch's \
                             random generator, which this port does not reproduce; use a \
                             generation config with do_sample false or top_k 1",
                            cfg.temperature, cfg.top_k, cfg.top_p
                        ),
                    });
                }
            }
        } else {
            best
        };
        self.seen[token] = true;
        u32::try_from(token).map_err(|_| Error::Tokens(format!("token id {token} exceeds u32")))
    }
}

/// Index of the first maximum (NaN never wins).
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] || scores[best].is_nan() {
            best = i;
        }
    }
    best
}

/// How many tokens the sampling filters keep (transformers' `TemperatureLogitsWarper`,
/// `TopKLogitsWarper`, `TopPLogitsWarper`, with `min_tokens_to_keep` 1). Only "exactly one" is
/// acted on; the top-p count near its threshold may differ from torch's float sum by rounding.
fn candidates(scores: &[f32], cfg: &GenerationConfig) -> usize {
    let t = cfg.temperature as f32;
    let mut kept: Vec<f32> = scores.iter().map(|&s| s / t).collect();
    kept.sort_unstable_by(|a, b| b.total_cmp(a));
    if cfg.top_k > 0 && cfg.top_k < kept.len() {
        // Everything below the k-th largest goes; ties with it stay.
        let threshold = kept[cfg.top_k - 1];
        let keep = kept.iter().take_while(|&&s| s >= threshold).count();
        kept.truncate(keep);
    }
    if cfg.top_p < 1.0 && kept.len() > 1 {
        // Ascending order, softmax, cumulative sum; drop the tokens whose cumulative probability
        // is ≤ 1 − top_p, always keeping the largest.
        let max = kept[0];
        let exps: Vec<f64> = kept.iter().map(|&s| f64::from(s - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        let mut cumulative = 0.0;
        let mut removed = 0;
        for e in exps.iter().rev() {
            cumulative += e / total;
            if cumulative <= 1.0 - cfg.top_p {
                removed += 1;
            } else {
                break;
            }
        }
        return (kept.len() - removed).max(1);
    }
    kept.len()
}

fn read_json(path: &Path) -> Result<Value, Error> {
    Ok(config_file::read_json(path)?)
}

/// One id or a list of ids.
fn token_ids(v: &Value, key: &str, path: &Path) -> Result<Vec<u32>, Error> {
    let one = |x: &Value| x.as_u64().and_then(|n| u32::try_from(n).ok());
    let ids = match v {
        Value::Array(items) => items.iter().map(one).collect::<Option<Vec<_>>>(),
        other => one(other).map(|id| vec![id]),
    };
    ids.ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        reason: format!("{key} is not a token id or a list of them: {v}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn released() -> GenerationConfig {
        let j = json!({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
            "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.1,
            "top_p": 0.001, "top_k": 1});
        GenerationConfig::from_json(&j, Path::new("generation_config.json")).unwrap()
    }

    #[test]
    fn released_config_is_penalised_argmax() {
        let cfg = released();
        assert_eq!(cfg.eos_token_ids, vec![151645, 151643]);
        assert!(cfg.do_sample && cfg.is_deterministic());
        // Token 1 was seen: 3.0 / 1.05 < 2.9, so 2 wins; negative seen logits get more negative.
        let mut p = TokenPicker::new(&cfg, 4, &[1, 3]);
        assert_eq!(p.pick(&[0.5, 3.0, 2.9, -1.0], 0).unwrap(), 2);
        // Now 2 is seen too: 3.0/1.05 = 2.857 > 2.9/1.05.
        assert_eq!(p.pick(&[0.5, 3.0, 2.9, -1.0], 1).unwrap(), 1);
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_ignores_warpers() {
        let cfg = GenerationConfig::greedy(vec![0]);
        let mut p = TokenPicker::new(&cfg, 3, &[]);
        assert_eq!(p.pick(&[1.0, 2.0, 2.0], 0).unwrap(), 1);
    }

    #[test]
    fn real_sampling_is_refused_at_the_step_it_matters() {
        let mut cfg = GenerationConfig::greedy(vec![0]);
        cfg.do_sample = true;
        cfg.top_k = 2;
        let mut p = TokenPicker::new(&cfg, 3, &[]);
        let e = p.pick(&[1.0, 2.0, 1.5], 4).unwrap_err().to_string();
        assert!(e.contains("2 candidate tokens at step 4"), "{e}");
        // A top_p that keeps only the favourite decides the step.
        cfg.top_p = 0.5;
        let mut p = TokenPicker::new(&cfg, 3, &[]);
        assert_eq!(p.pick(&[0.0, 9.0, 1.0], 0).unwrap(), 1);
    }

    #[test]
    fn unsupported_settings_are_named() {
        let j = json!({"num_beams": 4, "no_repeat_ngram_size": 3, "eos_token_id": 7});
        let e = GenerationConfig::from_json(&j, Path::new("g.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("num_beams = 4") && e.contains("no_repeat_ngram_size = 3"),
            "{e}"
        );
        let j = json!({"eos_token_id": "x"});
        assert!(GenerationConfig::from_json(&j, Path::new("g.json")).is_err());
        // Defaults written out are fine.
        let j = json!({"num_beams": 1, "min_length": 0, "bad_words_ids": null, "eos_token_id": 7});
        assert_eq!(
            GenerationConfig::from_json(&j, Path::new("g.json"))
                .unwrap()
                .eos_token_ids,
            vec![7]
        );
    }
}
