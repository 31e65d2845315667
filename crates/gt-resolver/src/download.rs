//! Downloads into the verified cache: retries with backoff, a progress bar for large files.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::thread;

use crate::cache::CacheKey;
use crate::resolver::Resolver;
use crate::{Error, GtFile, Location};

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

impl Resolver {
    /// The local path of any file named by an http(s) URL, a `file://` URL or a plain path —
    /// e.g. a consistency case's input image — through the same verified cache, retries and
    /// offline rules as GT files ([`Resolver::fetch`] of an unpinned URL: downloaded again when
    /// online, served from the cache when offline). A local file is returned as it is.
    pub fn fetch_url(&self, url: &str) -> Result<PathBuf, Error> {
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
    pub(crate) fn download(&self, key: &CacheKey) -> Result<PathBuf, Error> {
        let backoff = self.http.backoff();
        let attempts = backoff.attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            let mut part = self.cache.begin()?;
            let bar: OnceCell<indicatif::ProgressBar> = OnceCell::new();
            let outcome = {
                let _permit = self.permits.acquire();
                self.http.download_once(
                    &key.url,
                    &mut part,
                    &mut |len| {
                        if let Some(len) = len.filter(|l| self.progress && *l >= PROGRESS_MIN_BYTES)
                        {
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
                )
            };
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
