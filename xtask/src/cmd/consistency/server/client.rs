//! HTTP to one server that speaks SGLang's image API: waiting for `/health`, reading
//! `/v1/models`, sending one generation (503 retried with back-off) and reading its answer. Every
//! failure is classed as the server being gone ([`CallError::Unreachable`]: the case may go to
//! another server) or as the engine misbehaving ([`CallError::Failed`]: the case failed).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// The largest answer read (a b64 JSON of several 2048² PNG layers is well under this).
const MAX_ANSWER_BYTES: u64 = 1 << 30;
/// `/health` and `/v1/models` answer at once or not at all.
const SHORT_TIMEOUT: Duration = Duration::from_secs(10);
/// 503 ("busy", "loading") is asked again this many times, waiting 1, 2, 4, … s (or the
/// server's `Retry-After`, at most [`MAX_RETRY_AFTER`]) in between.
const RETRIES_ON_503: u32 = 5;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a call gave no image.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// No answer at all: the connection was refused or dropped before any answer, or the host is
    /// unknown. The server is taken as gone.
    Unreachable(String),
    /// An answer that is no image, an error status, or no answer in time: the engine misbehaved.
    Failed(String),
}

/// A server's answer to one generation.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The images as sent (`data[k]`, base64-decoded): the first is judged.
    pub images: Vec<Vec<u8>>,
    /// The answer without its image data (`id`, `created`, `timings`, `revised_prompt`, …).
    pub body: Value,
    /// The answer's `id`, else its `x-request-id` header.
    pub request_id: Option<String>,
    /// `x-ignored-fields`: what the server did not use.
    pub ignored: Option<String>,
    /// From sending the request to the last byte of the answer (503 waits included).
    pub wall: Duration,
    /// How many 503s were waited out.
    pub retries: u32,
}

/// A request body ready to send.
pub(crate) struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One server's client.
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    /// The base URL (`http://host:port`).
    pub base: String,
    api_key: Option<String>,
}

impl Client {
    pub fn new(base: &str, api_key: Option<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Error statuses are answers to read (their JSON says what went wrong).
            .http_status_as_error(false)
            .max_redirects(3)
            .build()
            .into();
        Self {
            agent,
            base: base.to_string(),
            api_key,
        }
    }

    /// Wait until `/health` answers 200 (a server without `/health`, 404, is taken as ready),
    /// at most `wait`. A refused connection or a 503 means "still starting"; an unknown host
    /// does not get better by waiting.
    pub fn wait_ready(&self, wait: Duration) -> Result<(), String> {
        let start = Instant::now();
        let url = format!("{}/health", self.base);
        let mut last_said = start;
        loop {
            let last = match self.get(&url, SHORT_TIMEOUT) {
                Ok((200 | 404, _)) => return Ok(()),
                Ok((status, body)) => format!("HTTP {status} {}", snippet(&body)),
                Err(CallError::Unreachable(why)) if why.contains("host not found") => {
                    return Err(format!("{url}: {why}"));
                }
                Err(CallError::Unreachable(why) | CallError::Failed(why)) => why,
            };
            if start.elapsed() >= wait {
                return Err(format!(
                    "{url} not ready within {:.0} s (--server-wait): {last}",
                    wait.as_secs_f64()
                ));
            }
            if last_said.elapsed() >= Duration::from_secs(30) {
                eprintln!(
                    "waiting for {url} ({:.0} s so far): {last}",
                    start.elapsed().as_secs_f64()
                );
                last_said = Instant::now();
            }
            std::thread::sleep(
                Duration::from_millis(500).min(wait.saturating_sub(start.elapsed())),
            );
        }
    }

    /// The entries of `/v1/models` (`data`), each an object with at least an `id`.
    pub fn models(&self) -> Result<Vec<Value>, String> {
        let url = format!("{}/v1/models", self.base);
        let (status, body) = self.get(&url, SHORT_TIMEOUT).map_err(|e| match e {
            CallError::Unreachable(m) | CallError::Failed(m) => format!("{url}: {m}"),
        })?;
        if status != 200 {
            return Err(format!("{url}: HTTP {status} {}", snippet(&body)));
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not a model list ({e}): {}", snippet(&body)))?;
        let data = doc["data"]
            .as_array()
            .ok_or_else(|| format!("{url}: no `data` list in {}", snippet(&body)))?;
        Ok(data
            .iter()
            .filter(|m| m["id"].is_string())
            .cloned()
            .collect())
    }

    /// POST `body` to `path` and read the image answer; a 503 is asked again with back-off.
    pub fn generate(
        &self,
        path: &str,
        body: &Body,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let start = Instant::now();
        let mut retries = 0;
        loop {
            let (status, headers, bytes) = self.post(&url, body, timeout)?;
            if status == 503 && retries < RETRIES_ON_503 {
                let wait = headers
                    .retry_after
                    .map_or(Duration::from_secs(1 << retries), |s| {
                        Duration::from_secs(s).min(MAX_RETRY_AFTER)
                    });
                retries += 1;
                std::thread::sleep(wait);
                continue;
            }
            if status != 200 {
                return Err(CallError::Failed(format!(
                    "{url} answered HTTP {status}{}: {}",
                    if retries > 0 {
                        format!(" after {retries} retries")
                    } else {
                        String::new()
                    },
                    error_message(&bytes)
                )));
            }
            let mut answer = self.read_answer(&url, &bytes, timeout)?;
            answer.request_id = answer.request_id.or(headers.request_id);
            answer.ignored = headers.ignored;
            answer.wall = start.elapsed();
            answer.retries = retries;
            return Ok(answer);
        }
    }

    /// The images of a 200 answer: `data[k].b64_json`, or `data[k].url` fetched.
    fn read_answer(&self, url: &str, bytes: &[u8], timeout: Duration) -> Result<Answer, CallError> {
        let mut body: Value = serde_json::from_slice(bytes).map_err(|e| {
            CallError::Failed(format!(
                "{url} answered 200 with a body that is not JSON ({e}): {}",
                snippet(bytes)
            ))
        })?;
        let data = body["data"]
            .as_array_mut()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                CallError::Failed(format!("{url} answered no image (no `data` entry)"))
            })?;
        let mut images = Vec::with_capacity(data.len());
        for (k, item) in data.iter_mut().enumerate() {
            let image = match (item["b64_json"].as_str(), item["url"].as_str()) {
                (Some(b64), _) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        CallError::Failed(format!("{url}: data[{k}].b64_json is not base64: {e}"))
                    })?,
                (None, Some(link)) => self.fetch_content(link, timeout)?,
                (None, None) => {
                    return Err(CallError::Failed(format!(
                        "{url}: data[{k}] has neither b64_json nor url"
                    )));
                }
            };
            if let Some(o) = item.as_object_mut() {
                o.remove("b64_json");
            }
            images.push(image);
        }
        Ok(Answer {
            images,
            request_id: body["id"].as_str().map(str::to_string),
            body,
            ignored: None,
            wall: Duration::ZERO,
            retries: 0,
        })
    }

    /// An answer given as a link (`response_format=url` ignored by the server).
    fn fetch_content(&self, link: &str, timeout: Duration) -> Result<Vec<u8>, CallError> {
        let url = if link.starts_with('/') {
            format!("{}{link}", self.base)
        } else {
            link.to_string()
        };
        match self.get(&url, timeout)? {
            (200, bytes) => Ok(bytes),
            (status, bytes) => Err(CallError::Failed(format!(
                "{url} answered HTTP {status}: {}",
                error_message(&bytes)
            ))),
        }
    }

    fn get(&self, url: &str, timeout: Duration) -> Result<(u16, Vec<u8>), CallError> {
        let mut req = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(timeout))
            .build();
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let resp = req.call().map_err(|e| classify(&e, timeout))?;
        let (status, _, body) = read(resp, url, timeout)?;
        Ok((status, body))
    }

    fn post(
        &self,
        url: &str,
        body: &Body,
        timeout: Duration,
    ) -> Result<(u16, Headers, Vec<u8>), CallError> {
        let mut req = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", &body.content_type);
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let resp = req
            .send(&body.bytes[..])
            .map_err(|e| classify(&e, timeout))?;
        read(resp, url, timeout)
    }
}

/// The answer headers the runner reads.
struct Headers {
    request_id: Option<String>,
    ignored: Option<String>,
    retry_after: Option<u64>,
}

/// Status, headers and the whole body. A body cut short after the answer began is the engine's
/// failure (the server answered, wrongly), not a server that is gone.
fn read(
    mut resp: ureq::http::Response<ureq::Body>,
    url: &str,
    timeout: Duration,
) -> Result<(u16, Headers, Vec<u8>), CallError> {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let headers = Headers {
        request_id: header("x-request-id"),
        ignored: header("x-ignored-fields"),
        retry_after: header("retry-after").and_then(|v| v.trim().parse().ok()),
    };
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| match classify(&e, timeout) {
            CallError::Failed(m) | CallError::Unreachable(m) => CallError::Failed(format!(
                "{url} answered HTTP {status} but its body could not be read: {m}"
            )),
        })?;
    Ok((status, headers, body))
}

/// A transport error: no answer in time is a failure; no answer at all means the server is gone.
fn classify(e: &ureq::Error, timeout: Duration) -> CallError {
    let late = || {
        CallError::Failed(format!(
            "no answer within {:.0} s (--request-timeout)",
            timeout.as_secs_f64()
        ))
    };
    match e {
        ureq::Error::Timeout(_) => late(),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => late(),
            ErrorKind::ConnectionRefused => CallError::Unreachable("connection refused".into()),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => CallError::Unreachable(format!(
                "the connection was closed before any answer ({io})"
            )),
            _ => CallError::Unreachable(io.to_string()),
        },
        ureq::Error::HostNotFound => CallError::Unreachable("host not found".into()),
        ureq::Error::ConnectionFailed => CallError::Unreachable("connection failed".into()),
        other => CallError::Failed(other.to_string()),
    }
}

/// An error answer's message: SGLang's / OpenAI's `{"error": {"message"}}` (or `detail`), else
/// the start of the body.
fn error_message(body: &[u8]) -> String {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let msg = doc.as_ref().and_then(|d| {
        d["error"]["message"]
            .as_str()
            .or_else(|| d["detail"].as_str())
            .or_else(|| d["message"].as_str())
            .map(str::to_string)
    });
    msg.unwrap_or_else(|| snippet(body))
}

/// The start of a body, as text, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > 200 {
        format!("{one_line}…")
    } else if one_line.is_empty() {
        "(empty body)".into()
    } else {
        one_line
    }
}
