//! Where tokenizer files come from: a local folder, or a Hugging Face repository through the
//! cache that Python's `huggingface_hub` also uses.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// Where to find a pipeline or tokenizer on the Hugging Face Hub.
///
/// The cache is Python's: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
/// With `HF_HUB_OFFLINE=1` (or [`HubOptions::offline`]) only cached files are used and nothing is
/// downloaded.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Branch, tag or commit; `main` when `None`.
    pub revision: Option<String>,
    /// Cache folder (the `hub` folder itself); from the environment when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network. `HF_HUB_OFFLINE=1` also turns this on.
    pub offline: bool,
    /// Access token; hf-hub reads `HF_TOKEN`'s file in the cache when `None`.
    pub token: Option<String>,
}

impl HubOptions {
    /// The cache folder these options resolve to.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        // hf-hub's own default already reads HF_HOME and falls back to ~/.cache/huggingface/hub.
        Cache::from_env().path().clone()
    }

    /// Offline when asked, or when `HF_HUB_OFFLINE` is set to a true value as Python reads it.
    pub fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE")
                .map(|v| {
                    matches!(
                        v.trim().to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes" | "on"
                    )
                })
                .unwrap_or(false)
    }
}

/// A place that may hold a file, answered as a local path.
pub(crate) enum Source {
    Local(PathBuf),
    Hub {
        repo_id: String,
        opts: HubOptions,
        /// Prefix inside the repo ("" or "tokenizer/").
        prefix: String,
    },
}

impl Source {
    /// A human-readable location, used in messages.
    pub(crate) fn location(&self) -> String {
        match self {
            Source::Local(dir) => dir.display().to_string(),
            Source::Hub {
                repo_id,
                prefix,
                opts,
            } => {
                let mut s = format!("hf://{repo_id}");
                if !prefix.is_empty() {
                    s = format!("{s}/{}", prefix.trim_end_matches('/'));
                }
                if let Some(rev) = &opts.revision {
                    s = format!("{s}@{rev}");
                }
                if opts.is_offline() {
                    let cache = opts.resolved_cache_dir();
                    s = format!(
                        "{s} (offline: only the cache {} was searched)",
                        cache.display()
                    );
                }
                s
            }
        }
    }

    /// The same source, one folder down.
    pub(crate) fn child(&self, name: &str) -> Source {
        match self {
            Source::Local(dir) => Source::Local(dir.join(name)),
            Source::Hub {
                repo_id,
                opts,
                prefix,
            } => Source::Hub {
                repo_id: repo_id.clone(),
                opts: opts.clone(),
                prefix: format!("{prefix}{name}/"),
            },
        }
    }

    /// Local: check the folder exists. Hub: nothing to check up front.
    pub(crate) fn check_exists(&self) -> Result<()> {
        match self {
            Source::Local(dir) if !dir.is_dir() => Err(Error::MissingFolder { path: dir.clone() }),
            _ => Ok(()),
        }
    }

    /// The local path of `name`, or `None` when the source does not have it.
    pub(crate) fn find(&self, name: &str) -> Result<Option<PathBuf>> {
        match self {
            Source::Local(dir) => {
                let p = dir.join(name);
                Ok(p.is_file().then_some(p))
            }
            Source::Hub {
                repo_id,
                opts,
                prefix,
            } => hub_find(repo_id, opts, &format!("{prefix}{name}")),
        }
    }
}

fn hub_find(repo_id: &str, opts: &HubOptions, file: &str) -> Result<Option<PathBuf>> {
    let revision = opts.revision.clone().unwrap_or_else(|| "main".to_owned());
    let repo = Repo::with_revision(repo_id.to_owned(), RepoType::Model, revision.clone());
    let cache = Cache::new(opts.resolved_cache_dir());
    if let Some(p) = cache.repo(repo.clone()).get(file) {
        return Ok(Some(p));
    }
    // A commit hash has no `refs/` entry in Python's cache layout: look in its snapshot directly.
    if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        let p = cache
            .path()
            .join(repo.folder_name())
            .join("snapshots")
            .join(&revision)
            .join(file);
        if p.is_file() {
            return Ok(Some(p));
        }
    }
    if opts.is_offline() {
        // Offline and not cached: the file counts as absent, like `local_files_only=True`.
        return Ok(None);
    }
    let hub_err = |message: String| Error::Hub {
        repo: repo_id.to_owned(),
        file: file.to_owned(),
        message,
    };
    let mut builder = ApiBuilder::from_cache(cache).with_progress(false);
    if opts.token.is_some() {
        builder = builder.with_token(opts.token.clone());
    }
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(|e| hub_err(e.to_string()))?;
    match api.repo(repo).get(file) {
        Ok(p) => Ok(Some(p)),
        Err(hf_hub::api::sync::ApiError::RequestError(e))
            if matches!(*e, ureq::Error::StatusCode(404)) =>
        {
            Ok(None)
        }
        Err(e) => Err(hub_err(e.to_string())),
    }
}

/// Read a file into a string, naming it on failure.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parse a JSON file, naming it on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}
