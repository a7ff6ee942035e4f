//! One error type for the HTTP API, mapped to a status code in one place.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::cluster::ClusterError;
use crate::state::{SealError, StateError};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// The body of every admin API error: what went wrong, naming the problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the {0} byte limit")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(ErrorBody {
            error: self.to_string(),
        });
        if status == StatusCode::SERVICE_UNAVAILABLE {
            ([(header::RETRY_AFTER, RETRY_AFTER_SECS)], (status, body)).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::NotLeader { .. } | ClusterError::Unavailable(_) => {
                ApiError::Unavailable(e.to_string())
            }
            ClusterError::Conflict(m) => ApiError::Conflict(m),
            ClusterError::NotFound(m) => ApiError::NotFound(m),
            ClusterError::Refused(e) => e.into(),
            ClusterError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// A token cannot be sealed here: this node has no usable keyring key (yet).
impl From<SealError> for ApiError {
    fn from(e: SealError) -> Self {
        ApiError::Unavailable(format!("cannot seal the token on this node: {e}"))
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Unauthenticated => ApiError::Unauthorized(e.to_string()),
            StateError::Forbidden(m) => ApiError::Forbidden(m),
            StateError::NotFound(m) => ApiError::NotFound(m),
            StateError::Conflict(m) => ApiError::Conflict(m),
            StateError::Invalid(m) => ApiError::BadRequest(m),
        }
    }
}
