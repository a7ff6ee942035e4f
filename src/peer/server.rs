//! The peer protocol, server side: decode each call, hand it to the node's [`PeerHandler`],
//! encode its answer. Every route demands the cluster credential.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::require_credential;
use super::message::*;
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, SnapshotAnswer, SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::server::Limits;
use crate::state::{codec, Proposal};

/// Snapshot chunks and append batches can be large; this only bounds a runaway peer.
const PEER_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What a node does with each peer call.
pub trait PeerHandler: Clone + Send + Sync + 'static {
    fn append(&self, rpc: AppendRequest) -> impl Future<Output = AppendAnswer> + Send;
    fn vote(&self, rpc: VoteRequest) -> impl Future<Output = VoteAnswer> + Send;
    fn install_snapshot(&self, rpc: SnapshotRequest)
        -> impl Future<Output = SnapshotAnswer> + Send;
    fn pre_vote(&self, request: &PreVoteRequest) -> PreVoteResponse;
    /// On the leader: commit a write another node forwarded.
    fn write(
        &self,
        proposal: Proposal,
    ) -> impl Future<Output = Result<Written, ClusterError>> + Send;
    fn read_index(&self) -> impl Future<Output = Result<Option<u64>, ClusterError>> + Send;
    fn join(
        &self,
        request: JoinRequest,
    ) -> impl Future<Output = Result<JoinReply, ClusterError>> + Send;
    fn remove(&self, node: NodeId) -> impl Future<Output = Result<(), ClusterError>> + Send;
    fn progress(&self) -> Result<Progress, ClusterError>;
}

/// Serve the peer protocol on `listener` until `shutdown`, for holders of `credential`.
pub async fn serve<H: PeerHandler>(
    listener: TcpListener,
    handler: H,
    credential: String,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let router = Router::new()
        .route(APPEND_PATH, post(append::<H>))
        .route(VOTE_PATH, post(vote::<H>))
        .route(PRE_VOTE_PATH, post(pre_vote::<H>))
        .route(SNAPSHOT_PATH, post(snapshot::<H>))
        .route(WRITE_PATH, post(write::<H>))
        .route(READ_INDEX_PATH, post(read_index::<H>))
        .route(JOIN_PATH, post(join::<H>))
        .route(REMOVE_PATH, post(remove::<H>))
        .route(PROGRESS_PATH, post(progress::<H>))
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
        .layer(middleware::from_fn(move |req, next| {
            require_credential(credential.clone(), req, next)
        }))
        .with_state(handler);
    crate::server::serve(listener, router, None, limits, "peer", shutdown).await
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

fn encode<T: Serialize>(value: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(value),
    )
        .into_response()
}

async fn append<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |rpc| h.append(rpc)).await
}

async fn vote<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |rpc| h.vote(rpc)).await
}

async fn snapshot<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |rpc| h.install_snapshot(rpc)).await
}

async fn pre_vote<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |request: PreVoteRequest| async move {
        h.pre_vote(&request)
    })
    .await
}

async fn write<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |proposal| h.write(proposal)).await
}

async fn read_index<H: PeerHandler>(State(h): State<H>) -> Response {
    encode(&h.read_index().await)
}

async fn join<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |request| h.join(request)).await
}

async fn remove<H: PeerHandler>(State(h): State<H>, body: Bytes) -> Response {
    call(&body, |node| h.remove(node)).await
}

async fn progress<H: PeerHandler>(State(h): State<H>) -> Response {
    encode(&h.progress())
}
