//! Who is calling: the node named in the certificate its TLS connection presented (the
//! handshake already checked that the cluster CA issued it), unless the replicated state
//! says that certificate must be refused (its node was removed, it was revoked).

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::handler::PeerHandler;
use crate::raft::NodeId;
use crate::server::{PeerCertificate, WarnLimiter};

/// The node a peer request came from, for handlers that check whom an RPC speaks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller(pub NodeId);

/// One warning every few seconds at most: refused requests are what a flood looks like.
static REFUSALS: WarnLimiter = WarnLimiter::new(Duration::from_secs(5));

/// Middleware: refuse (403) a request whose certificate names no node or a refused one;
/// otherwise pass it on with its [`Caller`].
pub(super) async fn identify<H: PeerHandler>(handler: H, mut req: Request, next: Next) -> Response {
    let leaf = req
        .extensions()
        .get::<PeerCertificate>()
        .map(|c| crate::tls::leaf_info(c.0.as_ref()));
    let verdict = match leaf {
        None => Err("no client certificate".to_string()),
        Some(Err(e)) => Err(format!("unreadable client certificate: {e}")),
        Some(Ok(info)) => match info.node_id {
            None => Err("the client certificate names no node".to_string()),
            Some(node) => handler.check_peer(node, &info.serial).map(|()| node),
        },
    };
    match verdict {
        Ok(node) => {
            req.extensions_mut().insert(Caller(node));
            next.run(req).await
        }
        Err(reason) => {
            if let Some(suppressed) = REFUSALS.check() {
                tracing::warn!(
                    path = %req.uri().path(),
                    reason = %reason,
                    suppressed,
                    "refused a peer request"
                );
            }
            (StatusCode::FORBIDDEN, reason).into_response()
        }
    }
}
