//! What the HTTP tests share: a fake engine (no model: it sleeps per step, paints the seed into
//! the picture, panics or fails on request), a server on a free loopback port, and a small
//! HTTP client (ureq, with multipart bodies built by hand).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use pipeline::{InitialLatents, PipelineKind, Request, StageTimings};
use server::{Config, Engine, Generated, ServeError, ServedModel, Server, StopHandle};

/// Counts of what the fake engine did.
#[derive(Debug, Default)]
pub struct Counters {
    pub steps: AtomicUsize,
    pub started: AtomicUsize,
    pub cancelled: AtomicUsize,
    pub finished: AtomicUsize,
}

/// An engine without a model.
pub struct Fake {
    pub kind: PipelineKind,
    /// Time per denoising step.
    pub step: Duration,
    pub counters: Arc<Counters>,
}

impl Fake {
    pub fn new(kind: PipelineKind, step: Duration) -> Self {
        Self {
            kind,
            step,
            counters: Arc::default(),
        }
    }
}

/// The seed a request's noise is drawn from.
pub fn seed_of(req: &Request) -> u64 {
    match req.latents {
        InitialLatents::Seed(s) | InitialLatents::Seeded(s, _) => s,
        _ => u64::MAX,
    }
}

impl Engine for Fake {
    fn kind(&self) -> PipelineKind {
        self.kind
    }

    fn generate(
        &mut self,
        req: &Request,
        cancel: &AtomicBool,
    ) -> Result<Generated, pipeline::Error> {
        match req.prompt.as_str() {
            "panic" => panic!("the fake engine was asked to panic"),
            "fail" => return Err(pipeline::Error::Request("the fake engine refuses".into())),
            _ => {}
        }
        self.counters.started.fetch_add(1, Ordering::SeqCst);
        let steps = req.num_inference_steps;
        for i in 0..steps {
            if cancel.load(Ordering::SeqCst) {
                self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
                return Err(pipeline::Error::Cancelled {
                    steps_done: i,
                    steps,
                });
            }
            std::thread::sleep(self.step);
            self.counters.steps.fetch_add(1, Ordering::SeqCst);
        }
        let (w, h) = (
            req.width.unwrap_or(64) as u32,
            req.height.unwrap_or(64) as u32,
        );
        let seed = seed_of(req) as u8;
        self.counters.finished.fetch_add(1, Ordering::SeqCst);
        Ok(Generated {
            image: RgbImage::from_pixel(w, h, Rgb([seed, 100, 200])),
            layers: Vec::new(),
            caption: None,
            timings: StageTimings {
                denoise: self.step * steps as u32,
                ..StageTimings::default()
            },
            warnings: Vec::new(),
        })
    }
}

/// A server on 127.0.0.1 with a free port, serving in a thread.
pub struct TestServer {
    pub base: String,
    pub counters: Arc<Counters>,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Start with `fake`, `config` adjusted by `tune`; waits until the model is "loaded".
    pub fn start(fake: Fake, tune: impl FnOnce(&mut Config)) -> Self {
        let (go, wait) = mpsc::channel::<()>();
        let s = Self::start_gated(fake, tune, wait);
        let _ = go.send(());
        s.wait_ready();
        s
    }

    /// As [`TestServer::start`], but loading ends only when `gate` receives (or is dropped).
    pub fn start_gated(
        fake: Fake,
        tune: impl FnOnce(&mut Config),
        gate: mpsc::Receiver<()>,
    ) -> Self {
        let mut config = Config::new(ServedModel::new("fake/Qwen-Image", Some("fake")));
        config.addr = "127.0.0.1:0".parse().unwrap();
        tune(&mut config);
        let server = Server::bind(config).unwrap();
        let base = format!("http://{}", server.local_addr());
        let stop = server.stop_handle();
        let counters = fake.counters.clone();
        let thread = std::thread::spawn(move || {
            server.run(Box::new(move || {
                let _ = gate.recv();
                Ok(Box::new(fake) as Box<dyn Engine>)
            }))
        });
        Self {
            base,
            counters,
            stop,
            thread: Some(thread),
        }
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&self.url("/health")).status != 200 {
            assert!(Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stop as SIGTERM would; the result of `Server::run`.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error's `param`, after checking the body is OpenAI-shaped.
    pub fn param(&self) -> String {
        let j = self.json();
        assert!(j["error"]["message"].is_string(), "{j}");
        assert!(j["error"]["type"].is_string(), "{j}");
        j["error"]["param"].as_str().unwrap_or("").to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("the request failed at the transport");
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Answer {
        status: r.status().as_u16(),
        headers,
        body: r.body_mut().read_to_vec().unwrap(),
    }
}

pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call())
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.call())
}

/// POST `body` with `content_type` and extra headers.
pub fn post(url: &str, content_type: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().post(url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send(body))
}

pub fn post_json(url: &str, body: &serde_json::Value) -> Answer {
    post(url, "application/json", body.to_string().as_bytes(), &[])
}

/// One part of a multipart body: a text field or a file.
pub enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

/// A `multipart/form-data` body and its content type.
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "----qwen-serve-test-boundary";
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A small PNG.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    RgbImage::from_pixel(w, h, Rgb([10, 20, 30]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The `data[k].b64_json` images of an answer, decoded.
pub fn images(a: &Answer) -> Vec<image::DynamicImage> {
    use base64::Engine as _;
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(d["b64_json"].as_str().unwrap())
                .unwrap();
            image::load_from_memory(&b).unwrap()
        })
        .collect()
}
