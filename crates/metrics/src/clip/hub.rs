//! Where a CLIP model's files are: a local folder, or an HF repo in the shared HF cache (downloaded
//! there when allowed).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use weights::{HubRepo, is_repo_id};

/// The model upstream's consistency tests use (`CLIP_MODEL_NAME` in test_utils.py).
pub const DEFAULT_CLIP_MODEL: &str = "openai/clip-vit-large-patch14";

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
    if !is_repo_id(model) {
        return Err(unavailable(
            "not a folder, and not an HF repo id of the form owner/name".into(),
        ));
    }
    // Cache first, download unless HF_HUB_OFFLINE=1 (shared with the pipeline's loader).
    let repo = HubRepo::new(model, None).map_err(|e| unavailable(e.to_string()))?;
    let config = repo
        .get("config.json")
        .map_err(|e| unavailable(e.to_string()))?;
    // Optional: without it CLIPImageProcessor's defaults (the ViT-L/14 values) apply.
    let _ = repo.get("preprocessor_config.json");
    // A single file (openai/clip-vit-large-patch14) or a sharded checkpoint with an index.
    repo.get_safetensors("")
        .map_err(|e| unavailable(e.to_string()))?;
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| unavailable(format!("{} has no parent folder", config.display())))
}
