//! Getting the servers ready for a run: each `/health` waited for and `/v1/models` read (all
//! servers at once), every case routed and built into its request (URL inputs fetched first), a
//! warm-up per server, and the worker pool started.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use cases::{Case, ImageSource};
use serde_json::json;

use super::client::{Answer, CallError, Client};
use super::dispatch::Pool;
use super::request::{self, ApiRequest, Fields, Upload};
use super::routing::{self, Routes, Server};
use crate::cmd::consistency::perf::Baseline;
use crate::cmd::consistency::settings::{ServerSettings, Settings};
use crate::prefetch::InputFetcher;

/// The warm-up's steps: two, since one step with the scheduler's `shift_terminal` has no
/// finite schedule (upstream divides 0 by 0).
const WARM_UP_STEPS: usize = 2;

/// One case as the target prepared it.
pub(crate) struct Prepared {
    /// `(server, served model id)` of the servers that may take it.
    pub routes: Routes,
    /// The request (its `model` set per server when sent), or why it cannot be sent.
    pub request: Result<ApiRequest, String>,
    /// The input files, for the report.
    pub inputs: Vec<PathBuf>,
    /// A Layered case: every image of the answer is a layer, kept as `layer_<k>.<ext>`.
    pub layered: bool,
}

/// The servers found, the cases prepared and being sent, and the cases that are not sent.
pub(crate) struct Connected {
    pub servers: Vec<Server>,
    /// Case id → its place in `prepared`.
    pub index: HashMap<String, usize>,
    pub prepared: Arc<Vec<Prepared>>,
    pub pool: Pool<Answer>,
    pub perf: Option<Baseline>,
    /// Cases not sent, with why.
    pub skipped: Vec<(Case, String)>,
}

/// Connect to the servers, route and prepare `cases` and start sending them. Also gives back
/// the cases that are not sent, each with why (skipped).
pub(crate) fn connect(s: &Settings, cases: &[Case]) -> anyhow::Result<Connected> {
    let sv = s
        .server
        .as_ref()
        .ok_or_else(|| anyhow!("no --server given"))?;
    let perf = match &sv.perf_baseline {
        Some(p) => Some(Baseline::load(p, sv.perf_tolerance)?),
        None => None,
    };
    let clients: Vec<Client> = sv
        .urls
        .iter()
        .map(|u| Client::new(u, sv.api_key.clone()))
        .collect();
    let mut servers = discover(&clients, sv);
    if servers.iter().all(|x| x.down.is_some()) {
        bail!("no server can be used: {}", routing::listing(&servers));
    }
    let (sendable, skipped) = route_all(cases, &servers, sv)?;
    let mut fetcher = s.image_fetcher();
    let which = if sv.sglang_request {
        Fields::Sglang
    } else {
        Fields::Resolved
    };
    let mut index = HashMap::new();
    let mut prepared = Vec::new();
    for (case, routes) in sendable {
        index.insert(case.id.clone(), prepared.len());
        prepared.push(prepare(case, routes, which, &mut fetcher));
    }
    warm_up(&clients, &mut servers, &prepared, sv);
    let prepared = Arc::new(prepared);
    let eligible = prepared
        .iter()
        .map(|p| p.routes.iter().map(|r| r.0).collect())
        .collect();
    let down = servers.iter().map(|x| x.down.clone()).collect();
    let call = {
        let (prepared, timeout) = (prepared.clone(), sv.request_timeout);
        move |server: usize, case: usize| {
            let p = &prepared[case];
            let req = p
                .request
                .as_ref()
                .map_err(|e| CallError::Failed(e.clone()))?;
            let body = with_model(req, p, server).body();
            clients[server].generate(req.path, &body, timeout)
        }
    };
    let pool = Pool::start(
        eligible,
        sv.urls.clone(),
        down,
        sv.per_server,
        Arc::new(call),
    );
    Ok(Connected {
        servers,
        index,
        prepared,
        pool,
        perf,
        skipped,
    })
}

/// Wait for every server's `/health` (all at once) and read its models.
fn discover(clients: &[Client], sv: &ServerSettings) -> Vec<Server> {
    eprintln!(
        "waiting for {} server(s) (at most {:.0} s each)",
        clients.len(),
        sv.wait.as_secs_f64()
    );
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| scope.spawn(move || c.wait_ready(sv.wait).and_then(|()| c.models())))
            .collect();
        clients
            .iter()
            .zip(handles)
            .map(|(c, h)| {
                let found = h
                    .join()
                    .unwrap_or_else(|_| Err("the check panicked".into()));
                let (models, down) = match found {
                    Ok(m) if m.is_empty() => (m, Some("its /v1/models lists no model".into())),
                    Ok(m) => (m, None),
                    Err(why) => (Vec::new(), Some(why)),
                };
                match &down {
                    Some(why) => eprintln!("warning: server {}: {why}", c.base),
                    None => {
                        let ids: Vec<&str> =
                            models.iter().filter_map(|m| m["id"].as_str()).collect();
                        eprintln!("server {} serves {}", c.base, ids.join(", "));
                    }
                }
                Server {
                    url: c.base.clone(),
                    models,
                    down,
                }
            })
            .collect()
    })
}

/// Each case's servers; the cases that are not sent, with why. No case for any server: an error.
#[allow(clippy::type_complexity)]
fn route_all<'c>(
    cases: &'c [Case],
    servers: &[Server],
    sv: &ServerSettings,
) -> anyhow::Result<(Vec<(&'c Case, Routes)>, Vec<(Case, String)>)> {
    let any_down = servers.iter().any(|x| x.down.is_some());
    let (mut sendable, mut skipped) = (Vec::new(), Vec::new());
    for case in cases {
        if let Some(l) = &case.latents {
            skipped.push((case.clone(), format!(
                "latents: a case that starts from a latents file ({}) cannot be sent to a server, \
                 whose requests carry a seed",
                l.display()
            )));
            continue;
        }
        let routes = routing::route(case, servers, &sv.model_map);
        if routes.is_empty() && !any_down {
            skipped.push((
                case.clone(),
                format!(
                    "no --server serves its model `{}` ({}; --model-map CASE_MODEL=SERVED_ID names \
                 it otherwise)",
                    case.model,
                    routing::listing(servers)
                ),
            ));
            continue;
        }
        sendable.push((case, routes));
    }
    let routed = sendable.iter().any(|(_, r)| !r.is_empty());
    if !routed && cases.iter().any(|c| c.latents.is_none()) {
        bail!(
            "no case's model is served by any --server ({})",
            routing::listing(servers)
        );
    }
    Ok((sendable, skipped))
}

/// The case's request and input files (URL inputs fetched first, as SGLang's tests do).
fn prepare(case: &Case, routes: Routes, which: Fields, fetcher: &mut InputFetcher) -> Prepared {
    let mut inputs = Vec::new();
    let mut uploads = Vec::new();
    let mut failed = None;
    for src in &case.images {
        let (path, name) = match src {
            ImageSource::File(p) => (
                Ok(p.clone()),
                p.file_name().map(|n| n.to_string_lossy().into_owned()),
            ),
            ImageSource::Url(u) => (
                fetcher.fetch(u).map_err(|e| format!("{e:#}")),
                u.rsplit('/').next().map(str::to_string),
            ),
        };
        match path.and_then(|p| {
            std::fs::read(&p)
                .map(|b| (p.clone(), b))
                .map_err(|e| format!("{}: {e}", p.display()))
        }) {
            Ok((p, bytes)) => {
                uploads.push(Upload {
                    name: name.unwrap_or_else(|| "image".into()),
                    bytes,
                });
                inputs.push(p);
            }
            Err(e) => failed = Some(format!("input image {}: {e}", src.display())),
        }
    }
    let request = match (failed, routes.is_empty()) {
        (Some(e), _) => Err(e),
        (None, true) => Err(String::new()),
        (None, false) => Ok(request::build(case, "", uploads, which)),
    };
    let layered = request::kind_of(case) == pipeline::PipelineKind::Layered;
    Prepared {
        routes,
        request,
        inputs,
        layered,
    }
}

/// `req` naming the model as `server` serves it.
pub(crate) fn with_model(req: &ApiRequest, p: &Prepared, server: usize) -> ApiRequest {
    let id = p
        .routes
        .iter()
        .find(|r| r.0 == server)
        .map_or("", |r| r.1.as_str());
    let mut r = req.clone();
    for (k, v) in &mut r.fields {
        if *k == "model" {
            *v = json!(id);
        }
    }
    r
}

/// One request per live server, its first case's with [`WARM_UP_STEPS`], outside any timing. A server
/// found gone is marked so; any other failure only warns (its case will say it again).
fn warm_up(clients: &[Client], servers: &mut [Server], prepared: &[Prepared], sv: &ServerSettings) {
    let firsts: Vec<Option<ApiRequest>> = (0..servers.len())
        .map(|k| {
            prepared.iter().find_map(|p| {
                let req = p.request.as_ref().ok()?;
                p.routes
                    .iter()
                    .any(|r| r.0 == k)
                    .then(|| with_model(req, p, k).with_steps(WARM_UP_STEPS))
            })
        })
        .collect();
    let results: Vec<Option<Result<f64, CallError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = firsts
            .iter()
            .zip(clients)
            .zip(servers.iter())
            .map(|((req, c), srv)| {
                let req = req.as_ref().filter(|_| srv.down.is_none());
                scope.spawn(move || {
                    let req = req?;
                    let t = Instant::now();
                    Some(
                        c.generate(req.path, &req.body(), sv.request_timeout)
                            .map(|_| t.elapsed().as_secs_f64()),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    for (srv, r) in servers.iter_mut().zip(results) {
        match r {
            None => {}
            Some(Ok(secs)) => eprintln!("warm-up on {}: {secs:.1} s (not timed)", srv.url),
            Some(Err(CallError::Unreachable(why))) => {
                eprintln!("warning: warm-up on {}: {why}; no case goes there", srv.url);
                srv.down = Some(format!("warm-up: {why}"));
            }
            Some(Err(CallError::Failed(why))) => {
                eprintln!("warning: warm-up on {}: {why}", srv.url)
            }
        }
    }
}
