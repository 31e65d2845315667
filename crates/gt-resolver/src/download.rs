//! Downloads into the verified cache: retries with backoff, a progress bar for large files.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::thread;

use crate::Error;
use crate::cache::CacheKey;
use crate::resolver::Resolver;

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

impl Resolver {
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
