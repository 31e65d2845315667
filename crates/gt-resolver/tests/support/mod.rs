//! A fault-injecting HTTP/1.1 server on 127.0.0.1 for the resolver's tests and bench.
//!
//! Each path has a script of replies; successive requests to the path (any method) take the next
//! reply and the last one repeats. Unscripted paths answer 404. Every request is counted.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use gt_resolver::{GtQuery, Platform, SourceKind};

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with an empty body.
    Status(u16),
    /// 200 with this body; a `Range: bytes=0-0` GET gets 206 and the first byte; HEAD gets headers.
    Body(Vec<u8>),
    /// HEAD is refused with 405; GET behaves as [`Reply::Body`].
    RefuseHead(Vec<u8>),
    /// 302 to another path on this server.
    Redirect(String),
    /// 200 announcing the full length, but only `sent` bytes, then the connection closes.
    Truncated { body: Vec<u8>, sent: usize },
    /// Like `Truncated`, but the connection stays open for `hold` after the partial body.
    Stall {
        body: Vec<u8>,
        sent: usize,
        hold: Duration,
    },
    /// Wait this long before answering 200 with an empty body (a client timeout).
    Hang(Duration),
    /// Close the connection without answering.
    Reset,
    /// 200 with the whole body, sent in `chunks` pieces with `delay` between them.
    Slow {
        body: Vec<u8>,
        chunks: usize,
        delay: Duration,
    },
    /// 200 `text/html` with this body (a CDN's or a captive portal's error page).
    Html(Vec<u8>),
    /// 200 with no `Content-Length`: the first `sent` bytes, then the connection closes (a body
    /// cut short that HTTP/1.1 cannot tell from a whole one).
    Unframed { body: Vec<u8>, sent: usize },
    /// 200 announcing the full length, then one byte every `every` (never a read timeout).
    Drip { body: Vec<u8>, every: Duration },
}

/// A failure the chaos mode injects in place of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429.
    Throttle,
    /// 503.
    Unavailable,
    /// The connection closes without an answer.
    Reset,
    /// The body stops at a random byte (an existing file only; else 503).
    Truncate,
    /// The whole body, slowly (an existing file only; else 503).
    Slow,
}

/// Random faults over every request: a reply for an existing file is replaced with probability
/// `p_present`, a 404 with `p_absent` (a CDN throttles whatever it is asked), by a fault drawn
/// uniformly from `faults`. A fault is never a clean 4xx: that would be a lie about existence.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// Seed of the server's generator (the run is reproducible for one request order).
    pub seed: u64,
    pub p_present: f64,
    pub p_absent: f64,
    pub faults: Vec<Fault>,
    /// Delay between the four pieces of a slow body.
    pub slow_delay: Duration,
}

struct ChaosState {
    cfg: Chaos,
    rng: u64,
    injected: usize,
}

impl ChaosState {
    /// xorshift64*: enough randomness for fault injection, no dependency.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn apply(&mut self, reply: Reply) -> Reply {
        let p = match &reply {
            Reply::Body(_) | Reply::RefuseHead(_) => self.cfg.p_present,
            Reply::Status(404) => self.cfg.p_absent,
            _ => 0.0,
        };
        if self.cfg.faults.is_empty() || self.unit() >= p {
            return reply;
        }
        self.injected += 1;
        let pick = (self.next() % self.cfg.faults.len() as u64) as usize;
        let fault = self.cfg.faults[pick];
        let body = match &reply {
            Reply::Body(b) | Reply::RefuseHead(b) if !b.is_empty() => Some(b.clone()),
            _ => None,
        };
        match (fault, body) {
            (Fault::Throttle, _) => Reply::Status(429),
            (Fault::Reset, _) => Reply::Reset,
            (Fault::Truncate, Some(body)) => {
                let sent = (self.next() % body.len() as u64) as usize;
                Reply::Truncated { body, sent }
            }
            (Fault::Slow, Some(body)) => Reply::Slow {
                body,
                chunks: 4,
                delay: self.cfg.slow_delay,
            },
            _ => Reply::Status(503),
        }
    }
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, (Vec<Reply>, usize)>,
    requests: Vec<(String, String)>,
    /// Request headers (lower-case name, value), indexed like `requests`.
    headers: Vec<Vec<(String, String)>>,
    latency: Duration,
    chaos: Option<ChaosState>,
}

/// A running server. It lives until the test process exits.
#[derive(Clone)]
pub struct TestServer {
    base: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        TestServer {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Scripts `path` (starting with `/`).
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty());
        self.lock().scripts.insert(path.to_string(), (replies, 0));
    }

    /// `path` always answers 200 with `body`.
    pub fn file(&self, path: &str, body: &[u8]) {
        self.script(path, vec![Reply::Body(body.to_vec())]);
    }

    /// Delay added before every reply.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Starts (or, with `None`, stops) injecting random faults.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.lock().chaos = chaos.map(|cfg| ChaosState {
            rng: cfg.seed | 1,
            cfg,
            injected: 0,
        });
    }

    /// Faults injected since chaos was set.
    pub fn faults_injected(&self) -> usize {
        self.lock().chaos.as_ref().map_or(0, |c| c.injected)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.lock().requests.len()
    }

    /// Requests received for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|(_, p)| p == path)
            .count()
    }

    /// Methods of the requests received for `path`, in order.
    pub fn methods(&self, path: &str) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The value of header `name` in the last request for `path`.
    pub fn header(&self, path: &str, name: &str) -> Option<String> {
        let st = self.lock();
        let i = st.requests.iter().rposition(|(_, p)| p == path)?;
        st.headers[i]
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// Forgets the request log.
    pub fn reset_counts(&self) {
        let mut st = self.lock();
        st.requests.clear();
        st.headers.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut ranged = false;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            ranged |= k == "range";
            headers.push((k, v.trim().to_string()));
        }
    }
    let (reply, latency) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push((method.clone(), path.clone()));
        st.headers.push(headers);
        let latency = st.latency;
        let reply = match st.scripts.get_mut(&path) {
            Some((replies, next)) => {
                let r = replies[(*next).min(replies.len() - 1)].clone();
                *next += 1;
                r
            }
            None => Reply::Status(404),
        };
        let reply = match st.chaos.as_mut() {
            Some(c) => c.apply(reply),
            None => reply,
        };
        (reply, latency)
    };
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    let head = method == "HEAD";
    let mut out = conn;
    match reply {
        Reply::Status(code) => respond(&mut out, code, &[], head, &[]),
        Reply::RefuseHead(_) if head => respond(&mut out, 405, &[], true, &[]),
        Reply::Body(body) | Reply::RefuseHead(body) => {
            if ranged && !head && !body.is_empty() {
                let cr = format!("Content-Range: bytes 0-0/{}", body.len());
                respond(&mut out, 206, &body[..1], false, &[&cr])
            } else {
                respond(&mut out, 200, &body, head, &[])
            }
        }
        Reply::Redirect(to) => {
            let loc = format!("Location: {to}");
            respond(&mut out, 302, &[], head, &[&loc])
        }
        Reply::Truncated { body, sent } => {
            write_head(&mut out, 200, body.len(), &[])?;
            if !head {
                out.write_all(&body[..sent])?;
            }
            out.flush()
        }
        Reply::Stall { body, sent, hold } => {
            write_head(&mut out, 200, body.len(), &[])?;
            if !head {
                out.write_all(&body[..sent])?;
                out.flush()?;
                thread::sleep(hold);
            }
            Ok(())
        }
        Reply::Reset => Ok(()),
        Reply::Slow {
            body,
            chunks,
            delay,
        } => {
            if ranged && !head && !body.is_empty() {
                let cr = format!("Content-Range: bytes 0-0/{}", body.len());
                return respond(&mut out, 206, &body[..1], false, &[&cr]);
            }
            write_head(&mut out, 200, body.len(), &[])?;
            if !head {
                let step = body.len().div_ceil(chunks.max(1)).max(1);
                for piece in body.chunks(step) {
                    out.write_all(piece)?;
                    out.flush()?;
                    thread::sleep(delay);
                }
            }
            out.flush()
        }
        Reply::Hang(d) => {
            thread::sleep(d);
            respond(&mut out, 200, &[], head, &[])
        }
        Reply::Html(body) => respond(&mut out, 200, &body, head, &["Content-Type: text/html"]),
        Reply::Unframed { body, sent } => {
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            if !head {
                out.write_all(&body[..sent.min(body.len())])?;
            }
            out.flush()
        }
        Reply::Drip { body, every } => {
            write_head(&mut out, 200, body.len(), &[])?;
            if !head {
                for b in &body {
                    out.write_all(&[*b])?;
                    out.flush()?;
                    thread::sleep(every);
                }
            }
            Ok(())
        }
    }
}

fn write_head(out: &mut TcpStream, code: u16, len: usize, extra: &[&str]) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {code} X\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    out.write_all(h.as_bytes())
}

fn respond(
    out: &mut TcpStream,
    code: u16,
    body: &[u8],
    head: bool,
    extra: &[&str],
) -> std::io::Result<()> {
    write_head(out, code, body.len(), extra)?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

/// A git/trees API answer listing `blobs` (paths inside the repository) and their folders.
pub fn tree_json(blobs: &[String], truncated: bool) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for b in blobs {
        let mut at = 0;
        while let Some(i) = b[at..].find('/') {
            dirs.insert(b[..at + i].to_string());
            at += i + 1;
        }
        entries.push(serde_json::json!({"path": b, "mode": "100644", "type": "blob", "size": 1}));
    }
    for d in dirs {
        entries.push(serde_json::json!({"path": d, "mode": "040000", "type": "tree"}));
    }
    serde_json::json!({"sha": "0", "tree": entries, "truncated": truncated})
        .to_string()
        .into_bytes()
}

/// The pinned commit of the emulated GT repository `org/ci-data`.
pub const REV: &str = "4ce5eeb9606e378478b2d0964d83e960af4e88cf";
/// The GT tree inside it.
pub const TREE: &str = "diffusion-ci/consistency_gt";

/// The server path of `rel` under the emulated GT root (`GtRoot::github(url, "org/ci-data", REV)`).
pub fn raw(rel: &str) -> String {
    format!("/org/ci-data/{REV}/{TREE}/{rel}")
}

/// The server path of the emulated git/trees API answer for [`REV`].
pub fn api_path() -> String {
    format!("/repos/org/ci-data/git/trees/{REV}?recursive=1")
}

/// A tree shaped like upstream's: 80 cases over every source and layout, and the queries with the
/// source each must resolve to.
pub struct Suite {
    /// The queries.
    pub queries: Vec<GtQuery>,
    /// The source each query must resolve to.
    pub expected: Vec<Option<SourceKind>>,
    /// Blob paths inside the repository.
    pub blobs: Vec<String>,
    /// The files under the GT root (relative names) and their bytes, case_map.json included.
    pub files: Vec<(String, Vec<u8>)>,
}

/// [`suite_layout`], served by `server` (each file's bytes are its own name).
pub fn suite(server: &TestServer) -> Suite {
    let s = suite_layout();
    for (rel, body) in &s.files {
        server.file(&raw(rel), body);
    }
    s
}

/// The suite's queries, expected sources and files, without serving them.
pub fn suite_layout() -> Suite {
    let mut s = Suite {
        queries: Vec::new(),
        expected: Vec::new(),
        blobs: Vec::new(),
        files: Vec::new(),
    };
    let put = |s: &mut Suite, rel: String| {
        s.blobs.push(format!("{TREE}/{rel}"));
        s.files.push((rel.clone(), rel.into_bytes()));
    };
    let mut declared = serde_json::Map::new();
    for i in 0..80 {
        let case = format!("case_{i:02}");
        let img = |ext: &str| format!("{case}_1gpu.{ext}");
        let (query, source) = match i {
            // Declared official GT; a platform copy of ours for some (it wins, as upstream).
            0..25 => {
                put(&mut s, format!("official_generated/{}", img("png")));
                declared.insert(case.clone(), serde_json::json!({"outputs": [img("png")]}));
                if i % 5 == 0 {
                    put(&mut s, format!("sglang_generated/h100/{}", img("png")));
                    (
                        GtQuery::image(&case, 1, Some("png"), Platform::H100),
                        SourceKind::Sglang,
                    )
                } else {
                    (
                        GtQuery::image(&case, 1, Some("png"), Platform::H100),
                        SourceKind::Official,
                    )
                }
            }
            // Ours in the platform folder, jpg; an undeclared official copy that must not count.
            25..45 => {
                put(&mut s, format!("sglang_generated/h100/{}", img("jpg")));
                put(&mut s, format!("official_generated/{}", img("jpg")));
                (
                    GtQuery::image(&case, 1, Some("jpg"), Platform::H100),
                    SourceKind::Sglang,
                )
            }
            // Ours, bare, in the second extension tried.
            45..65 => {
                put(&mut s, format!("sglang_generated/{}", img("jpg")));
                (
                    GtQuery::image(&case, 1, None, Platform::B200),
                    SourceKind::Sglang,
                )
            }
            // Videos: three frames of ours.
            65..72 => {
                for f in ["frame_0", "frame_mid", "frame_last"] {
                    put(&mut s, format!("sglang_generated/{case}_1gpu_{f}.png"));
                }
                (GtQuery::video(&case, 1, Platform::H100), SourceKind::Sglang)
            }
            // Only the legacy tree has it.
            72..76 => {
                put(&mut s, img("webp"));
                (
                    GtQuery::image(&case, 1, Some("webp"), Platform::H100),
                    SourceKind::Legacy,
                )
            }
            // Nowhere: a true "missing".
            _ => {
                s.queries
                    .push(GtQuery::image(&case, 1, Some("png"), Platform::H100));
                s.expected.push(None);
                continue;
            }
        };
        s.queries.push(query);
        s.expected.push(Some(source));
    }
    let map = serde_json::json!({ "cases": declared }).to_string();
    put(&mut s, "official_generated/case_map.json".into());
    if let Some(last) = s.files.last_mut() {
        last.1 = map.into_bytes();
    }
    s.blobs.push("README.md".into());
    s
}
