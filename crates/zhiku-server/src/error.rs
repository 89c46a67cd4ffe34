//! Errors as OpenAI's error object — `{"error": {"message", "type", "param", "code"}}` — so
//! that OpenAI SDKs raise their usual exception types (401 → AuthenticationError, 404 →
//! NotFoundError, ...). Internal errors are logged and answered with a generic message.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    /// Seconds to wait before trying again (429), sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: param.map(str::to_string),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>, code: &'static str, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            code: Some(code),
            param: param.map(str::to_string),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "authentication_error",
            code: Some("invalid_api_key"),
            param: None,
            retry_after: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            kind: "permission_error",
            code: Some("forbidden"),
            param: None,
            retry_after: None,
        }
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            kind: "rate_limit_error",
            code: Some("rate_limit_exceeded"),
            param: None,
            retry_after: Some(retry_after.max(1)),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "server_error",
            code: Some("model_not_loaded"),
            param: None,
            retry_after: None,
        }
    }

    /// An unexpected failure: the detail goes to the log, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error; the server log has the details".into(),
            kind: "server_error",
            code: None,
            param: None,
            retry_after: None,
        }
    }
}

impl From<zhiku_store::Error> for ApiError {
    fn from(e: zhiku_store::Error) -> Self {
        match e {
            zhiku_store::Error::UnknownKb(kb) => {
                Self::not_found(format!("knowledge base '{kb}' does not exist"), "model_not_found", Some("model"))
            }
            e @ (zhiku_store::Error::InvalidKbName(_) | zhiku_store::Error::Invalid { .. }) => Self::invalid(e.to_string(), None),
            other => Self::internal(other),
        }
    }
}

impl From<zhiku_rag::Error> for ApiError {
    fn from(e: zhiku_rag::Error) -> Self {
        match e {
            zhiku_rag::Error::Store(e) => e.into(),
            zhiku_rag::Error::Pg(zhiku_pg::Error::UnknownKb(kb)) => {
                Self::not_found(format!("knowledge base '{kb}' does not exist"), "model_not_found", Some("model"))
            }
            e @ zhiku_rag::Error::Unsupported(_) => Self::invalid(e.to_string(), None),
            other => Self::internal(other),
        }
    }
}

/// The body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    pub message: String,
    /// invalid_request_error, authentication_error, permission_error, rate_limit_error or server_error.
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.clone(),
                code: self.code.map(str::to_string),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// A JSON body whose rejections (bad syntax, wrong types, no content type, too large) are
/// OpenAI-shaped errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
                    _ => StatusCode::BAD_REQUEST,
                };
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => Some("request_too_large"),
                    _ => None,
                };
                Err(ApiError {
                    status,
                    message: rejection.body_text(),
                    kind: "invalid_request_error",
                    code,
                    param: None,
                    retry_after: None,
                })
            }
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint", "unknown_url", None)
}

pub async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed on this endpoint".into(),
        kind: "invalid_request_error",
        code: None,
        param: None,
        retry_after: None,
    }
}
