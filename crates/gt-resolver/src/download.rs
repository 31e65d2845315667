//! Files to local paths: local files as they are, remote ones through the verified cache,
//! downloaded with retries and backoff (a progress bar for large files) when missing. A body
//! enters the cache only once it is whole (its announced length), within the size cap and the
//! deadline, and accepted by the caller's check ([`Verifier`]); a cached copy the check refuses
//! is removed.

use std::cell::OnceCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crate::cache::{Cache, CacheKey, Lookup};
use crate::error::Error;
use crate::http::{Failure, Http};
use crate::limits::{DEADLINE_ENV, DownloadLimits};
use crate::resolution::GtFile;
use crate::source::Location;

/// A check of a downloaded file: given its URL and the local file, `Ok` to accept it, or why
/// not. The caller decides what a good file is (e.g. an image that decodes as the kind its name
/// says), so that this crate stays free of image decoding.
pub type Check = dyn Fn(&str, &Path) -> Result<(), String> + Send + Sync;

/// The caller's [`Check`], if any (none accepts every whole body).
#[derive(Clone, Default)]
pub(crate) struct Verifier(Option<Arc<Check>>);

impl Verifier {
    pub(crate) fn new(check: Arc<Check>) -> Self {
        Verifier(Some(check))
    }

    fn check(&self, url: &str, path: &Path) -> Result<(), String> {
        match &self.0 {
            Some(check) => check(url, path),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Verifier(check)"
        } else {
            "Verifier(none)"
        })
    }
}

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// Serves files from the cache or downloads them into it.
#[derive(Debug)]
pub(crate) struct Downloader {
    http: Http,
    cache: Cache,
    /// Remote files come from the cache only.
    offline: bool,
    /// Show a progress bar for large downloads.
    progress: bool,
    /// The caller's check of every file served from or put into the cache.
    verifier: Verifier,
    limits: DownloadLimits,
}

impl Downloader {
    pub(crate) fn new(
        (http, cache): (Http, Cache),
        (offline, progress): (bool, bool),
        verifier: Verifier,
        limits: DownloadLimits,
    ) -> Self {
        Downloader {
            http,
            cache,
            offline,
            progress,
            verifier,
            limits,
        }
    }

    /// The cache files are kept in.
    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// See [`crate::Resolver::fetch`].
    pub(crate) fn fetch(&self, file: &GtFile) -> Result<PathBuf, Error> {
        if let Some(p) = &file.local_path {
            return if p.is_file() {
                Ok(p.clone())
            } else {
                Err(Error::io(p, std::io::ErrorKind::NotFound.into()))
            };
        }
        let key = CacheKey::new(&file.url, file.revision.clone());
        if file.revision.is_some() || self.offline {
            match self.cache.lookup(&key) {
                Lookup::Hit(p) => match self.verifier.check(&key.url, &p) {
                    Ok(()) => return Ok(p),
                    // Kept by an older version, or by a resolver without this check.
                    Err(reason) => {
                        self.cache.forget(&key, &p);
                        if self.offline {
                            return Err(Error::RejectedCache {
                                url: file.url.clone(),
                                path: p,
                                reason,
                            });
                        }
                    }
                },
                // Online, a corrupt copy is simply downloaded again below.
                Lookup::Corrupt(path) if self.offline => {
                    return Err(Error::CorruptCache {
                        url: file.url.clone(),
                        path,
                    });
                }
                Lookup::Corrupt(_) | Lookup::Miss => {}
            }
        }
        if self.offline {
            return Err(Error::OfflineMiss {
                url: file.url.clone(),
                cache: self.cache.root().to_path_buf(),
            });
        }
        self.download(&key)
    }

    /// See [`crate::Resolver::fetch_url`].
    pub(crate) fn fetch_url(&self, url: &str) -> Result<PathBuf, Error> {
        let loc = Location::parse(url)?;
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        let file = match loc {
            Location::Local(p) => GtFile {
                name,
                url: Location::Local(p.clone()).url(),
                local_path: Some(p),
                revision: None,
            },
            Location::Remote(u) => GtFile {
                name,
                url: u,
                local_path: None,
                revision: None,
            },
        };
        self.fetch(&file)
    }

    /// Downloads `key.url` into the cache, retrying throttling, 5xx, transport errors, truncated
    /// bodies and bodies the check refuses; a clean 4xx, a body over the size cap or the
    /// deadline ends it at once.
    fn download(&self, key: &CacheKey) -> Result<PathBuf, Error> {
        let backoff = self.http.backoff();
        let attempts = backoff.attempts.max(1);
        let until = Instant::now() + self.limits.deadline;
        let mut n = 0;
        loop {
            n += 1;
            let mut part = self.cache.begin()?;
            let outcome = self.attempt(key, &mut part, until).and_then(|()| {
                self.verifier.check(&key.url, &part.path).map_err(|why| {
                    Failure::retry(None, format!("the body is not a usable file: {why}"))
                })
            });
            let f = match outcome {
                Ok(()) => return self.cache.commit(part, key),
                Err(f) => f,
            };
            drop(part);
            let delay = backoff.delay_after(n);
            let late = Instant::now() + delay >= until;
            if !f.retryable || n >= attempts || late {
                let mut reason = f.reason;
                if late && f.retryable {
                    reason.push_str(&format!(
                        "; stopped at the {:.0?} download deadline ({DEADLINE_ENV})",
                        self.limits.deadline
                    ));
                }
                return Err(Error::Download {
                    url: key.url.clone(),
                    attempts: n,
                    status: f.status,
                    reason,
                });
            }
            thread::sleep(delay);
        }
    }

    /// One attempt into `part`, with a progress bar for a large body on a terminal.
    fn attempt(
        &self,
        key: &CacheKey,
        part: &mut crate::cache::Part,
        until: Instant,
    ) -> Result<(), Failure> {
        let bar: OnceCell<indicatif::ProgressBar> = OnceCell::new();
        let outcome = self.http.download_once(
            &key.url,
            part,
            (self.limits.max_bytes, until),
            &mut |len| {
                if let Some(len) = len.filter(|l| self.progress && *l >= PROGRESS_MIN_BYTES) {
                    let pb = indicatif::ProgressBar::new(len);
                    pb.set_message(key.url.clone());
                    let _ = bar.set(pb);
                }
            },
            &mut |got| {
                if let Some(pb) = bar.get() {
                    pb.set_position(got);
                }
            },
        );
        if let Some(pb) = bar.get() {
            pb.finish_and_clear();
        }
        outcome
    }
}
