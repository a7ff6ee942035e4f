//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, so OpenAI
//! clients show them as they show OpenAI's own.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// OpenAI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    /// A string of ours (`model_not_found`, ...); a replica's own errors, relayed as they
    /// came, may carry a number.
    pub code: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, ...
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    /// Seconds, for a 503 that may pass.
    pub retry_after: Option<u64>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            code: Some("invalid_api_key"),
            ..OpenAiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
        }
    }

    pub fn forbidden(model: &str) -> OpenAiError {
        OpenAiError {
            param: Some("model"),
            code: Some("model_not_allowed"),
            ..OpenAiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("this API key may not use model {model:?}"),
            )
        }
    }

    pub fn unknown_model(model: &str) -> OpenAiError {
        OpenAiError {
            param: Some("model"),
            code: Some("model_not_found"),
            ..OpenAiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("the model {model:?} does not exist"),
            )
        }
    }

    pub fn bad_request(param: Option<&'static str>, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            param,
            ..OpenAiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    pub fn too_large(limit: usize) -> OpenAiError {
        OpenAiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// No replica can answer now; `retry_after` seconds is a fair guess when it may.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> OpenAiError {
        OpenAiError {
            code: Some("model_not_ready"),
            retry_after: Some(retry_after),
            ..OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                message,
            )
        }
    }

    pub fn body(&self) -> OpenAiErrorBody {
        OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.map(str::to_string),
                code: self.code.into(),
            },
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
