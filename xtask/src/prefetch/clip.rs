//! `gt prefetch --clip`: the CLIP model's files (config, preprocessor config, safetensors) taken
//! from the Hugging Face cache (downloaded into it when missing, as every model here is) and laid
//! out under the prefetched folder as huggingface_hub lays out a cache: `hf-hub/models--<owner>--
//! <name>/refs/main` naming the commit, the files in `snapshots/<commit>/`. A run finds them there
//! through the manifest, or anything else through `HF_HUB_CACHE=<folder>/hf-hub`.

use std::path::Path;

use anyhow::{Context, bail};
use weights::HubRepo;

use super::manifest::{ClipEntry, FileEntry, HF_HUB_DIR, sha256_file};
use crate::util::{MAX_TEXT_BYTES, read_regular_file};

/// The files of the checkpoint the CLIP loader reads: the index and its shards, or the single
/// file (the loader's own order: `diffusion_pytorch_model` then `model`).
fn weight_files(repo: &HubRepo) -> anyhow::Result<Vec<String>> {
    repo.get_safetensors("")?;
    for stem in ["diffusion_pytorch_model", "model"] {
        let index = format!("{stem}.safetensors.index.json");
        if let Some(path) = repo.cached(&index) {
            let bytes = read_regular_file(&path, MAX_TEXT_BYTES)?;
            let json: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let mut files: Vec<String> = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            files.sort_unstable();
            files.dedup();
            files.insert(0, index);
            return Ok(files);
        }
        let single = format!("{stem}.safetensors");
        if repo.cached(&single).is_some() {
            return Ok(vec![single]);
        }
    }
    bail!("{}: no safetensors weights in the HF cache", repo.repo_id())
}

/// Copy `repo_id` (at `main`) from the HF cache into `tmp/hf-hub`, in the cache layout.
pub fn prefetch(repo_id: &str, tmp: &Path) -> anyhow::Result<ClipEntry> {
    let repo = HubRepo::new(repo_id, None).with_context(|| format!("--clip {repo_id}"))?;
    let config = repo.get("config.json")?;
    // Optional, as for the loader: without it CLIPImageProcessor's defaults apply.
    let has_preprocessor = repo.find("preprocessor_config.json")?.is_some();
    let commit = config
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .filter(|c| cases::valid_id(c))
        .with_context(|| format!("{}: not in a snapshot folder", config.display()))?
        .to_string();
    let mut names = vec!["config.json".to_string()];
    if has_preprocessor {
        names.push("preprocessor_config.json".into());
    }
    names.extend(weight_files(&repo)?);
    let mut entry = ClipEntry {
        repo: repo_id.to_string(),
        revision: repo.revision().to_string(),
        commit,
        files: Vec::new(),
    };
    let snapshot = entry.snapshot();
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into());
    for name in names {
        let src = repo
            .cached(&name)
            .with_context(|| format!("{repo_id}: {name} is not in the HF cache"))?;
        let rel = format!("{snapshot}/{name}");
        let dst = tmp.join(super::manifest::safe_relative(&rel)?);
        crate::util::create_parent(&dst)?;
        // A copy, not a link: the folder travels to another machine.
        std::fs::copy(&src, &dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        let (sha256, bytes) = sha256_file(&dst)?;
        entry.files.push(FileEntry {
            path: rel,
            url: format!(
                "{}/{repo_id}/resolve/{}/{name}",
                endpoint.trim_end_matches('/'),
                entry.commit
            ),
            sha256,
            bytes,
        });
    }
    let refs = tmp
        .join(HF_HUB_DIR)
        .join(format!("models--{}", repo_id.replace('/', "--")))
        .join("refs");
    std::fs::create_dir_all(&refs).with_context(|| format!("creating {}", refs.display()))?;
    // huggingface_hub writes the ref without a newline.
    std::fs::write(refs.join(&entry.revision), &entry.commit)
        .with_context(|| format!("writing {}", refs.display()))?;
    Ok(entry)
}
