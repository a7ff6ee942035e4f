//! `GET /metrics`: this node's Prometheus metrics. They name no secret, but the cluster's
//! shape is an admin's to see: an admin key is needed unless `[metrics] public = true`.
//! The key is checked on this node's replica as it is, so a scrape needs no leader.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;

use super::{ApiContext, ApiError};

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
