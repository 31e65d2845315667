//! The Hugging Face Hub the way Python's `huggingface_hub` sees it: the same environment variables,
//! the same cache layout, the same token. Every command that takes `--model REPO` (pipelines, the
//! tokenizer, the CLIP model) reaches the Hub through [`HubRepo`], so a repo Python downloaded is
//! found here and the other way round.
//!
//! The cache is `<cache>/models--<owner>--<name>/`: `refs/<branch>` holds a commit hash,
//! `snapshots/<commit>/<file>` the files (links into `blobs/`). A revision that has no ref (a commit
//! hash) is looked up as a snapshot directly, as `try_to_load_from_cache` does.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};

use crate::Error;

/// Where a repo's files are looked for, and whether the network may be used.
///
/// Every `None`/`false` field falls back to the environment, read as huggingface_hub reads it
/// (`constants.py`, `utils/_auth.py`):
/// - cache: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, where `HF_HOME`
///   defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (`~` and `$VAR` are
///   expanded);
/// - offline: `HF_HUB_OFFLINE`, else `TRANSFORMERS_OFFLINE`, true when `1`, `ON`, `YES` or `TRUE`
///   in any case;
/// - token: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH` (default
///   `$HF_HOME/token`), stripped of spaces and newlines; none when `HF_HUB_DISABLE_IMPLICIT_TOKEN`
///   is true;
/// - endpoint: `HF_ENDPOINT` without its trailing `/`, else `https://huggingface.co`.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Branch, tag or commit; `main` when `None`.
    pub revision: Option<String>,
    /// Cache folder (the `hub` folder itself); from the environment when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network. `HF_HUB_OFFLINE=1` also turns this on.
    pub offline: bool,
    /// Access token; from the environment or the token file when `None`.
    pub token: Option<String>,
}

impl HubOptions {
    /// The cache folder these options resolve to.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| HubEnv::from_env().cache_dir)
    }

    /// Offline when asked, or when the environment says so (`HF_HUB_OFFLINE`).
    pub fn is_offline(&self) -> bool {
        self.offline || HubEnv::from_env().offline
    }
}

/// `owner/name` as huggingface_hub's `validate_repo_id` accepts it, with the owner required (a
/// path such as `./x/y` or `/a/b` is never a repo id): letters, digits, `_`, `.` and `-`, each
/// part starting and ending with a letter, digit or `_`, no `--` or `..`, at most 96 characters.
pub fn is_repo_id(s: &str) -> bool {
    let part_ok = |p: &str| {
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        edge(p.chars().next())
            && edge(p.chars().last())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    match s.split_once('/') {
        Some((owner, name)) => {
            s.len() <= 96
                && !s.contains("--")
                && !s.contains("..")
                && part_ok(owner)
                && part_ok(name)
        }
        None => false,
    }
}

/// One HF model repo at one revision. A file is taken from the cache when present there, else
/// downloaded into it (with a progress bar) unless offline.
pub struct HubRepo {
    repo_id: String,
    revision: String,
    cache_dir: PathBuf,
    offline: bool,
    /// `None` offline: nothing may reach the network.
    api: Option<ApiRepo>,
}

impl std::fmt::Debug for HubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubRepo")
            .field("repo_id", &self.repo_id)
            .field("revision", &self.revision)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

impl HubRepo {
    /// The repo at `revision` (`None` = `main`), everything else from the environment.
    pub fn new(repo_id: &str, revision: Option<&str>) -> Result<Self, Error> {
        Self::with_options(
            repo_id,
            &HubOptions {
                revision: revision.map(str::to_string),
                ..HubOptions::default()
            },
        )
    }

    /// The repo with explicit options; what they leave unset comes from the environment.
    pub fn with_options(repo_id: &str, opts: &HubOptions) -> Result<Self, Error> {
        let err = |reason: String| Error::Hub {
            repo: repo_id.to_string(),
            file: String::new(),
            reason,
        };
        if !is_repo_id(repo_id) {
            return Err(err("not an HF repo id of the form owner/name".into()));
        }
        let env = HubEnv::from_env();
        let revision = opts.revision.clone().unwrap_or_else(|| "main".into());
        let cache_dir = opts.cache_dir.clone().unwrap_or(env.cache_dir);
        let offline = opts.offline || env.offline;
        let api = if offline {
            None
        } else {
            // The token is always set here: hf-hub would otherwise read `<cache>/../token`, which
            // is not the token file when HF_HUB_CACHE points elsewhere.
            let api = ApiBuilder::from_cache(hf_hub::Cache::new(cache_dir.clone()))
                .with_token(opts.token.clone().or(env.token))
                .with_endpoint(env.endpoint)
                .with_progress(true)
                .build()
                .map_err(|e| err(e.to_string()))?;
            Some(api.repo(Repo::with_revision(
                repo_id.to_string(),
                RepoType::Model,
                revision.clone(),
            )))
        };
        Ok(Self {
            repo_id: repo_id.to_string(),
            revision,
            cache_dir,
            offline,
            api,
        })
    }

    /// The repo id.
    pub fn repo_id(&self) -> &str {
        &self.repo_id
    }

    /// The revision asked for (`main` by default).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The cache folder searched.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Whether the network is off limits.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// `file` (a path inside the repo) when the cache holds it at this revision: the revision is
    /// resolved through `refs/` when it names a branch or tag, else taken as a snapshot name.
    pub fn cached(&self, file: &str) -> Option<PathBuf> {
        let repo = self
            .cache_dir
            .join(format!("models--{}", self.repo_id.replace('/', "--")));
        // huggingface_hub reads the ref file as it is (it writes no newline).
        let commit = std::fs::read_to_string(repo.join("refs").join(&self.revision))
            .unwrap_or_else(|_| self.revision.clone());
        let path = repo.join("snapshots").join(commit).join(file);
        path.is_file().then_some(path)
    }

    /// The local path of `file`, or `None` when the repo does not have it (a 404), or when offline
    /// and it is not cached (as `local_files_only=True` answers). Other failures are errors.
    pub fn find(&self, file: &str) -> Result<Option<PathBuf>, Error> {
        if let Some(p) = self.cached(file) {
            return Ok(Some(p));
        }
        let Some(api) = &self.api else {
            return Ok(None);
        };
        match api.get(file) {
            Ok(p) => Ok(Some(p)),
            Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::StatusCode(404)) => {
                Ok(None)
            }
            Err(e) => Err(self.error(file, e.to_string())),
        }
    }

    /// The local path of `file`; an error naming the repo, the file and the cache when it cannot
    /// be had.
    pub fn get(&self, file: &str) -> Result<PathBuf, Error> {
        self.find(file)?.ok_or_else(|| {
            let reason = if self.offline {
                format!(
                    "not in the HF cache {} and offline mode is on (HF_HUB_OFFLINE)",
                    self.cache_dir.display()
                )
            } else {
                format!("the repo has no such file at revision {}", self.revision)
            };
            self.error(file, reason)
        })
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
            if let Some(path) = self.find(&at(&format!("{stem}.safetensors.index.json")))? {
                let json: serde_json::Value = config_file::read_json(&path)?;
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
            if self.find(&at(&format!("{stem}.safetensors")))?.is_some() {
                return Ok(());
            }
        }
        Err(self.error(
            &at("*.safetensors"),
            "no safetensors weights (single file or index) found".into(),
        ))
    }

    fn error(&self, file: &str, reason: String) -> Error {
        Error::Hub {
            repo: self.repo_id.clone(),
            file: file.to_string(),
            reason,
        }
    }
}

/// The settings huggingface_hub takes from the environment (see [`HubOptions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HubEnv {
    cache_dir: PathBuf,
    offline: bool,
    token: Option<String>,
    endpoint: String,
}

impl HubEnv {
    fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Precedence as huggingface_hub has it. Python's `os.getenv(K, default)` keeps a variable set
    /// to "" (so `HF_HOME=""` means a relative `hub` folder), while `a or b` skips an empty one.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let path = |v: String| PathBuf::from(expand_vars(&expand_user(&v, &var), &var));
        let hf_home = path(var("HF_HOME").unwrap_or_else(|| {
            let cache_home = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(expand_user("~", &var)).join(".cache"));
            cache_home
                .join("huggingface")
                .to_string_lossy()
                .into_owned()
        }));
        let under_home = |f: &str| hf_home.join(f).to_string_lossy().into_owned();
        let cache_dir = path(
            var("HF_HUB_CACHE")
                .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
                .unwrap_or_else(|| under_home("hub")),
        );
        let non_empty = |k: &str| var(k).filter(|v| !v.is_empty());
        let offline = non_empty("HF_HUB_OFFLINE")
            .or_else(|| var("TRANSFORMERS_OFFLINE"))
            .is_some_and(|v| is_true(&v));
        let token_path = path(var("HF_TOKEN_PATH").unwrap_or_else(|| under_home("token")));
        let token = if var("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| is_true(&v)) {
            None
        } else {
            non_empty("HF_TOKEN")
                .or_else(|| non_empty("HUGGING_FACE_HUB_TOKEN"))
                .and_then(clean_token)
                .or_else(|| {
                    std::fs::read_to_string(&token_path)
                        .ok()
                        .and_then(clean_token)
                })
        };
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        Self {
            cache_dir,
            offline,
            token,
            endpoint,
        }
    }
}

/// `constants._is_true`: exact match after upper-casing, no trimming.
fn is_true(v: &str) -> bool {
    matches!(v.to_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

/// `_clean_token`: drop `\r` and `\n`, strip, and nothing left means no token.
fn clean_token(t: String) -> Option<String> {
    let t = t.replace(['\r', '\n'], "");
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `os.path.expanduser` for `~` and `~/…` (from `HOME`); `~user` is left as it is.
fn expand_user(p: &str, var: &impl Fn(&str) -> Option<String>) -> String {
    let home = || {
        var("HOME")
            .or_else(|| std::env::home_dir().map(|h| h.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "~".into())
    };
    match p.strip_prefix('~') {
        Some("") => home(),
        Some(rest) if rest.starts_with('/') => format!("{}{rest}", home().trim_end_matches('/')),
        _ => p.to_string(),
    }
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when the variable is set, else left as
/// they are.
fn expand_vars(p: &str, var: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match var(name).filter(|_| len > 0 && !name.is_empty()) {
            Some(value) => {
                out.push_str(&value);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HubEnv {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubEnv::from_vars(move |k| map.get(k).cloned())
    }

    #[test]
    fn cache_precedence_is_huggingface_hubs() {
        let home = [("HOME", "/home/u")];
        assert_eq!(
            env(&home).cache_dir,
            PathBuf::from("/home/u/.cache/huggingface/hub")
        );
        assert_eq!(
            env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]).cache_dir,
            PathBuf::from("/x/huggingface/hub")
        );
        assert_eq!(
            env(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "~/hf")]).cache_dir,
            PathBuf::from(format!(
                "{}/hf/hub",
                expand_user("~", &|k: &str| std::env::var(k).ok())
            ))
        );
        assert_eq!(
            env(&[("HF_HOME", "/h"), ("HUGGINGFACE_HUB_CACHE", "/legacy")]).cache_dir,
            PathBuf::from("/legacy")
        );
        assert_eq!(
            env(&[
                ("HF_HOME", "/h"),
                ("HUGGINGFACE_HUB_CACHE", "/legacy"),
                ("HF_HUB_CACHE", "$ROOT/c"),
                ("ROOT", "/r"),
            ])
            .cache_dir,
            PathBuf::from("/r/c")
        );
    }

    #[test]
    fn offline_and_token_follow_the_same_rules() {
        assert!(env(&[("HF_HUB_OFFLINE", "yes")]).offline);
        assert!(env(&[("HF_HUB_OFFLINE", "On")]).offline);
        // No trimming, as `_is_true`; an empty value falls through to TRANSFORMERS_OFFLINE.
        assert!(!env(&[("HF_HUB_OFFLINE", " 1")]).offline);
        assert!(!env(&[("HF_HUB_OFFLINE", "0"), ("TRANSFORMERS_OFFLINE", "1")]).offline);
        assert!(env(&[("HF_HUB_OFFLINE", ""), ("TRANSFORMERS_OFFLINE", "1")]).offline);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), " hf_file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(env(&[("HF_HOME", home)]).token.as_deref(), Some("hf_file"));
        assert_eq!(
            env(&[("HF_HOME", home), ("HF_TOKEN", "hf_env\n")])
                .token
                .as_deref(),
            Some("hf_env")
        );
        assert_eq!(
            env(&[
                ("HF_HOME", home),
                ("HF_TOKEN", ""),
                ("HUGGING_FACE_HUB_TOKEN", "old")
            ])
            .token
            .as_deref(),
            Some("old")
        );
        let other = dir.path().join("elsewhere");
        std::fs::write(&other, "hf_path").unwrap();
        assert_eq!(
            env(&[
                ("HF_HOME", home),
                ("HF_TOKEN_PATH", other.to_str().unwrap())
            ])
            .token
            .as_deref(),
            Some("hf_path")
        );
        assert_eq!(
            env(&[("HF_HOME", home), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]).token,
            None
        );
        assert_eq!(
            env(&[("HF_ENDPOINT", "http://127.0.0.1:9/")]).endpoint,
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn expandvars_leaves_unknown_variables() {
        let var = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(
            expand_vars("$A/${A}/$B/${B}/$/${", &var),
            "x/x/$B/${B}/$/${"
        );
    }

    #[test]
    fn repo_ids() {
        for ok in [
            "Qwen/Qwen-Image",
            "openai/clip-vit-large-patch14",
            "a_b/c.d",
        ] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in [
            "Qwen",
            "./a/b",
            "../x",
            "/a/b",
            "a/b/c",
            "a/",
            "/a",
            "a--b/c",
            "a/b..c",
            "a/-b",
            "a/b.",
            "a b/c",
            "testdata/tiny-qwen-image/",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_is_found_through_its_ref_or_its_commit() {
        let cache = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.path().join("models--o--n");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(commit).join("sub")).unwrap();
        std::fs::write(repo.join("snapshots").join(commit).join("sub/f.json"), "{}").unwrap();
        let open = |revision: Option<&str>| {
            HubRepo::with_options(
                "o/n",
                &HubOptions {
                    revision: revision.map(str::to_string),
                    cache_dir: Some(cache.path().to_path_buf()),
                    offline: true,
                    token: None,
                },
            )
            .unwrap()
        };
        for rev in [None, Some(commit)] {
            let r = open(rev);
            assert!(r.get("sub/f.json").unwrap().ends_with("sub/f.json"));
            assert_eq!(r.find("sub/g.json").unwrap(), None);
        }
        let msg = open(Some("v2")).get("sub/f.json").unwrap_err().to_string();
        assert!(
            msg.contains("o/n") && msg.contains("sub/f.json") && msg.contains("HF_HUB_OFFLINE"),
            "{msg}"
        );
    }
}
