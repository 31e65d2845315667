//! Where tokenizer files come from: a local folder, or a Hugging Face repository through
//! `weights`' hub module (the cache, offline mode and token that Python's `huggingface_hub` uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weights::{HubOptions, HubRepo};

use crate::error::{Error, Result};

/// A place that may hold a file, answered as a local path.
pub(crate) enum Source {
    Local(PathBuf),
    Hub {
        repo: Arc<HubRepo>,
        /// Prefix inside the repo ("" or "tokenizer/").
        prefix: String,
    },
}

impl Source {
    /// The root of a Hub repo (nothing is fetched yet).
    pub(crate) fn hub(repo_id: &str, opts: &HubOptions) -> Result<Source> {
        let repo = HubRepo::with_options(repo_id, opts).map_err(|e| hub_error(repo_id, "", e))?;
        Ok(Source::Hub {
            repo: Arc::new(repo),
            prefix: String::new(),
        })
    }

    /// A human-readable location, used in messages.
    pub(crate) fn location(&self) -> String {
        match self {
            Source::Local(dir) => dir.display().to_string(),
            Source::Hub { repo, prefix } => {
                let mut s = format!("hf://{}", repo.repo_id());
                if !prefix.is_empty() {
                    s = format!("{s}/{}", prefix.trim_end_matches('/'));
                }
                if repo.revision() != "main" {
                    s = format!("{s}@{}", repo.revision());
                }
                if repo.is_offline() {
                    s = format!(
                        "{s} (offline: only the cache {} was searched)",
                        repo.cache_dir().display()
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
            Source::Hub { repo, prefix } => Source::Hub {
                repo: repo.clone(),
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

    /// The local path of `name`, or `None` when the source does not have it (offline and not
    /// cached counts as absent, like `local_files_only=True`).
    pub(crate) fn find(&self, name: &str) -> Result<Option<PathBuf>> {
        match self {
            Source::Local(dir) => {
                let p = dir.join(name);
                Ok(p.is_file().then_some(p))
            }
            Source::Hub { repo, prefix } => {
                let file = format!("{prefix}{name}");
                repo.find(&file)
                    .map_err(|e| hub_error(repo.repo_id(), &file, e))
            }
        }
    }
}

fn hub_error(repo: &str, file: &str, e: weights::Error) -> Error {
    let message = match e {
        weights::Error::Hub { reason, .. } => reason,
        other => other.to_string(),
    };
    Error::Hub {
        repo: repo.to_owned(),
        file: file.to_owned(),
        message,
    }
}

/// Read a file into a string, naming it on failure.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })
}

/// Parse a JSON file, naming it on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    config_file::read_json(path).map_err(|e| match e {
        config_file::ConfigFileError::Read { path, error } => Error::Io { path, error },
        config_file::ConfigFileError::Parse { path, error } => Error::Json { path, error },
    })
}
