//! The peer protocol, client side. Raft's frequent messages (appends, votes, pre-votes) go
//! on one long-lived [`Link`] per peer (the framed protocol, many in flight); everything
//! else (snapshots, forwarded writes, joins, logs, inference) is HTTPS with pooled
//! keep-alive connections and bincode bodies. Both use mutual TLS: we present our node
//! certificate, and accept a server only if its certificate comes from the cluster CA and
//! names the node we meant to reach. Links and pools are keyed with the serial of the
//! certificate they were made with, so a renewed certificate is used for new connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::contact::PeerContact;
use super::frame::Kind;
use super::link::{Link, LinkFailure};
use super::message::*;
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, RaftTransport, RpcFailure, SnapshotAnswer,
    SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::slot_log::{LogChunk, LogQuery};
use crate::state::{codec, Proposal};
use crate::tls::NodeIdentity;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made: the peer is down or partitioned away (or its
    /// certificate was not the one we expect). The request was certainly not delivered.
    #[error("peer {addr} unreachable: {message}")]
    Unreachable { addr: String, message: String },
    /// The connection broke after the request may have been delivered: outcome unknown.
    #[error("connection to peer {addr} failed: {message}")]
    Broken { addr: String, message: String },
    #[error("peer {addr} did not answer in time")]
    Timeout { addr: String },
    #[error("peer {addr} refused our certificate: {message}")]
    Refused { addr: String, message: String },
    #[error("peer {addr} answered {status}: {message}")]
    BadResponse {
        addr: String,
        status: u16,
        message: String,
    },
}

/// A cheap-to-clone client for talking to peers.
#[derive(Clone)]
pub struct PeerClient {
    /// Our certificate and key; renewed while we run.
    identity: watch::Receiver<Arc<NodeIdentity>>,
    /// One connection pool per peer, each verifying that the server is that node; built
    /// with the certificate whose serial it is keyed with, and rebuilt after a renewal.
    pools: Arc<Mutex<HashMap<NodeId, (String, reqwest::Client)>>>,
    /// One link per peer, for Raft's messages; made with the certificate whose serial it is
    /// keyed with, for the address it is keyed with.
    links: Arc<Mutex<HashMap<NodeId, LinkTo>>>,
    contact: PeerContact,
}

struct LinkTo {
    serial: String,
    addr: String,
    link: Arc<Link>,
}

impl PeerClient {
    pub fn new(identity: watch::Receiver<Arc<NodeIdentity>>) -> PeerClient {
        PeerClient {
            identity,
            pools: Arc::default(),
            links: Arc::default(),
            contact: PeerContact::default(),
        }
    }

    fn pool(&self, target: NodeId, addr: &str) -> Result<reqwest::Client, TransportError> {
        let identity = self.identity.borrow().clone();
        let serial = &identity.info().serial;
        let mut pools = self.pools.lock().expect("peer pool lock poisoned");
        if let Some((built_with, client)) = pools.get(&target) {
            if built_with == serial {
                return Ok(client.clone());
            }
        }
        let unreachable = |message: String| TransportError::Unreachable {
            addr: addr.into(),
            message,
        };
        let tls = crate::tls::peer_client_config(&identity, target)
            .map_err(|e| unreachable(e.to_string()))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        pools.insert(target, (serial.clone(), client.clone()));
        Ok(client)
    }

    /// The link to node `target` at `addr`: the one we have, unless it is dead or was made
    /// with an older certificate or for another address.
    fn link(&self, target: NodeId, addr: &str) -> Result<Arc<Link>, TransportError> {
        let identity = self.identity.borrow().clone();
        let serial = &identity.info().serial;
        let mut links = self.links.lock().expect("peer link lock poisoned");
        if let Some(known) = links.get(&target) {
            if &known.serial == serial && known.addr == addr && !known.link.is_dead() {
                return Ok(known.link.clone());
            }
        }
        let tls = crate::tls::peer_link_client_config(&identity, target).map_err(|e| {
            TransportError::Unreachable {
                addr: addr.into(),
                message: e.to_string(),
            }
        })?;
        let link = Arc::new(Link::open(addr, Arc::new(tls)));
        let known = LinkTo {
            serial: serial.clone(),
            addr: addr.into(),
            link: link.clone(),
        };
        links.insert(target, known);
        Ok(link)
    }

    /// The link to node `target` now, if there is one.
    #[cfg(test)]
    pub(super) fn link_to(&self, target: NodeId) -> Option<Arc<Link>> {
        let links = self.links.lock().expect("peer link lock poisoned");
        links.get(&target).map(|known| known.link.clone())
    }

    /// Send `request` as a `kind` frame on the link to node `target`, and decode the answer.
    async fn over_link<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        addr: &str,
        kind: Kind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let link = self.link(target, addr)?;
        let answer = link.call(kind, codec::encode(request), timeout).await;
        let answer = answer.map_err(|failure| match failure {
            LinkFailure::Unreachable(message) => TransportError::Unreachable {
                addr: addr.into(),
                message,
            },
            LinkFailure::Broken(message) => TransportError::Broken {
                addr: addr.into(),
                message,
            },
            LinkFailure::Timeout => TransportError::Timeout { addr: addr.into() },
            too_large @ LinkFailure::TooLarge(_) => TransportError::BadResponse {
                addr: addr.into(),
                status: 413,
                message: too_large.to_string(),
            },
        })?;
        let text = || String::from_utf8_lossy(&answer.payload).into_owned();
        match answer.kind {
            Kind::Answer => {
                codec::decode(&answer.payload).map_err(|e| TransportError::BadResponse {
                    addr: addr.into(),
                    status: 200,
                    message: e.to_string(),
                })
            }
            Kind::Refused => Err(TransportError::Refused {
                addr: addr.into(),
                message: text(),
            }),
            _ => Err(TransportError::BadResponse {
                addr: addr.into(),
                status: 400,
                message: text(),
            }),
        }
    }

    /// When each peer last answered a Raft RPC of ours.
    pub fn contact(&self) -> &PeerContact {
        &self.contact
    }

    /// Forward a write to the leader at `addr`.
    pub async fn write(
        &self,
        target: NodeId,
        addr: &str,
        proposal: &Proposal,
        timeout: Duration,
    ) -> Result<Result<Written, ClusterError>, TransportError> {
        self.call(target, addr, WRITE_PATH, proposal, timeout).await
    }

    /// Ask the leader at `addr` for a read index.
    pub async fn read_index(
        &self,
        target: NodeId,
        addr: &str,
        timeout: Duration,
    ) -> Result<Result<Option<u64>, ClusterError>, TransportError> {
        self.call(target, addr, READ_INDEX_PATH, &(), timeout).await
    }

    /// Forward a join to the leader.
    pub async fn admit(
        &self,
        target: NodeId,
        addr: &str,
        request: &AdmitRequest,
        timeout: Duration,
    ) -> Result<Result<JoinReply, ClusterError>, TransportError> {
        self.call(target, addr, ADMIT_PATH, request, timeout).await
    }

    pub async fn add_learner(
        &self,
        target: NodeId,
        addr: &str,
        request: &AddLearnerRequest,
        timeout: Duration,
    ) -> Result<Result<(), ClusterError>, TransportError> {
        self.call(target, addr, ADD_LEARNER_PATH, request, timeout)
            .await
    }

    /// The cluster key, from any member: only an admitted node's certificate gets it.
    pub async fn cluster_key(
        &self,
        target: NodeId,
        addr: &str,
        timeout: Duration,
    ) -> Result<Result<String, ClusterError>, TransportError> {
        self.call(target, addr, CLUSTER_KEY_PATH, &(), timeout)
            .await
    }

    /// A new certificate for our new key pair, from the leader.
    pub async fn renew(
        &self,
        target: NodeId,
        addr: &str,
        request: &RenewRequest,
        timeout: Duration,
    ) -> Result<Result<String, ClusterError>, TransportError> {
        self.call(target, addr, RENEW_PATH, request, timeout).await
    }

    pub async fn remove(
        &self,
        target: NodeId,
        addr: &str,
        node: NodeId,
        timeout: Duration,
    ) -> Result<Result<(), ClusterError>, TransportError> {
        self.call(target, addr, REMOVE_PATH, &node, timeout).await
    }

    pub async fn progress(
        &self,
        target: NodeId,
        addr: &str,
        timeout: Duration,
    ) -> Result<Result<Progress, ClusterError>, TransportError> {
        self.call(target, addr, PROGRESS_PATH, &(), timeout).await
    }

    /// The part of a slot's log that `query` asks for, from node `target` that runs it.
    pub async fn slot_log(
        &self,
        target: NodeId,
        addr: &str,
        query: &LogQuery,
        timeout: Duration,
    ) -> Result<Result<LogChunk, ClusterError>, TransportError> {
        self.call(target, addr, SLOT_LOG_PATH, query, timeout).await
    }

    /// Send an inference request to replica `slot_id` on node `target`, which passes it to
    /// its vLLM. Resolves when the answer's head arrives; its body streams after. A 421
    /// means the replica does not run (or is not ready) there.
    pub async fn infer(
        &self,
        target: NodeId,
        addr: &str,
        slot_id: &str,
        path: &str,
        body: axum::body::Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, TransportError> {
        self.pool(target, addr)?
            .post(format!("https://{addr}{INFER_PREFIX}/{slot_id}{path}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(addr, e))
    }

    pub async fn pre_vote(
        &self,
        target: NodeId,
        addr: &str,
        request: &PreVoteRequest,
        timeout: Duration,
    ) -> Result<PreVoteResponse, TransportError> {
        self.over_link(target, addr, Kind::PreVote, request, timeout)
            .await
    }

    /// POST `request` to `https://{addr}{path}`, which must be node `target`, and decode the
    /// answer.
    pub(super) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let result = self
            .pool(target, addr)?
            .post(format!("https://{addr}{path}"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(codec::encode(request))
            .send()
            .await;
        let response = result.map_err(|e| classify(addr, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| classify(addr, e))?;
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(TransportError::Refused {
                addr: addr.into(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
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

    /// What a Raft RPC to `target` brought back. Only an `Ok` answer of the peer's Raft
    /// counts as contact: an error it sends back (its core stopped, say on a storage
    /// failure) means it takes no part, and the status page, learner promotion, elections
    /// and the runner's node-lost logic all read contact as "this member works".
    fn raft_answer<T, E>(
        &self,
        target: NodeId,
        delivered: Result<Result<T, E>, TransportError>,
    ) -> Result<Result<T, E>, RpcFailure> {
        match delivered {
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
            message: crate::retry::root_cause(&e),
        }
    } else {
        TransportError::Broken {
            addr: addr.into(),
            message: crate::retry::root_cause(&e),
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
        let delivered = self.over_link(target, addr, Kind::Append, rpc, ttl).await;
        self.raft_answer(target, delivered)
    }

    async fn vote(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &VoteRequest,
        ttl: Duration,
    ) -> Result<VoteAnswer, RpcFailure> {
        let delivered = self.over_link(target, addr, Kind::Vote, rpc, ttl).await;
        self.raft_answer(target, delivered)
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &SnapshotRequest,
        ttl: Duration,
    ) -> Result<SnapshotAnswer, RpcFailure> {
        // Snapshot chunks are rare and large: on HTTPS, they hold up nothing on the link.
        let delivered = self.call(target, addr, SNAPSHOT_PATH, rpc, ttl).await;
        self.raft_answer(target, delivered)
    }
}
