//! What the handlers share: the server's state ([`AppState`]), the request id the outer layer
//! gives each request, and errors as HTTP answers.

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::fetch::Fetcher;
use crate::model::Loaded;
use crate::params::Context;
use crate::stats::Stats;
use crate::store::UrlStore;
use crate::worker::{Queue, Status};
use crate::{Config, Limits};

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub queue: Arc<Queue>,
    pub store: UrlStore,
    pub stats: Stats,
    pub fetcher: Arc<Fetcher>,
}

impl AppState {
    /// The loaded model, or 503 while it loads.
    pub fn ready(&self) -> Result<Loaded, ApiError> {
        match self.queue.status() {
            Status::Ready(l) => Ok(l),
            Status::Loading => Err(ApiError::unavailable(
                "model_loading",
                "the model is still loading: retry once /health answers 200",
                5,
            )),
            Status::Failed(m) => Err(ApiError::unavailable(
                "model_failed",
                format!("the model could not be loaded: {m}"),
                60,
            )),
        }
    }

    /// What requests are read against.
    pub fn context(&self, loaded: Loaded) -> Context<'_> {
        Context {
            model: &self.config.model,
            loaded,
            cuda: self.config.cuda_layout,
        }
    }

    pub fn limits(&self) -> Limits {
        self.config.limits
    }
}

/// The request id of an answer (`x-request-id`, and the `id` of an image answer).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An error as an HTTP answer.
pub fn error_response(e: &ApiError) -> Response {
    let mut r = (e.status, axum::Json(e.body())).into_response();
    if let Some(s) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}
