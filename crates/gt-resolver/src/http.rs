//! HTTP: the tri-state existence probe and retried downloads.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The answer of an existence probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// A 200 or 206 was seen.
    Yes,
    /// Every attempt saw a clean "absent" status (404 and other 4xx that are not throttling).
    No,
    /// Only transient failures (429, 5xx, 403, timeouts, connection errors), or a mix of those and
    /// 404s. Callers treat it as present and say so: upstream learned that a CDN hiccup must not
    /// turn into a red "GT not found" (sglang PR #29545).
    Unknown,
}

impl Answer {
    /// `yes`, `no` or `unknown`, as in `gt resolve --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Unknown => "unknown",
        }
    }
}

/// Retry schedule: `attempts` tries, sleeping `initial`, then doubling up to `max`, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Total tries (at least 1).
    pub attempts: u32,
    /// First sleep.
    pub initial: Duration,
    /// Largest sleep.
    pub max: Duration,
}

impl Default for Backoff {
    /// Upstream's schedule: 5 attempts, sleeps of 1, 2, 4, 8 s (cap 16 s).
    fn default() -> Self {
        Backoff {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(16),
        }
    }
}

impl Backoff {
    /// The sleep before attempt `n + 1` (after attempt `n`, 1-based).
    pub fn delay_after(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// What one HTTP exchange said about a URL.
enum Seen {
    Present,
    Absent,
    Transient,
}

fn classify(status: u16) -> Seen {
    match status {
        200 | 206 => Seen::Present,
        // 403 is what GitHub's CDN answers when it throttles; 405 a server without HEAD/Range.
        403 | 405 | 429 => Seen::Transient,
        s if s >= 500 => Seen::Transient,
        _ => Seen::Absent,
    }
}

/// The blocking HTTP client with the crate's timeouts and retry schedule.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    backoff: Backoff,
}

/// How a download attempt ended when it did not succeed. Callers decide on the typed fields,
/// never on the text.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The HTTP status, when the server answered with one.
    pub(crate) status: Option<u16>,
    /// Worth another attempt: throttled, 5xx, transport error, truncated body. Not: a clean 4xx,
    /// or a local write error.
    pub(crate) retryable: bool,
    /// What happened, for people.
    pub(crate) reason: String,
}

impl Failure {
    fn retry(status: Option<u16>, reason: String) -> Self {
        Failure {
            status,
            retryable: true,
            reason,
        }
    }

    fn fatal(status: Option<u16>, reason: String) -> Self {
        Failure {
            status,
            retryable: false,
            reason,
        }
    }
}

/// A status that says "this file is not there" (404, 410 and other 4xx that are not throttling
/// or a refused method), as opposed to a transient answer.
pub(crate) fn is_clean_absence(status: u16) -> bool {
    matches!(classify(status), Seen::Absent)
}

impl Http {
    pub(crate) fn new(timeout: Duration, backoff: Backoff) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // We read every status ourselves: 404 vs 429 vs 5xx is the whole point of the probe.
            .http_status_as_error(false)
            // Per phase rather than end to end: a probe gets no answer within `timeout`, and a
            // large download may take longer in total as long as bytes keep arriving.
            .timeout_resolve(Some(timeout))
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .max_redirects(10)
            .build()
            .into();
        Http { agent, backoff }
    }

    pub(crate) fn backoff(&self) -> Backoff {
        self.backoff
    }

    fn status_of(&self, req: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Option<u16> {
        // The response (and for a ranged GET, its one-byte body) is dropped unread: the
        // connection is closed rather than drained.
        req.ok().map(|r| r.status().as_u16())
    }

    /// One attempt: HEAD; if HEAD is refused (403/405/501), a ranged GET for one byte.
    fn probe_once(&self, url: &str) -> Seen {
        let head = self.status_of(self.agent.head(url).call());
        let status = match head {
            Some(403 | 405 | 501) => {
                self.status_of(self.agent.get(url).header("Range", "bytes=0-0").call())
            }
            other => other,
        };
        match status {
            Some(s) => classify(s),
            None => Seen::Transient,
        }
    }

    /// Probes `url` with retries. Returns the answer and the number of attempts made.
    ///
    /// Unlike upstream (which answers "absent" once any attempt saw a 404), a 404 is believed only
    /// when every attempt saw it: a 404-then-429 sequence says nothing certain.
    pub(crate) fn probe(&self, url: &str) -> (Answer, u32) {
        let attempts = self.backoff.attempts.max(1);
        let mut all_absent = true;
        for n in 1..=attempts {
            match self.probe_once(url) {
                Seen::Present => return (Answer::Yes, n),
                Seen::Absent => {}
                Seen::Transient => all_absent = false,
            }
            if n < attempts {
                thread::sleep(self.backoff.delay_after(n));
            }
        }
        (
            if all_absent {
                Answer::No
            } else {
                Answer::Unknown
            },
            attempts,
        )
    }

    /// One download attempt into `out`. Calls `on_len` with the announced length before the body.
    pub(crate) fn download_once(
        &self,
        url: &str,
        out: &mut dyn Write,
        on_len: &mut dyn FnMut(Option<u64>),
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<(), Failure> {
        let mut resp = match self.agent.get(url).call() {
            Ok(r) => r,
            Err(e) => return Err(Failure::retry(None, format!("request error: {e}"))),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let why = format!("HTTP {status}");
            return Err(match classify(status) {
                Seen::Transient => Failure::retry(Some(status), why),
                _ => Failure::fatal(Some(status), format!("{why} (not retried)")),
            });
        }
        // Content-Length is only comparable with what we read when the body is not re-encoded.
        let encoded = resp.headers().contains_key("content-encoding");
        let expected = if encoded {
            None
        } else {
            resp.body().content_length()
        };
        on_len(expected);
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let of = expected.map(|l| format!(" of {l}")).unwrap_or_default();
                    return Err(Failure::retry(
                        None,
                        format!("body truncated after {got}{of} bytes: {e}"),
                    ));
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| Failure::fatal(None, format!("writing the cache file: {e}")))?;
            got += n as u64;
            on_progress(got);
        }
        if let Some(len) = expected
            && got != len
        {
            return Err(Failure::retry(
                None,
                format!("truncated body: {got} of {len} bytes"),
            ));
        }
        Ok(())
    }
}
