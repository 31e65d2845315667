//! Existence from a commit's file list instead of per-file probes.
//!
//! A GT root such as `https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>` is pinned
//! to an immutable commit, so the set of files under it never changes. GitHub's git/trees API
//! (`GET <api>/repos/<owner>/<repo>/git/trees/<commit>?recursive=1`) lists that whole set in one
//! request; the listing is cached on disk per commit, so it is asked for once per machine. With it
//! an absent candidate costs nothing, where probing must see a 4xx over several attempts with
//! backoff (a CDN can 404 a file for a moment) before a lower-priority candidate can win.
//!
//! The listing is only an optimisation: when it cannot be had (no network, rate limit, a private
//! repository) or GitHub says it is `truncated`, the resolver probes as before.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheKey};
use crate::http::{Answer, Http, Outcome};
use crate::source::{Location, Source, is_commit};

/// The API host for [`GITHUB_API_ENV`]'s default.
pub const GITHUB_API: &str = "https://api.github.com";
/// Environment variable overriding the GitHub API base (an Enterprise host, or a loopback server
/// that emulates both the raw and the API endpoints in tests).
pub const GITHUB_API_ENV: &str = "QWEN_GITHUB_API";
/// Environment variable holding a GitHub token, sent as `Authorization: Bearer …` to the API
/// (it raises GitHub's limit of 60 unauthenticated requests an hour).
pub const GITHUB_TOKEN_ENV: &str = "GITHUB_TOKEN";

/// Host of raw GitHub URLs.
const RAW_HOST: &str = "raw.githubusercontent.com";
/// Largest listing body read (GitHub truncates recursive listings well below this).
const MAX_LISTING_BYTES: u64 = 64 * 1024 * 1024;

/// One repository at one commit, as the API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeRef {
    owner: String,
    repo: String,
    commit: String,
}

impl TreeRef {
    fn label(&self) -> String {
        let short = self.commit.get(..12).unwrap_or(&self.commit);
        format!("{}/{}@{short}", self.owner, self.repo)
    }
}

/// What is known about one commit's file list.
#[derive(Debug)]
pub(crate) enum TreeState {
    /// Every blob path of the commit.
    Listed(HashSet<String>),
    /// No usable listing (why, for the notes): existence is probed per file.
    Unusable(String),
}

/// A tree the resolver may list, loaded at most once.
#[derive(Debug)]
pub(crate) struct Tree {
    tree: TreeRef,
    state: OnceLock<TreeState>,
}

/// Where a source sits in a listable tree: which [`Tree`] and the path prefix inside the repo.
#[derive(Debug, Clone)]
pub(crate) struct SourceTree {
    tree: usize,
    prefix: String,
}

/// How the resolver talks to the git/trees API.
#[derive(Debug, Clone)]
pub(crate) struct GithubApi {
    base: String,
    token: Option<String>,
    /// The API host also serves raw URLs (a loopback emulator), besides raw.githubusercontent.com.
    raw_hosts: Vec<String>,
}

impl GithubApi {
    /// `base` (default: [`GITHUB_API_ENV`], else [`GITHUB_API`]) and a bearer token (default:
    /// [`GITHUB_TOKEN_ENV`], if set).
    pub(crate) fn new(base: Option<String>, token: Option<String>) -> Self {
        let env = |name: &str| std::env::var(name).ok();
        let token = token.or_else(|| env(GITHUB_TOKEN_ENV));
        let base = base
            .or_else(|| env(GITHUB_API_ENV))
            .filter(|b| !b.trim().is_empty())
            .map(|b| b.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| GITHUB_API.to_string());
        let mut raw_hosts = vec![RAW_HOST.to_string()];
        if base != GITHUB_API
            && let Some(h) = host_of(&base)
        {
            raw_hosts.push(h.to_ascii_lowercase());
        }
        GithubApi {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            raw_hosts,
        }
    }

    /// The tree and prefix of a raw URL pinned to a commit, or `None` for any other source.
    fn locate(&self, source: &Source) -> Option<(TreeRef, String)> {
        let Location::Remote(url) = &source.base else {
            return None;
        };
        let rest = url.split_once("://")?.1;
        let mut segs = rest.split('/');
        let host = segs.next()?.to_ascii_lowercase();
        if !self.raw_hosts.contains(&host) {
            return None;
        }
        let (owner, repo, commit) = (segs.next()?, segs.next()?, segs.next()?);
        let prefix: Vec<&str> = segs.filter(|s| !s.is_empty()).collect();
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        // Escaped or odd path segments would have to be decoded to compare with the listing:
        // such a tree is probed instead.
        if !is_commit(commit)
            || source.revision.as_deref() != Some(commit)
            || !plain(owner)
            || !plain(repo)
            || !prefix.iter().all(|s| plain(s))
        {
            return None;
        }
        Some((
            TreeRef {
                owner: owner.to_string(),
                repo: repo.to_string(),
                commit: commit.to_ascii_lowercase(),
            },
            prefix.join("/"),
        ))
    }

    fn url(&self, t: &TreeRef) -> String {
        format!(
            "{}/repos/{}/{}/git/trees/{}?recursive=1",
            self.base, t.owner, t.repo, t.commit
        )
    }
}

/// `host[:port]` of an http(s) URL.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    rest.split('/').next().filter(|h| !h.is_empty())
}

/// The listable trees of `sources` (shared when several sources live in one commit) and, for
/// each source, where it sits in them.
fn plan_trees(api: &GithubApi, sources: &[Source]) -> (Vec<Tree>, Vec<Option<SourceTree>>) {
    let mut trees: Vec<Tree> = Vec::new();
    let placed = sources
        .iter()
        .map(|s| {
            let (tree, prefix) = api.locate(s)?;
            let i = match trees.iter().position(|t| t.tree == tree) {
                Some(i) => i,
                None => {
                    trees.push(Tree {
                        tree,
                        state: OnceLock::new(),
                    });
                    trees.len() - 1
                }
            };
            Some(SourceTree { tree: i, prefix })
        })
        .collect();
    (trees, placed)
}

/// The API's answer, reduced to what is used.
#[derive(Deserialize)]
struct ApiTree {
    #[serde(default)]
    truncated: bool,
    tree: Vec<ApiEntry>,
}

#[derive(Deserialize)]
struct ApiEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// What the cache keeps per commit: the blob paths, or the fact that GitHub truncated the list.
#[derive(Serialize, Deserialize)]
struct Stored {
    truncated: bool,
    blobs: Vec<String>,
}

/// The file lists of the pinned commits a resolver's sources live in, each loaded at most once
/// (from the cache, else with one API request).
#[derive(Debug)]
pub(crate) struct Lister {
    http: Http,
    cache: Cache,
    offline: bool,
    /// The GitHub API that lists pinned commits.
    github: GithubApi,
    /// The commits whose file lists may answer existence.
    trees: Vec<Tree>,
    /// Where each source sits in `trees` (indexed like the sources; `None`: probed).
    source_trees: Vec<Option<SourceTree>>,
}

impl Lister {
    /// A lister for `sources` (indexed as given); with `github` `None` (listing turned off) it
    /// lists nothing and every candidate is probed.
    pub(crate) fn new(
        http: Http,
        cache: Cache,
        offline: bool,
        github: Option<GithubApi>,
        sources: &[Source],
    ) -> Self {
        let (github, (trees, source_trees)) = match github {
            Some(api) => {
                let planned = plan_trees(&api, sources);
                (api, planned)
            }
            None => (
                GithubApi::new(None, None),
                (Vec::new(), vec![None; sources.len()]),
            ),
        };
        Lister {
            http,
            cache,
            offline,
            github,
            trees,
            source_trees,
        }
    }

    /// Existence of `name` under source `src` from its commit's listing; `None` when the source
    /// is not in a listable tree or the listing is unusable (the caller probes).
    pub(crate) fn listed(&self, src: usize, name: &str) -> Option<Outcome> {
        let placed = self.source_trees.get(src)?.as_ref()?;
        let tree = &self.trees[placed.tree];
        let TreeState::Listed(blobs) = self.tree_state(tree) else {
            return None;
        };
        let path = if placed.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", placed.prefix)
        };
        let (answer, verb) = if blobs.contains(&path) {
            (Answer::Yes, "listed")
        } else {
            (Answer::No, "not listed")
        };
        Some(Outcome {
            answer,
            attempts: 0,
            reason: format!("{verb} in the tree of {}", tree.tree.label()),
        })
    }

    /// One line per tree consulted so far: whether its listing answered, or why not.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.trees
            .iter()
            .filter_map(|t| {
                Some(match t.state.get()? {
                    TreeState::Listed(blobs) => format!(
                        "existence answered from the file list of {} ({} files; no probe needed)",
                        t.tree.label(),
                        blobs.len()
                    ),
                    TreeState::Unusable(why) => format!(
                        "no file list for {} ({why}): existence probed file by file",
                        t.tree.label()
                    ),
                })
            })
            .collect()
    }

    fn tree_state<'a>(&self, tree: &'a Tree) -> &'a TreeState {
        tree.state.get_or_init(|| self.load_tree(&tree.tree))
    }

    /// The listing from the cache, else from the API (stored for next time). One attempt: the
    /// usual reasons for failing (rate limit, private repository) do not pass with a retry, and
    /// probing is always there to fall back on.
    fn load_tree(&self, tree: &TreeRef) -> TreeState {
        let url = self.github.url(tree);
        let key = CacheKey::new(format!("github-tree-v1:{url}"), Some(tree.commit.clone()));
        if let Some(p) = self.cache.get(&key)
            && let Ok(bytes) = std::fs::read(&p)
            && let Ok(stored) = serde_json::from_slice::<Stored>(&bytes)
        {
            return state_of(stored);
        }
        if self.offline {
            return TreeState::Unusable("offline and not in the cache".into());
        }
        let mut headers = vec![
            ("Accept", "application/vnd.github+json".to_string()),
            ("X-GitHub-Api-Version", "2022-11-28".to_string()),
        ];
        if let Some(t) = &self.github.token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        let body = match self.http.get_bytes(&url, &headers, MAX_LISTING_BYTES) {
            Ok(b) => b,
            Err(f) => return TreeState::Unusable(format!("{url}: {}", f.reason)),
        };
        let parsed: ApiTree = match serde_json::from_slice(&body) {
            Ok(t) => t,
            Err(e) => {
                return TreeState::Unusable(format!("{url}: not a git/trees answer ({e})"));
            }
        };
        let stored = Stored {
            truncated: parsed.truncated,
            blobs: if parsed.truncated {
                Vec::new()
            } else {
                parsed
                    .tree
                    .into_iter()
                    .filter(|e| e.kind == "blob")
                    .map(|e| e.path)
                    .collect()
            },
        };
        // Best effort: without the cache entry the next run asks the API again.
        if let Ok(bytes) = serde_json::to_vec(&stored) {
            let _ = self.cache.put_bytes(&key, &bytes);
        }
        state_of(stored)
    }
}

fn state_of(stored: Stored) -> TreeState {
    if stored.truncated {
        TreeState::Unusable("GitHub truncated the recursive listing".into())
    } else {
        TreeState::Listed(stored.blobs.into_iter().collect())
    }
}
