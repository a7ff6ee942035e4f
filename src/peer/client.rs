//! The peer protocol, client side: HTTP with pooled keep-alive connections and bincode
//! bodies, every request with the cluster credential.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::contact::PeerContact;
use super::message::*;
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, RaftTransport, RpcFailure, SnapshotAnswer,
    SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::state::{codec, Proposal};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made: the peer is down or partitioned away. The request was
    /// certainly not delivered.
    #[error("peer {addr} unreachable: {message}")]
    Unreachable { addr: String, message: String },
    /// The connection broke after the request may have been delivered: outcome unknown.
    #[error("connection to peer {addr} failed: {message}")]
    Broken { addr: String, message: String },
    #[error("peer {addr} did not answer in time")]
    Timeout { addr: String },
    #[error("peer {addr} refused our cluster credential")]
    Unauthorized { addr: String },
    #[error("peer {addr} answered {status}: {message}")]
    BadResponse {
        addr: String,
        status: u16,
        message: String,
    },
}

/// A cheap-to-clone client for talking to peers. One connection pool per process.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    /// `Bearer <peer credential>`, derived from the cluster secret.
    authorization: String,
    contact: PeerContact,
}

impl PeerClient {
    pub fn new(peer_credential: &str) -> PeerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client configuration is static and valid");
        PeerClient {
            http,
            authorization: format!("Bearer {peer_credential}"),
            contact: PeerContact::default(),
        }
    }

    /// When each peer last answered a Raft RPC of ours.
    pub fn contact(&self) -> &PeerContact {
        &self.contact
    }

    /// Forward a write to the leader at `addr`.
    pub async fn write(
        &self,
        addr: &str,
        proposal: &Proposal,
        timeout: Duration,
    ) -> Result<Result<Written, ClusterError>, TransportError> {
        self.call(addr, WRITE_PATH, proposal, timeout).await
    }

    /// Ask the leader at `addr` for a read index.
    pub async fn read_index(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Result<Option<u64>, ClusterError>, TransportError> {
        self.call(addr, READ_INDEX_PATH, &(), timeout).await
    }

    pub async fn join(
        &self,
        addr: &str,
        request: &JoinRequest,
        timeout: Duration,
    ) -> Result<Result<JoinReply, ClusterError>, TransportError> {
        self.call(addr, JOIN_PATH, request, timeout).await
    }

    pub async fn remove(
        &self,
        addr: &str,
        node: NodeId,
        timeout: Duration,
    ) -> Result<Result<(), ClusterError>, TransportError> {
        self.call(addr, REMOVE_PATH, &node, timeout).await
    }

    pub async fn progress(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Result<Progress, ClusterError>, TransportError> {
        self.call(addr, PROGRESS_PATH, &(), timeout).await
    }

    pub async fn pre_vote(
        &self,
        addr: &str,
        request: &PreVoteRequest,
        timeout: Duration,
    ) -> Result<PreVoteResponse, TransportError> {
        self.call(addr, PRE_VOTE_PATH, request, timeout).await
    }

    /// POST `request` to `http://{addr}{path}` and decode the answer.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let result = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(codec::encode(request))
            .send()
            .await;
        let response = result.map_err(|e| classify(addr, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| classify(addr, e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(TransportError::Unauthorized { addr: addr.into() });
        }
        if !status.is_success() {
            return Err(TransportError::BadResponse {
                addr: addr.into(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        codec::decode(&body).map_err(|e| TransportError::BadResponse {
            addr: addr.into(),
            status: status.as_u16(),
            message: e.to_string(),
        })
    }

    /// A Raft RPC. Only an `Ok` answer of the peer's Raft counts as contact: an error it
    /// sends back (its core stopped, say on a storage failure) means it takes no part, and
    /// the status page, learner promotion, elections and the runner's node-lost logic all
    /// read contact as "this member works".
    async fn raft_rpc<Req: Serialize, T: DeserializeOwned, E: DeserializeOwned>(
        &self,
        target: NodeId,
        addr: &str,
        path: &str,
        request: &Req,
        ttl: Duration,
    ) -> Result<Result<T, E>, RpcFailure> {
        match self
            .call::<Req, Result<T, E>>(addr, path, request, ttl)
            .await
        {
            Ok(answer) => {
                if answer.is_ok() {
                    self.contact.record(target);
                }
                Ok(answer)
            }
            Err(e @ (TransportError::Unreachable { .. } | TransportError::Broken { .. })) => {
                Err(RpcFailure::Unreachable(e.to_string()))
            }
            Err(e) => Err(RpcFailure::Failed(e.to_string())),
        }
    }
}

fn classify(addr: &str, e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout { addr: addr.into() }
    } else if e.is_connect() {
        TransportError::Unreachable {
            addr: addr.into(),
            message: e.to_string(),
        }
    } else {
        TransportError::Broken {
            addr: addr.into(),
            message: e.to_string(),
        }
    }
}

impl RaftTransport for PeerClient {
    async fn append(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &AppendRequest,
        ttl: Duration,
    ) -> Result<AppendAnswer, RpcFailure> {
        self.raft_rpc(target, addr, APPEND_PATH, rpc, ttl).await
    }

    async fn vote(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &VoteRequest,
        ttl: Duration,
    ) -> Result<VoteAnswer, RpcFailure> {
        self.raft_rpc(target, addr, VOTE_PATH, rpc, ttl).await
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &SnapshotRequest,
        ttl: Duration,
    ) -> Result<SnapshotAnswer, RpcFailure> {
        self.raft_rpc(target, addr, SNAPSHOT_PATH, rpc, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::post;

    use super::*;

    /// A peer whose Raft answers with an error (its core stopped) was reached, but it takes
    /// no part: only its `Ok` answers count as contact.
    #[tokio::test]
    async fn only_an_ok_answer_counts_as_contact() {
        let answer = |a: Result<u64, String>| move || async move { codec::encode(&a) };
        let router = axum::Router::new()
            .route("/ok", post(answer(Ok(7))))
            .route("/stopped", post(answer(Err("storage failed".into()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = PeerClient::new("credential");
        let ttl = Duration::from_secs(10);

        let stopped: Result<u64, String> = client
            .raft_rpc(2, &addr, "/stopped", &(), ttl)
            .await
            .unwrap();
        assert_eq!(stopped, Err("storage failed".into()));
        assert_eq!(client.contact().since_last_answer(2), None);

        let ok: Result<u64, String> = client.raft_rpc(2, &addr, "/ok", &(), ttl).await.unwrap();
        assert_eq!(ok, Ok(7));
        assert!(client.contact().since_last_answer(2).is_some());
    }
}
