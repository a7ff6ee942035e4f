//! `GET /metrics`: this node's Prometheus metrics. They name no secret, but the cluster's
//! shape is an admin's to see: an admin key is needed unless `[metrics] public = true`.
//! The key is checked on this node's replica as it is, so a scrape needs no leader.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;

use super::{ApiContext, ApiError, ErrorBody};

pub const METRICS_PATH: &str = "/metrics";

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "operator",
    responses(
        (status = 200, description = "This node's metrics in Prometheus' text format (`helix_` names)",
            body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled (unless `[metrics] public = true`)", body = ErrorBody),
        (status = 403, description = "Admins only (unless `[metrics] public = true`)", body = ErrorBody),
    ))]
pub async fn metrics(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !ctx.metrics_public {
        ctx.authenticate(&headers)?.require_admin()?;
    }
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        crate::metrics::render(),
    ))
}
