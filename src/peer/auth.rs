//! Who may use the peer protocol: holders of the cluster credential, presented as bearer.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::server::bearer;

/// The request carries `expected` as its bearer credential (compared in constant time).
pub fn credential_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = bearer(headers).unwrap_or("");
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Middleware: refuse (401, and a log line naming the caller) any request without the
/// cluster credential.
pub(super) async fn require_credential(expected: String, req: Request, next: Next) -> Response {
    if credential_matches(req.headers(), &expected) {
        return next.run(req).await;
    }
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    tracing::warn!(
        from = %from,
        path = %req.uri().path(),
        "rejected peer request without a valid cluster credential"
    );
    (
        StatusCode::UNAUTHORIZED,
        "missing or wrong cluster credential",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn only_the_exact_credential_matches() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert!(credential_matches(&with("Bearer abc"), "abc"));
        assert!(!credential_matches(&with("Bearer abd"), "abc"));
        assert!(!credential_matches(&with("Bearer ab"), "abc"));
        assert!(!credential_matches(&with("abc"), "abc"));
        assert!(!credential_matches(&HeaderMap::new(), "abc"));
    }
}
