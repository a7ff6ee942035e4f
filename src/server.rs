//! The HTTP plumbing both of a node's servers share: serving a router until shutdown, and
//! reading the bearer credential of a request.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serve `router` on `listener` until `shutdown` turns true, then finish the requests in
/// flight. The peer's address reaches handlers as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "server stopped with an error");
    }
}

/// The credential of `Authorization: Bearer <credential>`, if the header is there and
/// well-formed and the credential is not empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_needs_the_scheme_and_a_value() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("abc")), None);
        assert_eq!(bearer(&with("Bearer  ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
