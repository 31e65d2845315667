//! [`PipelineDir`]: a diffusers pipeline folder (`model_index.json`, one sub-folder per
//! component), local or resolved from the Hub.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;
use crate::hub::{HubRepo, is_repo_id};

/// A diffusers-layout pipeline folder: `model_index.json` plus one sub-folder per component.
#[derive(Debug, Clone)]
pub struct PipelineDir {
    root: PathBuf,
    model_index: Value,
}

impl PipelineDir {
    /// Open a local pipeline folder (it must hold `model_index.json`).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_path_buf();
        let path = root.join("model_index.json");
        let model_index = read_json(&path)?;
        if !model_index.is_object() {
            return Err(Error::BadJson {
                path,
                reason: "expected a JSON object".into(),
            });
        }
        Ok(Self { root, model_index })
    }

    /// The pipeline folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The parsed `model_index.json`.
    pub fn model_index(&self) -> &Value {
        &self.model_index
    }

    /// `(library, class)` that `model_index.json` declares for a component, e.g.
    /// `("transformers", "Qwen2Tokenizer")` for `tokenizer`.
    pub fn component_class(&self, name: &str) -> Option<(String, String)> {
        let arr = self.model_index.get(name)?.as_array()?;
        Some((
            arr.first()?.as_str()?.to_string(),
            arr.get(1)?.as_str()?.to_string(),
        ))
    }

    /// The folder of a component; an error naming `model_index.json` when it is not declared or the
    /// folder is missing.
    pub fn component(&self, name: &str) -> Result<PathBuf, Error> {
        if self.component_class(name).is_none() {
            return Err(Error::Pipeline {
                path: self.root.join("model_index.json"),
                reason: format!("no `{name}` component declared"),
            });
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(Error::Pipeline {
                path: dir,
                reason: format!("component folder `{name}` is missing"),
            });
        }
        Ok(dir)
    }

    /// The parsed `config.json` (or `scheduler_config.json`) of a component.
    pub fn component_config(&self, name: &str) -> Result<Value, Error> {
        let dir = self.component(name)?;
        for f in ["config.json", "scheduler_config.json"] {
            let p = dir.join(f);
            if p.is_file() {
                return read_json(&p);
            }
        }
        Err(Error::Pipeline {
            path: dir,
            reason: "no config.json or scheduler_config.json".into(),
        })
    }
}

fn read_json(path: &Path) -> Result<Value, Error> {
    Ok(config_file::read_json(path)?)
}

/// A pipeline given as a local folder or as an HF repo id (`Qwen/Qwen-Image`, optional revision).
///
/// A repo is fetched through [`HubRepo`] into the cache Python shares (`HF_HUB_CACHE`, else
/// `$HF_HOME/hub`):
/// `model_index.json`, then per component its config, its index and shards (or single file), and
/// the tokenizer files. With `HF_HUB_OFFLINE=1` only the cache is consulted.
pub fn resolve_pipeline(model: &str, revision: Option<&str>) -> Result<PipelineDir, Error> {
    let local = Path::new(model);
    if local.is_dir() {
        return PipelineDir::open(local);
    }
    if !is_repo_id(model) {
        return Err(Error::Pipeline {
            path: local.to_path_buf(),
            reason: "not a folder, and not an HF repo id of the form owner/name".into(),
        });
    }
    let fetch = HubRepo::new(model, revision)?;
    let index_path = fetch.get("model_index.json").map_err(|e| match e {
        Error::Hub { repo, file, reason } => Error::Hub {
            repo,
            file,
            reason: format!("{reason} (`{model}` is not a local folder either)"),
        },
        other => other,
    })?;
    let root = index_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dir = PipelineDir::open(&root)?;
    let components: Vec<String> = dir
        .model_index
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    for c in components {
        match c.as_str() {
            "tokenizer" => {
                for f in ["tokenizer_config.json", "vocab.json", "merges.txt"] {
                    fetch.get(&format!("{c}/{f}"))?;
                }
                for f in [
                    "tokenizer.json",
                    "added_tokens.json",
                    "special_tokens_map.json",
                ] {
                    let _ = fetch.get(&format!("{c}/{f}"));
                }
            }
            "scheduler" => {
                fetch.get(&format!("{c}/scheduler_config.json"))?;
            }
            _ => {
                fetch.get(&format!("{c}/config.json"))?;
                fetch.get_safetensors(&c)?;
            }
        }
    }
    Ok(dir)
}
