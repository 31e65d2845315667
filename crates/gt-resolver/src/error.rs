//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while locating, probing, downloading or caching GT.
///
/// Every variant names the case, URL or path it is about, so a CI log line is actionable on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A case id with characters outside `[A-Za-z0-9_.-]` (it becomes part of a URL and a path).
    #[error("invalid case id {case:?}: only [A-Za-z0-9_.-] are allowed")]
    InvalidCase {
        /// The rejected id.
        case: String,
    },

    /// A platform name that is not h100, b200 or 5090 (nor one of their aliases).
    #[error(
        "unknown consistency platform {value:?}: expected one of h100 (sm90, hopper), b200 (sm100, blackwell), 5090 (sm120, rtx5090)"
    )]
    UnknownPlatform {
        /// The rejected value, as given.
        value: String,
    },

    /// A GT root or source location that is neither an http(s) URL nor a usable local path.
    #[error("invalid GT location {input:?}: {reason}")]
    InvalidLocation {
        /// What the user gave.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A GT root built from a repository and a branch name: its content can change under a running CI.
    #[error(
        "refusing floating revision {revision:?} of {repo}: GT must come from an immutable 40-hex commit \
         (upstream pinned ci-data after `main` let unrelated uploads change PR results); \
         pin a commit, or allow floating revisions explicitly"
    )]
    FloatingRevision {
        /// Repository (`owner/name`) or URL the revision belongs to.
        repo: String,
        /// The branch-like revision that was refused.
        revision: String,
    },

    /// No source holds GT for the case. The message lists every URL tried and how to add GT.
    #[error(
        "GT not found for {case} ({num_gpus} GPU(s), platform {platform}); revision: {}.\nTried:\n  {}\n{hint}",
        revision.as_deref().unwrap_or("unpinned"),
        tried.join("\n  ")
    )]
    NotFound {
        /// The case id.
        case: String,
        /// Part of the GT file name.
        num_gpus: u32,
        /// Platform folder that was tried first.
        platform: String,
        /// The pinned revision of the GT tree, if any.
        revision: Option<String>,
        /// Every candidate URL or path, in the order tried.
        tried: Vec<String>,
        /// What to do next (how upstream generates and publishes GT).
        hint: String,
    },

    /// No source but the official one could hold the case's GT, and the official case map could
    /// not be read (only transient failures): whether GT exists cannot be decided in this run.
    #[error(
        "cannot tell whether GT exists for {case}: no other source has it, and the official \
         case map could not be read ({reason}); retry when the GT host answers"
    )]
    CaseMapUnavailable {
        /// The case id.
        case: String,
        /// Why the case map could not be read (it names its URL).
        reason: String,
    },

    /// A download that failed after all retries, or with a status that is not worth retrying.
    #[error("download of {url} failed after {attempts} attempt(s): {reason}")]
    Download {
        /// The URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The HTTP status of the last attempt, when the server answered with one (a clean 4xx
        /// here means the file is not there; see `reason` for everything else).
        status: Option<u16>,
        /// The last failure (status, timeout, truncated body, …).
        reason: String,
    },

    /// `--offline` and the file is neither local nor in the cache.
    #[error("offline: {url} is not in the GT cache at {}", cache.display())]
    OfflineMiss {
        /// The URL that would have been downloaded.
        url: String,
        /// The cache folder that was searched.
        cache: PathBuf,
    },

    /// A filesystem error, with the path it happened on. The cause is part of the message and
    /// deliberately not a `source()`, so that error chains (`{:#}`) do not print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },

    /// `offline`, and the cached copy of a remote GT file failed its sha256 check (it was
    /// truncated or changed on disk; the bad copy has been removed).
    #[error(
        "offline: the cached copy of {url} at {} is corrupt (truncated or changed on disk) and was \
         removed; run once without --offline to download it again",
        path.display()
    )]
    CorruptCache {
        /// The URL the cached copy was downloaded from.
        url: String,
        /// The cache object that failed verification.
        path: PathBuf,
    },

    /// `offline`, and the cached copy of a remote file is whole but the caller's check refuses
    /// it (kept by an older version: an HTML error page, a cut PNG); it has been removed.
    #[error(
        "offline: the cached copy of {url} at {} is not a usable file ({reason}) and was removed; \
         run once without --offline to download it again",
        path.display()
    )]
    RejectedCache {
        /// The URL the cached copy was downloaded from.
        url: String,
        /// The cache object that was refused.
        path: PathBuf,
        /// What the check said.
        reason: String,
    },

    /// Whether GT exists could not be told: no source was found, and some candidates were not
    /// asked at all (offline, with nothing in the cache for them). Not a "missing GT".
    #[error(
        "cannot tell whether GT exists for {case}: nothing was asked ({reason}) for\n  {}\n\
         run once without --offline to fill the GT cache",
        unasked.join("\n  ")
    )]
    NotAsked {
        /// The case id.
        case: String,
        /// The candidates that were not asked, in lookup order.
        unasked: Vec<String>,
        /// Why they were not asked (`offline, not in the GT cache`).
        reason: String,
    },

    /// No usable cache folder: no user cache dir and no override.
    #[error("no cache folder: set {env} or give the resolver a cache folder")]
    NoCacheDir {
        /// The environment variable that overrides the location.
        env: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
