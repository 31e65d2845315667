//! Where a CLIP model's files are: a local folder, or an HF repo in the shared HF cache (downloaded
//! there when allowed).

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::{Error, Result};

/// The model upstream's consistency tests use (`CLIP_MODEL_NAME` in test_utils.py).
pub const DEFAULT_CLIP_MODEL: &str = "openai/clip-vit-large-patch14";

/// Python's huggingface_hub reads `HF_HUB_OFFLINE`; hf-hub 0.5 does not, so we honour it here.
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// The folder holding `config.json`, `preprocessor_config.json` and the safetensors of `model`.
pub(crate) fn resolve(model: &str) -> Result<PathBuf> {
    let unavailable = |reason: String| Error::ModelUnavailable {
        model: model.to_string(),
        reason,
    };
    let local = Path::new(model);
    if local.is_dir() {
        return Ok(local.to_path_buf());
    }
    let looks_like_repo = model.split('/').count() == 2 && !model.starts_with(['.', '/']);
    if !looks_like_repo {
        return Err(unavailable(
            "not a folder, and not an HF repo id of the form owner/name".into(),
        ));
    }
    let repo = Repo::new(model.to_string(), RepoType::Model);
    let cache = Cache::from_env().repo(repo.clone());
    let api = if offline() {
        None
    } else {
        let api = ApiBuilder::from_env()
            .with_progress(true)
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        Some(api.repo(repo))
    };
    let get = |file: &str| -> Result<PathBuf> {
        if let Some(p) = cache.get(file) {
            return Ok(p);
        }
        match &api {
            None => Err(unavailable(format!(
                "{file} is not in the HF cache and HF_HUB_OFFLINE is set"
            ))),
            Some(api) => api
                .get(file)
                .map_err(|e| unavailable(format!("cannot download {file}: {e}"))),
        }
    };
    let config = get("config.json")?;
    // Optional: without it CLIPImageProcessor's defaults (the ViT-L/14 values) apply.
    let _ = get("preprocessor_config.json");
    // A single file (openai/clip-vit-large-patch14) or a sharded checkpoint with an index.
    if get("model.safetensors").is_err() {
        let index = get("model.safetensors.index.json").map_err(|_| {
            unavailable("neither model.safetensors nor model.safetensors.index.json found".into())
        })?;
        let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
            path: index.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: index.clone(),
                source,
            })?;
        let mut shards: Vec<&str> = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| m.values().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            get(shard)?;
        }
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| unavailable(format!("{} has no parent folder", config.display())))
}
