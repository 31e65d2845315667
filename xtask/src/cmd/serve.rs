//! `cargo xtask serve`: SGLang's OpenAI-compatible image API (the `server` crate) on one
//! pipeline, loaded on the backend `--device`/`--dtype` pick. Binds first (so `/health` answers
//! 503 while the model loads), then serves until SIGINT or SIGTERM, exit 0.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use server::{ApiKey, Config, Engine, PipelineEngine, ServedModel, Server};
use torch_rng::CudaPlatform;

use crate::platform::{RunPlatform, parse_cuda_layout};
use crate::{backend, with_backend};

/// Where the API key may come from besides `--api-key-file` (never the command line, which
/// other users of the machine can read).
const KEY_ENV: &str = "QWEN_SERVE_API_KEY";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A diffusers-layout pipeline folder or an HF repo id (read through the shared HF cache).
    #[arg(long)]
    pub model: String,
    /// HF revision (branch, tag or commit) when --model is a repo id.
    #[arg(long)]
    pub revision: Option<String>,
    /// The id clients address the model by (default: the repo id, or the folder's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// The GPU whose launch layout `generator_device="cuda"` noise reproduces (h100, h200, b200,
    /// 5090 or an upstream alias). Default: the consistency platform, else the CUDA device's,
    /// else h100.
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM", value_parser = parse_cuda_layout)]
    pub platform: Option<CudaPlatform>,
    /// Address to listen on. The default keeps the server to this machine; give 0.0.0.0 (and a
    /// key) to serve others.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, default_value_t = 30000)]
    pub port: u16,
    /// Requests that may wait behind the running one; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 8)]
    pub max_queue: usize,
    /// Seconds a request may take, queue included; then 504 and its job is cancelled (default:
    /// no limit).
    #[arg(long, value_name = "S")]
    pub request_timeout: Option<f64>,
    /// Seconds a `response_format=url` image stays at /v1/images/{id}/content.
    #[arg(long, value_name = "S", default_value_t = 3600)]
    pub url_ttl: u64,
    /// A file holding the API key clients must send as `Authorization: Bearer KEY` (or set
    /// QWEN_SERVE_API_KEY). /health and /metrics need none.
    #[arg(long, value_name = "F")]
    pub api_key_file: Option<PathBuf>,
    /// Let input image URLs reach loopback and private addresses (tests, trusted networks).
    #[arg(long)]
    pub allow_private_urls: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (device, precision) = backend::parse(&a.device, &a.dtype)?;
    let cuda_layout = match a.platform {
        Some(p) => p,
        None => RunPlatform::decide(None, &a.device)?.cuda_layout(),
    };
    let mut config = Config::new(ServedModel::new(&a.model, a.served_model_name.as_deref()));
    config.addr = SocketAddr::new(a.host, a.port);
    config.max_queue = a.max_queue;
    config.request_timeout = match a.request_timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--request-timeout {s} must be a positive number of seconds"),
    };
    config.url_ttl = Duration::from_secs(a.url_ttl);
    config.api_key = api_key(a.api_key_file.as_deref())?;
    config.allow_private_urls = a.allow_private_urls;
    config.cuda_layout = cuda_layout;
    let id = config.model.id.clone();
    let keyed = config.api_key.is_some();
    let server = Server::bind(config)?;
    eprintln!(
        "serve: `{id}` on http://{} ({}; loading the model, /health answers 503 until ready)",
        server.local_addr(),
        if keyed {
            "API key required"
        } else {
            "no API key"
        },
    );
    with_backend!(device, precision, |B, dev| {
        let (model, revision) = (a.model.clone(), a.revision.clone());
        server.run(Box::new(move || {
            let engine = PipelineEngine::<B>::load(&model, revision.as_deref(), &dev)
                .map_err(|e| format!("{model}: {e}"))?;
            eprintln!("serve: loaded {model} ({}); ready", engine.kind());
            Ok(Box::new(engine) as Box<dyn Engine>)
        }))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The key from `--api-key-file`, else the environment; never printed.
fn api_key(file: Option<&Path>) -> anyhow::Result<Option<ApiKey>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading --api-key-file {}", f.display()))?;
        return match ApiKey::new(&text) {
            Some(k) => Ok(Some(k)),
            None => bail!("--api-key-file {} is empty", f.display()),
        };
    }
    Ok(std::env::var(KEY_ENV).ok().and_then(|k| ApiKey::new(&k)))
}
