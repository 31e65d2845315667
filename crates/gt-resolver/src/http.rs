//! HTTP: the tri-state existence probe and retried downloads.

use std::io::{Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::limits::MAX_BYTES_ENV;
use crate::sync::Semaphore;

/// The answer of an existence probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// A 200 or 206 was seen.
    Yes,
    /// No 200/206, and at least one clean "absent" status (404 and other 4xx that are not
    /// throttling) on some attempt, as upstream decides.
    No,
    /// Only transient failures (429, 5xx, 403, 405, timeouts, connection errors). Callers treat it
    /// as present and say so: upstream learned that a CDN hiccup must not turn into a red "GT not
    /// found" (sglang PR #29545).
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

/// What one existence check concluded, and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Present, absent or unknown.
    pub(crate) answer: Answer,
    /// HTTP attempts made (0: answered without a request).
    pub(crate) attempts: u32,
    /// Why, in a few words: the deciding status (`HTTP 404`), the transient causes seen
    /// (`connection refused`, `HTTP 429, HTTP 503`), or where the answer came from (`cached`).
    pub(crate) reason: String,
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

/// The blocking HTTP client with the crate's timeouts and retry schedule. Clones share the
/// connection pool and the request permits: every part of a resolver holds its own clone, and
/// together they never have more than `max_in_flight` requests in flight.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    backoff: Backoff,
    /// One permit per request in flight (a probe holds it across its retries).
    permits: Arc<Semaphore>,
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
    pub(crate) fn retry(status: Option<u16>, reason: String) -> Self {
        Failure {
            status,
            retryable: true,
            reason,
        }
    }

    pub(crate) fn fatal(status: Option<u16>, reason: String) -> Self {
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
    /// A client with per-phase `timeout`s, retrying with `backoff`, at most `max_in_flight`
    /// requests at once.
    pub(crate) fn new(timeout: Duration, backoff: Backoff, max_in_flight: usize) -> Self {
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
        Http {
            agent,
            backoff,
            permits: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    pub(crate) fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Probes `url` as upstream's `_remote_file_exists` does, and says why.
    ///
    /// Each attempt sends a HEAD, then a ranged GET for one byte (some servers refuse HEAD or
    /// answer it differently). A 200/206 at any time means present. Otherwise, a clean 4xx seen on
    /// any attempt means absent; the attempts go on regardless, because a freshly pinned commit
    /// can 404 on the CDN for a moment before it serves the file. Only transient answers (403,
    /// 405, 429, 5xx, timeouts, connection errors) on every attempt mean unknown. One request
    /// permit is held for the whole probe, retries included.
    pub(crate) fn probe(&self, url: &str) -> Outcome {
        let _permit = self.permits.acquire();
        let attempts = self.backoff.attempts.max(1);
        let mut absent: Option<u16> = None;
        let mut transient: Vec<String> = Vec::new();
        for n in 1..=attempts {
            for ranged in [false, true] {
                let req = if ranged {
                    self.agent.get(url).header("Range", "bytes=0-0").call()
                } else {
                    self.agent.head(url).call()
                };
                // The response (and for a ranged GET, its one-byte body) is dropped unread: the
                // connection is closed rather than drained.
                let status = match req {
                    Ok(resp) => resp.status().as_u16(),
                    Err(e) => {
                        note_once(&mut transient, describe(&e));
                        continue;
                    }
                };
                match classify(status) {
                    Seen::Present => {
                        return Outcome {
                            answer: Answer::Yes,
                            attempts: n,
                            reason: format!("HTTP {status}"),
                        };
                    }
                    Seen::Absent => {
                        absent.get_or_insert(status);
                    }
                    Seen::Transient => note_once(&mut transient, format!("HTTP {status}")),
                }
            }
            if n < attempts {
                thread::sleep(self.backoff.delay_after(n));
            }
        }
        match absent {
            Some(status) => Outcome {
                answer: Answer::No,
                attempts,
                reason: format!("HTTP {status}"),
            },
            None => Outcome {
                answer: Answer::Unknown,
                attempts,
                reason: transient.join(", "),
            },
        }
    }

    /// One GET of a small document (an API answer) with extra headers; at most `limit` bytes.
    pub(crate) fn get_bytes(
        &self,
        url: &str,
        headers: &[(&str, String)],
        limit: u64,
    ) -> Result<Vec<u8>, Failure> {
        let _permit = self.permits.acquire();
        let mut req = self.agent.get(url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let mut resp = req.call().map_err(|e| Failure::retry(None, describe(&e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = format!("HTTP {status}");
            return Err(match classify(status) {
                Seen::Transient => Failure::retry(Some(status), why),
                _ => Failure::fatal(Some(status), why),
            });
        }
        resp.body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| Failure::retry(None, format!("reading the body: {}", describe(&e))))
    }

    /// One download attempt into `out`, of at most `max_bytes`, ending by `until` whatever the
    /// server does (ureq's global timeout covers the body too). Calls `on_len` with the announced
    /// length before the body.
    pub(crate) fn download_once(
        &self,
        url: &str,
        out: &mut dyn Write,
        (max_bytes, until): (u64, Instant),
        on_len: &mut dyn FnMut(Option<u64>),
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<(), Failure> {
        let _permit = self.permits.acquire();
        let left = until.saturating_duration_since(Instant::now());
        let request = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(left))
            .build();
        let mut resp = match request.call() {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure::retry(
                    None,
                    format!("request error: {}", describe(&e)),
                ));
            }
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
        if let Some(len) = expected.filter(|l| *l > max_bytes) {
            return Err(Failure::fatal(
                None,
                format!(
                    "the server announces {len} bytes, over the {max_bytes}-byte limit \
                     ({MAX_BYTES_ENV})"
                ),
            ));
        }
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
            got += n as u64;
            if got > max_bytes {
                return Err(Failure::fatal(
                    None,
                    format!("the body goes on past the {max_bytes}-byte limit ({MAX_BYTES_ENV})"),
                ));
            }
            out.write_all(&buf[..n])
                .map_err(|e| Failure::fatal(None, format!("writing the cache file: {e}")))?;
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

/// Adds `cause` unless already listed: the reason lists each transient cause once.
fn note_once(causes: &mut Vec<String>, cause: String) {
    if !causes.contains(&cause) {
        causes.push(cause);
    }
}

/// A transport error in a few words (`connection refused`, `timed out`), for probe reasons.
fn describe(e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".into(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "connection reset".into(),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => "timed out".into(),
            ErrorKind::UnexpectedEof => "connection closed before the response".into(),
            _ => io.to_string(),
        },
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}
