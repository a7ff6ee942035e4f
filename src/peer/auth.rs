//! Who is calling: the node named in the certificate its TLS connection presented (the
//! handshake already checked that the cluster CA issued it), unless the replicated state
//! says that certificate must be refused (its node was removed, it was revoked).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use serde::de::DeserializeOwned;

use super::handler::PeerHandler;
use crate::raft::{NodeId, Speaker};
use crate::server::{PeerCertificate, WarnLimiter};
use crate::state::codec;

/// The node a peer request came from, for handlers that check whom an RPC speaks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller(pub NodeId);

/// One warning every few seconds at most: refused requests are what a flood looks like.
static REFUSALS: WarnLimiter = WarnLimiter::new(Duration::from_secs(5));

/// Certificates already read, by their DER: a connection carries many requests, and a
/// cluster has few certificates at a time (a handful per member across renewals).
static READ: Mutex<Option<HashMap<Vec<u8>, CertificateRead>>> = Mutex::new(None);
/// The node a certificate names (if one) and its serial.
type CertificateRead = (Option<NodeId>, String);
/// Past this many, the cache starts afresh (renewals retire old certificates).
const READ_KEEP: usize = 256;

/// The node a certificate names and its serial, read once per certificate.
fn read_certificate(der: &[u8]) -> Result<CertificateRead, String> {
    let mut cache = READ.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(known) = cache.get(der) {
        return Ok(known.clone());
    }
    let info =
        crate::tls::leaf_info(der).map_err(|e| format!("unreadable client certificate: {e}"))?;
    if cache.len() >= READ_KEEP {
        cache.clear();
    }
    let read = (info.node_id, info.serial);
    cache.insert(der.to_vec(), read.clone());
    Ok(read)
}

/// The node a connection's certificate names, unless it must be refused (no certificate,
/// none that names a node, or one the replicated state refuses); refusals are logged,
/// rate-limited, naming `what` was asked.
pub(super) fn caller<H: PeerHandler>(
    handler: &H,
    certificate: Option<&PeerCertificate>,
    what: &str,
) -> Result<Caller, String> {
    let verdict = match certificate.map(|c| read_certificate(c.0.as_ref())) {
        None => Err("no client certificate".to_string()),
        Some(Err(e)) => Err(e),
        Some(Ok((None, _))) => Err("the client certificate names no node".to_string()),
        Some(Ok((Some(node), serial))) => handler.check_peer(node, &serial).map(|()| node),
    };
    verdict.map(Caller).inspect_err(|reason| {
        if let Some(suppressed) = REFUSALS.check() {
            tracing::warn!(what, reason = %reason, suppressed, "refused a peer request");
        }
    })
}

/// Why a request that speaks for node `claimed` is refused on `caller`'s connection; logged.
pub(super) fn impersonation(caller: Caller, claimed: Option<NodeId>) -> String {
    tracing::warn!(
        from_node = caller.0,
        claimed = ?claimed,
        "refused a peer request speaking for another node"
    );
    format!(
        "this connection's certificate is node {}'s, not node {claimed:?}'s",
        caller.0
    )
}

/// Why a Raft message is not handled: it does not decode, or it speaks for another node
/// than the one whose certificate carried it (the reason, already logged).
pub(super) enum Unheard {
    Invalid(String),
    Impersonation(String),
}

/// Decode a Raft message and check that it speaks for `caller`: the HTTP routes and the
/// link share this one check.
pub(super) fn decode_from_speaker<T: DeserializeOwned + Speaker>(
    caller: Caller,
    bytes: &[u8],
) -> Result<T, Unheard> {
    match codec::decode::<T>(bytes) {
        Ok(rpc) if rpc.speaker() == Some(caller.0) => Ok(rpc),
        Ok(rpc) => Err(Unheard::Impersonation(impersonation(caller, rpc.speaker()))),
        Err(e) => Err(Unheard::Invalid(e.to_string())),
    }
}

/// Middleware: refuse (403) a request whose certificate names no node or a refused one;
/// otherwise pass it on with its [`Caller`].
pub(super) async fn identify<H: PeerHandler>(handler: H, mut req: Request, next: Next) -> Response {
    let certificate = req.extensions().get::<PeerCertificate>();
    match caller(&handler, certificate, req.uri().path()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(reason) => (StatusCode::FORBIDDEN, reason).into_response(),
    }
}
