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
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, (Vec<Reply>, usize)>,
    requests: Vec<(String, String)>,
    latency: Duration,
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

    /// Forgets the request log.
    pub fn reset_counts(&self) {
        self.lock().requests.clear();
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
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if h.to_ascii_lowercase().starts_with("range:") {
            ranged = true;
        }
    }
    let (reply, latency) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push((method.clone(), path.clone()));
        let latency = st.latency;
        let reply = match st.scripts.get_mut(&path) {
            Some((replies, next)) => {
                let r = replies[(*next).min(replies.len() - 1)].clone();
                *next += 1;
                r
            }
            None => Reply::Status(404),
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
        Reply::Hang(d) => {
            thread::sleep(d);
            respond(&mut out, 200, &[], head, &[])
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
