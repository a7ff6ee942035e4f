//! The peer protocol, server side: mutual TLS (a client certificate from the cluster CA is
//! required at the handshake), then each request is checked against the replicated state
//! (a removed node's certificate is refused), decoded, handed to the node's
//! [`PeerHandler`], and its answer encoded. Raft RPCs must come from the node they speak for.
//!
//! Connections that negotiate the framed protocol go to `link_server`; the HTTP routes for
//! appends, votes and pre-votes stay for clients that do not speak it (nodes of an earlier
//! version, and tests that call the port directly).

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{self, identify, Caller, Unheard};
use super::handler::PeerHandler;
use super::message::*;
use crate::loopback::{pass_on, Loopback, INFERENCE_PATHS};
use crate::raft::{NodeId, Speaker};
use crate::server::{Limits, OtherProtocol};
use crate::slot_log::{LogQuery, SlotLogs};
use crate::state::codec;

/// Snapshot chunks and append batches can be large; this only bounds a runaway peer.
const PEER_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Serve the peer protocol on `listener` until `shutdown`, with the node's current TLS
/// configuration (it changes when the certificate is renewed).
pub async fn serve<H: PeerHandler>(
    listener: TcpListener,
    handler: H,
    loopback: Loopback,
    logs: SlotLogs,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let checker = handler.clone();
    // Inference requests another node routed to a replica here, passed on as they stream.
    let infer = Router::new()
        .route(
            &format!("{INFER_PREFIX}/{{slot_id}}/{{*path}}"),
            post(infer::<H>),
        )
        .layer(Extension(loopback));
    let router = Router::new()
        .route(APPEND_PATH, post(append::<H>))
        .route(VOTE_PATH, post(vote::<H>))
        .route(PRE_VOTE_PATH, post(pre_vote::<H>))
        .route(SNAPSHOT_PATH, post(snapshot::<H>))
        .route(WRITE_PATH, post(write::<H>))
        .route(READ_INDEX_PATH, post(read_index::<H>))
        .route(ADMIT_PATH, post(admit::<H>))
        .route(ADD_LEARNER_PATH, post(add_learner::<H>))
        .route(CLUSTER_KEY_PATH, post(cluster_key::<H>))
        .route(RENEW_PATH, post(renew::<H>))
        .route(REMOVE_PATH, post(remove::<H>))
        .route(PROGRESS_PATH, post(progress::<H>))
        .route(SLOT_LOG_PATH, post(slot_log).layer(Extension(logs)))
        .merge(infer)
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
        .layer(middleware::from_fn(move |req, next| {
            identify(checker.clone(), req, next)
        }))
        .with_state(handler.clone());
    let links = OtherProtocol {
        alpn: super::frame::ALPN,
        serve: Arc::new(move |connection| {
            Box::pin(super::link_server::serve(handler.clone(), connection))
        }),
    };
    crate::server::serve_with(
        listener,
        router,
        Some(links),
        Some(tls),
        limits,
        "peer",
        shutdown,
    )
    .await
}

/// A request for replica `slot_id` here, sent on to its vLLM over loopback. 421 when the
/// replica does not run (or is not ready) here.
async fn infer<H: PeerHandler>(
    State(handler): State<H>,
    Extension(loopback): Extension<Loopback>,
    Path((slot_id, path)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    if !INFERENCE_PATHS.contains(&path.as_str()) {
        return (
            StatusCode::NOT_FOUND,
            format!("{path} is not an inference path"),
        )
            .into_response();
    }
    let port = match handler.local_replica_port(&slot_id) {
        Ok(port) => port,
        // 421: the calling gateway tries another replica.
        Err(why) => return (StatusCode::MISDIRECTED_REQUEST, why).into_response(),
    };
    match loopback.send(port, &path, body).await {
        Ok(answer) => pass_on(answer),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("replica {slot_id} did not answer: {e}"),
        )
            .into_response(),
    }
}

/// A slot's log as read here. The slot id is checked by the reader (no path escapes the
/// slots folder); a slot that does not run here simply has no log.
async fn slot_log(Extension(logs): Extension<SlotLogs>, body: Bytes) -> Response {
    call(&body, |query: LogQuery| async move {
        let read = tokio::task::spawn_blocking(move || logs.read(&query)).await;
        match read {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
                Err(ClusterError::NotFound(e.to_string()))
            }
            Ok(Err(e)) => Err(ClusterError::Internal(format!("cannot read the log: {e}"))),
            Err(e) => Err(ClusterError::Internal(e.to_string())),
        }
    })
    .await
}

/// Decode the call in `body` and answer with what `handle` makes of it; 400 when the body
/// is not such a call.
async fn call<T, R, Fut>(body: &Bytes, handle: impl FnOnce(T) -> Fut) -> Response
where
    T: DeserializeOwned,
    R: Serialize,
    Fut: Future<Output = R>,
{
    match codec::decode::<T>(body) {
        Ok(request) => encode(&handle(request).await),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// A Raft RPC, answered only when it speaks for the node whose certificate carried it.
async fn raft_call<T, R, Fut>(
    caller: Caller,
    body: &Bytes,
    handle: impl FnOnce(T) -> Fut,
) -> Response
where
    T: DeserializeOwned + Speaker,
    R: Serialize,
    Fut: Future<Output = R>,
{
    match auth::decode_from_speaker::<T>(caller, body) {
        Ok(rpc) => encode(&handle(rpc).await),
        Err(Unheard::Impersonation(why)) => (StatusCode::FORBIDDEN, why).into_response(),
        Err(Unheard::Invalid(why)) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

fn impersonation(caller: Caller, claimed: Option<NodeId>) -> Response {
    (StatusCode::FORBIDDEN, auth::impersonation(caller, claimed)).into_response()
}

fn encode<T: Serialize>(value: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(value),
    )
        .into_response()
}

async fn append<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    raft_call(caller, &body, |rpc| h.append(rpc)).await
}

async fn vote<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    raft_call(caller, &body, |rpc| h.vote(rpc)).await
}

async fn snapshot<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    raft_call(caller, &body, |rpc| h.install_snapshot(rpc)).await
}

async fn pre_vote<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    match codec::decode::<PreVoteRequest>(&body) {
        Ok(request) if request.candidate == caller.0 => encode(&h.pre_vote(&request)),
        Ok(request) => impersonation(caller, Some(request.candidate)),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn write<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |proposal| h.write(proposal)).await
}

async fn read_index<H: PeerHandler>(State(h): State<H>) -> Response {
    encode(&h.read_index().await)
}

async fn admit<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |request| h.admit(request)).await
}

async fn add_learner<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    match codec::decode::<AddLearnerRequest>(&body) {
        Ok(request) if request.node_id == caller.0 => encode(&h.add_learner(request).await),
        Ok(request) => impersonation(caller, Some(request.node_id)),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn cluster_key<H: PeerHandler>(State(h): State<H>) -> Response {
    encode(&h.cluster_key())
}

async fn renew<H: PeerHandler>(
    State(h): State<H>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    call(&body, |request| h.renew(caller.0, request)).await
}

async fn remove<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |node| h.remove(node)).await
}

async fn progress<H: PeerHandler>(State(h): State<H>) -> Response {
    encode(&h.progress())
}
