//! SGLang's OpenAI-compatible image API in front of one Qwen-Image pipeline: what
//! `cargo xtask serve` runs, and what a consistency run can judge instead of an in-process
//! pipeline.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use server::{Config, PipelineEngine, ServedModel, Server};
//!
//! let model = "testdata/tiny-qwen-image";
//! let server = Server::bind(Config::new(ServedModel::new(model, None)))?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(Box::new(move || {
//!     let engine = PipelineEngine::<Flex>::load(model, None, &Default::default())
//!         .map_err(|e| e.to_string())?;
//!     Ok(Box::new(engine) as Box<dyn server::Engine>)
//! }))?; // until SIGINT / SIGTERM
//! # Ok::<(), server::ServeError>(())
//! ```
//!
//! The routes (`routes`): `POST /v1/images/generations` (JSON) and `/v1/images/edits`
//! (multipart), `GET /v1/images/{id}/content`, `/v1/models[/{id}]`, `/health`, `/metrics`.
//! One job per module: `fields` (a body's raw fields), `params` (SGLang's fields onto pipeline
//! requests, with the model's defaults), `inputs` (bodies and input images), `fetch` (input URLs
//! under SSRF rules), `worker` (the bounded queue and the one worker thread that owns the
//! [`Engine`]), `answer` + `encode` (the `ImageResponse` and its image bytes), `store` (URL
//! answers), `stats` (Prometheus), `model` (the served id and the SGLang defaults), `state`
//! (what handlers share), `routes` (router, layers, shutdown), `error`.

mod answer;
mod engine;
mod error;
mod fetch;
mod fields;
mod generate;
mod inputs;
mod model;
mod params;
mod routes;
mod state;
mod stats;
mod store;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use torch_rng::CudaPlatform;

pub use engine::{Engine, Generated, PipelineEngine};
pub use error::{ApiError, ServeError};
pub use fetch::is_public;
pub use fields::{Fields, Raw, Seeds};
/// The answer formats and their encoder (image-io's, shared with `cargo xtask generate`).
pub use image_io::{DEFAULT_JPEG_QUALITY, OutputFormat, encode_rgb, encode_rgba, format_of_path};
pub use model::{Loaded, ServedModel};
pub use params::{Context, MAX_N, Plan, ResponseFormat, parse_size};
pub use worker::{Loader, Status};

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Size limits on what clients send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A JSON body (`/v1/images/generations`).
    pub json_body: usize,
    /// A multipart body (`/v1/images/edits`, images included).
    pub form_body: usize,
    /// One input image fetched by URL.
    pub url_bytes: u64,
    /// Pixels of one input image.
    pub input_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            json_body: 1 << 20,
            form_body: 64 << 20,
            url_bytes: 32 << 20,
            input_pixels: 8192 * 8192,
        }
    }
}

/// The API key clients must send; never printed (its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key; `None` for an empty one.
    pub fn new(key: &str) -> Option<Self> {
        let k = key.trim();
        (!k.is_empty()).then(|| Self(k.to_string()))
    }

    /// Constant-time comparison with what a client sent.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How the server runs (`cargo xtask serve`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (default 127.0.0.1:30000).
    pub addr: SocketAddr,
    pub model: ServedModel,
    /// Jobs that may wait behind the running one; more get 503.
    pub max_queue: usize,
    /// Longest a request may take, queue included (504 and cancelled after); `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// How long `response_format="url"` images stay.
    pub url_ttl: Duration,
    /// Required on `/v1/*` when set.
    pub api_key: Option<ApiKey>,
    /// Let input URLs reach loopback and private addresses (tests, trusted networks).
    pub allow_private_urls: bool,
    /// The GPU layout `generator_device="cuda"` noise is drawn in.
    pub cuda_layout: CudaPlatform,
    pub limits: Limits,
}

impl Config {
    /// The defaults: 127.0.0.1:30000, 8 waiting jobs, no timeout, URLs kept 1 h, no key, no
    /// private URLs, the H100 noise layout.
    pub fn new(model: ServedModel) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 30000)),
            model,
            max_queue: 8,
            request_timeout: None,
            url_ttl: Duration::from_secs(3600),
            api_key: None,
            allow_private_urls: false,
            cuda_layout: CudaPlatform::H100,
            limits: Limits::default(),
        }
    }
}

/// Stops a running [`Server`] as SIGTERM would (for tests and embedders).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<Notify>);

impl StopHandle {
    /// Stop accepting, cancel the running job, return from [`Server::run`].
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// A bound server, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    config: Config,
    stop: StopHandle,
}

impl Server {
    /// Bind `config.addr` (port 0 picks a free one: see [`Server::local_addr`]).
    pub fn bind(config: Config) -> Result<Self, ServeError> {
        let bind_err = |source| ServeError::Bind {
            addr: config.addr,
            source,
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        Ok(Self {
            listener,
            config,
            stop: StopHandle::default(),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.addr)
    }

    /// A handle that stops [`Server::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Serve until SIGINT, SIGTERM or the [`StopHandle`]: `/health` says 503 while `loader` runs
    /// on the worker thread, 200 once it returned an engine. Returns an error when the model
    /// could not be loaded.
    pub fn run(self, loader: Loader) -> Result<(), ServeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qwen-serve-http")
            .enable_all()
            .build()?;
        rt.block_on(routes::serve(
            self.listener,
            self.config,
            loader,
            self.stop.0,
        ))
    }
}
