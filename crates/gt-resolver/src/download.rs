//! Files to local paths: local files as they are, remote ones through the verified cache,
//! downloaded with retries and backoff (a progress bar for large files) when missing.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::thread;

use crate::cache::{Cache, CacheKey, Lookup};
use crate::error::Error;
use crate::http::Http;
use crate::resolution::GtFile;
use crate::source::Location;

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
}

impl Downloader {
    pub(crate) fn new(http: Http, cache: Cache, offline: bool, progress: bool) -> Self {
        Downloader {
            http,
            cache,
            offline,
            progress,
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
                Lookup::Hit(p) => return Ok(p),
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

    /// Downloads `key.url` into the cache, retrying throttling, 5xx, transport errors and
    /// truncated bodies; a clean 4xx fails at once.
    fn download(&self, key: &CacheKey) -> Result<PathBuf, Error> {
        let backoff = self.http.backoff();
        let attempts = backoff.attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            let mut part = self.cache.begin()?;
            let bar: OnceCell<indicatif::ProgressBar> = OnceCell::new();
            let outcome = self.http.download_once(
                &key.url,
                &mut part,
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
            match outcome {
                Ok(()) => return self.cache.commit(part, key),
                Err(f) if !f.retryable || n >= attempts => {
                    return Err(Error::Download {
                        url: key.url.clone(),
                        attempts: n,
                        status: f.status,
                        reason: f.reason,
                    });
                }
                Err(_) => {
                    drop(part);
                    thread::sleep(backoff.delay_after(n));
                }
            }
        }
    }
}
