//! `POST /v1/images/generations` and `POST /v1/images/edits`: read the body, plan the outputs,
//! queue the job, wait for it (under `--request-timeout`), answer. A [`Trace`] follows each
//! request: it writes the log line, counts the answer, and — when the client goes away and the
//! handler is dropped — cancels the job, so the worker moves on within one step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use pipeline::{InputImage, PipelineKind, StageTimings};
use serde_json::Value;

use crate::answer;
use crate::error::{ApiError, from_pipeline};
use crate::inputs::{Source, decode_images, fetch_urls, read_form, read_json};
use crate::params::Plan;
use crate::state::{AppState, RequestId, error_response};
use crate::worker::{Done, JobError};

/// `POST /v1/images/generations` (JSON).
pub async fn generations(
    State(s): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut t = Trace::new(&s, "/v1/images/generations", &id);
    let result = async {
        let loaded = s.ready()?;
        let mut fields = read_json(&headers, body, s.limits().json_body).await?;
        let plan = Plan::read(&mut fields, &s.context(loaded), 0)?;
        t.planned(&plan, loaded.kind);
        run(&s, &id, plan, &mut t).await
    }
    .await;
    t.finish(result)
}

/// `POST /v1/images/edits` (multipart: `image`/`image[]` files, `url`/`url[]`, fields).
pub async fn edits(
    State(s): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    req: Request,
) -> Response {
    let mut t = Trace::new(&s, "/v1/images/edits", &id);
    let result = async {
        let loaded = s.ready()?;
        let form = read_form(req, s.limits().form_body).await?;
        let mut fields = form.fields;
        let mut urls = fields.strings("url")?;
        urls.extend(fields.strings("url[]")?);
        let inputs = form.images.len() + urls.len();
        let mut plan = Plan::read(&mut fields, &s.context(loaded), inputs)?;
        plan.ignored.extend(form.ignored);
        plan.ignored.sort();
        t.planned(&plan, loaded.kind);
        let images = load_images(&s, form.images, urls).await?;
        plan.attach(images);
        run(&s, &id, plan, &mut t).await
    }
    .await;
    t.finish(result)
}

/// Uploaded files first, then URLs (SGLang's `merge_image_input_list`), fetched and decoded off
/// the async threads.
async fn load_images(
    s: &Arc<AppState>,
    files: Vec<Source>,
    urls: Vec<String>,
) -> Result<Vec<InputImage>, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let mut sources = files;
        sources.extend(fetch_urls(&s.fetcher, &urls)?);
        decode_images(&sources, s.limits().input_pixels)
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the input images failed: {e}")))?
}

/// Queue the plan's outputs, wait, and build the answer.
async fn run(
    s: &Arc<AppState>,
    id: &str,
    mut plan: Plan,
    t: &mut Trace,
) -> Result<Value, ApiError> {
    let requests = std::mem::take(&mut plan.requests);
    let rx = s.queue.submit(requests, t.cancel.clone())?;
    let reply = match s.config.request_timeout {
        Some(limit) => {
            let left = limit.saturating_sub(t.started.elapsed());
            match tokio::time::timeout(left, rx).await {
                Ok(r) => r,
                Err(_) => {
                    t.cancel.store(true, Ordering::SeqCst);
                    return Err(ApiError::timeout(limit.as_secs_f64()));
                }
            }
        }
        None => rx.await,
    };
    let done = match reply {
        Ok(Ok(done)) => done,
        Ok(Err(JobError::Cancelled)) => {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the request was cancelled: the server is stopping",
                1,
            ));
        }
        Ok(Err(JobError::Failed(e))) => return Err(from_pipeline(&e)),
        Ok(Err(JobError::Panicked(m))) => {
            return Err(ApiError::internal(format!("the generation panicked: {m}")));
        }
        Err(_) => return Err(ApiError::internal("the worker thread stopped")),
    };
    t.done(&done);
    let (s2, id, elapsed) = (s.clone(), id.to_string(), t.started.elapsed());
    tokio::task::spawn_blocking(move || answer::build(&id, &plan, &done, &s2.store, elapsed))
        .await
        .map_err(|e| ApiError::internal(format!("encoding the answer failed: {e}")))?
}

/// One generation request, from arrival to answer (or to the client going away).
struct Trace {
    state: Arc<AppState>,
    endpoint: &'static str,
    id: String,
    started: Instant,
    cancel: Arc<AtomicBool>,
    finished: bool,
    kind: Option<PipelineKind>,
    steps: usize,
    n: usize,
    size: String,
    ignored: Vec<String>,
    queue_wait: Duration,
    timings: StageTimings,
}

impl Trace {
    fn new(state: &Arc<AppState>, endpoint: &'static str, id: &str) -> Self {
        Self {
            state: state.clone(),
            endpoint,
            id: id.to_string(),
            started: Instant::now(),
            cancel: Arc::new(AtomicBool::new(false)),
            finished: false,
            kind: None,
            steps: 0,
            n: 0,
            size: "-".into(),
            ignored: Vec::new(),
            queue_wait: Duration::ZERO,
            timings: StageTimings::default(),
        }
    }

    fn planned(&mut self, plan: &Plan, kind: PipelineKind) {
        self.kind = Some(kind);
        self.steps = plan.steps();
        self.n = plan.requests.len();
        self.ignored = plan.ignored.clone();
        let r = &plan.requests[0];
        self.size = match (r.width, r.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "auto".into(),
        };
    }

    fn done(&mut self, done: &Done) {
        let stats = &self.state.stats;
        stats.queue_wait(done.queue_wait.as_secs_f64());
        self.queue_wait = done.queue_wait;
        for out in &done.outputs {
            stats.denoised(self.steps, out.timings.denoise.as_secs_f64());
            let t = &mut self.timings;
            t.text_encoder += out.timings.text_encoder;
            t.image_encoder += out.timings.image_encoder;
            t.denoise += out.timings.denoise;
            t.decode += out.timings.decode;
        }
        if let Some(o) = done.outputs.first() {
            self.size = format!("{}x{}", o.image.width(), o.image.height());
        }
    }

    /// The answer, with `x-ignored-fields`; logged and timed.
    fn finish(mut self, result: Result<Value, ApiError>) -> Response {
        self.finished = true;
        let (mut res, status, error) = match result {
            Ok(body) => (axum::Json(body).into_response(), 200, None),
            Err(e) => (error_response(&e), e.status.as_u16(), Some(e.message)),
        };
        if !self.ignored.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.ignored.join(", "))
        {
            res.headers_mut().insert("x-ignored-fields", v);
        }
        if self.kind.is_some() {
            self.state
                .stats
                .latency(self.started.elapsed().as_secs_f64());
        }
        self.log(status, error.as_deref());
        res
    }

    /// The request's log line (never the key, never the prompt).
    fn log(&self, status: u16, error: Option<&str>) {
        let kind = self.kind.map_or("-", |k| k.class_name());
        let t = &self.timings;
        eprintln!(
            "serve: {} {} status={status} kind={kind} size={} steps={} n={} wait={:.2}s \
             text={:.2}s image={:.2}s denoise={:.2}s decode={:.2}s total={:.2}s{}",
            self.id,
            self.endpoint,
            self.size,
            self.steps,
            self.n,
            self.queue_wait.as_secs_f64(),
            t.text_encoder.as_secs_f64(),
            t.image_encoder.as_secs_f64(),
            t.denoise.as_secs_f64(),
            t.decode.as_secs_f64(),
            self.started.elapsed().as_secs_f64(),
            error.map(|e| format!(" error={e:?}")).unwrap_or_default(),
        );
    }
}

impl Drop for Trace {
    /// The handler was dropped before answering: the client went away. Cancel its job.
    fn drop(&mut self) {
        if !self.finished {
            self.cancel.store(true, Ordering::SeqCst);
            self.state.stats.request(self.endpoint, 499);
            self.log(499, Some("the client went away; its job is cancelled"));
        }
    }
}
