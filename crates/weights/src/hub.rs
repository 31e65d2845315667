//! Files of an HF repo through hf-hub, in the cache Python shares (`HF_HOME` / `HF_HUB_CACHE`).

use std::path::PathBuf;

use hf_hub::{Cache, Repo, RepoType};

use crate::Error;

/// Whether the user asked for offline mode the way Python's huggingface_hub reads it
/// (`HF_HUB_OFFLINE`); hf-hub 0.5 does not read it, so we do.
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// `owner/name`, as opposed to a path.
pub fn is_repo_id(s: &str) -> bool {
    s.split('/').count() == 2 && !s.starts_with(['.', '/']) && !s.ends_with('/')
}

/// One HF model repo at one revision: a file is taken from the cache when present, else
/// downloaded (with a progress bar) unless offline mode is on.
pub struct HubRepo {
    repo_id: String,
    cache: hf_hub::CacheRepo,
    api: Option<hf_hub::api::sync::ApiRepo>,
}

impl HubRepo {
    /// `revision` `None` means `main`.
    pub fn new(repo_id: &str, revision: Option<&str>) -> Result<Self, Error> {
        let repo = Repo::with_revision(
            repo_id.to_string(),
            RepoType::Model,
            revision.unwrap_or("main").to_string(),
        );
        let cache = Cache::from_env().repo(repo.clone());
        let api = if hub_offline() {
            None
        } else {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(true)
                .build()
                .map_err(|e| Error::Hub {
                    repo: repo_id.to_string(),
                    file: String::new(),
                    reason: e.to_string(),
                })?;
            Some(api.repo(repo))
        };
        Ok(Self {
            repo_id: repo_id.to_string(),
            cache,
            api,
        })
    }

    /// The repo id.
    pub fn repo_id(&self) -> &str {
        &self.repo_id
    }

    /// The local path of `file` (a path inside the repo).
    pub fn get(&self, file: &str) -> Result<PathBuf, Error> {
        if let Some(p) = self.cache.get(file) {
            return Ok(p);
        }
        match &self.api {
            None => Err(Error::Hub {
                repo: self.repo_id.clone(),
                file: file.to_string(),
                reason: "not in the HF cache and HF_HUB_OFFLINE is set".into(),
            }),
            Some(api) => api.get(file).map_err(|e| Error::Hub {
                repo: self.repo_id.clone(),
                file: file.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Every safetensors file of the checkpoint in `folder` ("" for the repo root): the shards an
    /// `*.safetensors.index.json` lists, or the single `diffusion_pytorch_model.safetensors` /
    /// `model.safetensors`.
    pub fn get_safetensors(&self, folder: &str) -> Result<(), Error> {
        let at = |f: &str| {
            if folder.is_empty() {
                f.to_string()
            } else {
                format!("{folder}/{f}")
            }
        };
        for stem in ["diffusion_pytorch_model", "model"] {
            if let Ok(path) = self.get(&at(&format!("{stem}.safetensors.index.json"))) {
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| Error::BadJson {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                let mut shards: Vec<&str> = json
                    .get("weight_map")
                    .and_then(|m| m.as_object())
                    .map(|m| m.values().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                shards.sort_unstable();
                shards.dedup();
                for s in shards {
                    self.get(&at(s))?;
                }
                return Ok(());
            }
            if self.get(&at(&format!("{stem}.safetensors"))).is_ok() {
                return Ok(());
            }
        }
        Err(Error::Hub {
            repo: self.repo_id.clone(),
            file: at("*.safetensors"),
            reason: "no safetensors weights (single file or index) found".into(),
        })
    }
}
