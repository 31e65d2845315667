//! Errors as the API answers them: OpenAI's `{"error": {"message", "type", "param", "code"}}`
//! with the HTTP status that says who is at fault ([`ApiError`]), and the server's own start-up
//! failures ([`ServeError`]).

use axum::http::StatusCode;
use serde_json::json;

/// One failed request, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault (`"num_inference_steps"`), if one is.
    pub param: Option<String>,
    /// A stable machine-readable code (`"invalid_value"`, `"queue_full"`, …).
    pub code: &'static str,
    /// Seconds a client should wait before trying again (503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
        }
    }

    /// 400 for a bad value of `param`.
    pub fn field(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_value", message).param(param)
    }

    /// 400 for a body that is not what the endpoint reads (malformed JSON, bad multipart).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401: no key, or the wrong one.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "missing or wrong API key: send `Authorization: Bearer <key>`",
        )
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 413: the body is over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 415: the endpoint reads `wanted`.
    pub fn content_type(got: &str, wanted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type `{got}` is not accepted here: send {wanted}"),
        )
    }

    /// 422: an input image that cannot be decoded or is too large.
    pub fn image(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", message).param(param)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 504: the request ran past `--request-timeout`.
    pub fn timeout(secs: f64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than the server's limit of {secs} s and was cancelled"
            ),
        )
    }

    /// 500: the generation failed or panicked; the server goes on.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generation_failed",
            message,
        )
    }

    /// Name the field at fault.
    pub fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    /// OpenAI's error `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            404 | 400 | 413 | 415 | 422 => "invalid_request_error",
            503 | 504 => "server_unavailable",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (the cause is the `source()`).
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// An I/O failure while serving (the cause is the `source()`).
    #[error("serving failed")]
    Io(#[from] std::io::Error),
    /// The model could not be loaded (the loader's message).
    #[error("loading the model: {0}")]
    Load(String),
}

/// The status, the message and the field of a pipeline error that escaped the checks made
/// before a job is queued: a bad input image is the client's (422), a request the pipeline
/// refuses is a 400, anything else is ours (500).
pub fn from_pipeline(e: &pipeline::Error) -> ApiError {
    match e {
        pipeline::Error::InputImage { .. } => ApiError::image("image", e.to_string()),
        pipeline::Error::Request(_) => ApiError::malformed(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_openai_shaped() {
        let e = ApiError::field(
            "num_inference_steps",
            "num_inference_steps must be at least 1",
        );
        let b = e.body();
        assert_eq!(b["error"]["param"], "num_inference_steps");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["code"], "invalid_value");
        assert_eq!(ApiError::unauthorized().kind(), "authentication_error");
        assert_eq!(
            ApiError::internal("x").body()["error"]["param"],
            serde_json::Value::Null
        );
    }
}
