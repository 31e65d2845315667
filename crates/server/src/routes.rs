//! The router, the small endpoints (models, health, metrics, URL answers), the layers every
//! answer goes through (request id, counting, the API key) and the serve loop with its
//! shutdown. The generation endpoints are in [`crate::generate`], what handlers share in
//! [`crate::state`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Notify;

use crate::Config;
use crate::error::{ApiError, ServeError};
use crate::fetch::Fetcher;
use crate::generate::{edits, generations};
use crate::model::Loaded;
use crate::state::{AppState, RequestId, error_response};
use crate::stats::Stats;
use crate::store::{STORE_BYTES, UrlStore};
use crate::worker::{Loader, Queue, Status};

/// Every route, with its layers.
pub fn router(state: Arc<AppState>) -> Router {
    let form_limit = state.limits().form_body;
    let api = Router::new()
        .route("/v1/images/generations", post(generations))
        .route(
            "/v1/images/edits",
            post(edits).layer(DefaultBodyLimit::max(form_limit)),
        )
        .route("/v1/images/{id}/content", get(content))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error_response(&ApiError::not_found("not_found", "no such endpoint"))
        })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Give the request an id (`x-request-id` on every answer) and count the answer.
async fn observe(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other".to_string(), |p| p.as_str().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    s.stats.request(&endpoint, res.status().as_u16());
    res
}

/// `/v1/*` needs `Authorization: Bearer <key>` when the server has a key.
async fn auth(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.config.api_key {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| key.matches(g)) {
            return error_response(&ApiError::unauthorized());
        }
    }
    next.run(req).await
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    match s.queue.status() {
        Status::Ready(l) => axum::Json(json!({
            "status": "ok",
            "model": s.config.model.id,
            "pipeline_class": l.kind.class_name(),
        }))
        .into_response(),
        Status::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response(),
        Status::Failed(m) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failed", "error": m})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let text = s.stats.render(s.queue.waiting());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn loaded_now(s: &AppState) -> Option<Loaded> {
    match s.queue.status() {
        Status::Ready(l) => Some(l),
        _ => None,
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    let card = s.config.model.card(loaded_now(&s).as_ref());
    axum::Json(json!({"object": "list", "data": [card]})).into_response()
}

async fn model(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let m = &s.config.model;
    let id = id.trim_start_matches('/');
    if id != m.id && id != m.root {
        let e = ApiError::not_found(
            "model_not_found",
            format!("The model '{id}' does not exist"),
        )
        .param("model");
        return error_response(&e);
    }
    axum::Json(m.card(loaded_now(&s).as_ref())).into_response()
}

/// `GET /v1/images/{id}/content[?index=k]`: a `response_format="url"` image, while it is kept.
async fn content(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let index = q.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    match s.store.get(&id, index) {
        Some((mime, bytes)) => ([(CONTENT_TYPE, mime)], bytes.as_ref().clone()).into_response(),
        None => error_response(&ApiError::not_found(
            "image_not_found",
            format!("no image {index} of request {id}: unknown, or older than --url-ttl"),
        )),
    }
}

/// Serve on `listener` until a signal or `stop`; then stop accepting, cancel every job, and
/// return once the open requests are answered.
pub async fn serve(
    listener: std::net::TcpListener,
    config: Config,
    loader: Loader,
    stop: Arc<Notify>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let queue = Queue::start(config.max_queue, config.model.root.clone(), loader)?;
    let state = Arc::new(AppState {
        store: UrlStore::new(config.url_ttl, STORE_BYTES),
        fetcher: Arc::new(Fetcher::new(
            config.allow_private_urls,
            config.limits.url_bytes,
        )),
        stats: Stats::new(),
        queue: queue.clone(),
        config,
    });
    let failed = Arc::new(std::sync::Mutex::new(None));
    let failed_in = failed.clone();
    let started = Instant::now();
    let shutdown = async move {
        tokio::select! {
            why = signal() => eprintln!("serve: {why}: stopping"),
            _ = stop.notified() => eprintln!("serve: stopping"),
            msg = load_failure(&queue) => {
                eprintln!("serve: the model could not be loaded: {msg}");
                *failed_in.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
            }
        }
        queue.close();
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    eprintln!(
        "serve: stopped after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    match failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(msg) => Err(ServeError::Load(msg)),
        None => Ok(()),
    }
}

/// Resolves with the loader's message if loading fails; never otherwise.
async fn load_failure(queue: &Queue) -> String {
    loop {
        let notified = queue.loaded.notified();
        match queue.status() {
            Status::Failed(m) => return m,
            Status::Ready(_) => std::future::pending::<()>().await,
            Status::Loading => notified.await,
        }
    }
}

/// SIGINT or SIGTERM.
async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => tokio::select! {
                _ = t.recv() => "SIGTERM",
                _ = i.recv() => "SIGINT",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
