//! The peer protocol between two in-process nodes: a real peer server (with a stand-in
//! handler) and a real client, over loopback with the cluster's mutual TLS.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteResponse};
use openraft::{CommittedLeaderId, LogId, Vote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::message::*;
use super::{PeerClient, PeerHandler};
use crate::loopback::{Loopback, UpstreamTimeouts};
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, RaftTransport, SnapshotAnswer, SnapshotRequest,
    VoteAnswer, VoteRequest,
};
use crate::server::Limits;
use crate::slot_log::SlotLogs;
use crate::state::Proposal;
use crate::tls::{CertRequest, ClusterCa, NodeIdentity, NodeKey};

/// Answers Raft RPCs at once (a vote after as many ms as its last log index says, so
/// answers can overtake each other) and refuses the certificates of `removed` nodes.
#[derive(Clone, Default)]
struct StandIn {
    removed: Arc<Mutex<HashSet<NodeId>>>,
}

impl PeerHandler for StandIn {
    fn check_peer(&self, node: NodeId, _serial: &str) -> Result<(), String> {
        match self.removed.lock().unwrap().contains(&node) {
            true => Err(format!("node {node} was removed from the cluster")),
            false => Ok(()),
        }
    }

    async fn append(&self, _rpc: AppendRequest) -> AppendAnswer {
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(&self, rpc: VoteRequest) -> VoteAnswer {
        let wait = rpc.last_log_id.map_or(0, |l| l.index);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok(VoteResponse {
            vote: rpc.vote,
            vote_granted: true,
            last_log_id: rpc.last_log_id,
        })
    }

    async fn install_snapshot(&self, _rpc: SnapshotRequest) -> SnapshotAnswer {
        unreachable!("no test here sends a snapshot")
    }

    fn pre_vote(&self, request: &PreVoteRequest) -> PreVoteResponse {
        PreVoteResponse {
            granted: request.last_log.is_some(),
            live_leader: false,
        }
    }

    async fn write(&self, _proposal: Proposal) -> Result<Written, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    async fn read_index(&self) -> Result<Option<u64>, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    async fn admit(&self, _request: AdmitRequest) -> Result<JoinReply, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    async fn add_learner(&self, _request: AddLearnerRequest) -> Result<(), ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    fn cluster_key(&self) -> Result<String, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    async fn renew(&self, _node: NodeId, _request: RenewRequest) -> Result<String, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    async fn remove(&self, _node: NodeId) -> Result<(), ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    fn progress(&self) -> Result<Progress, ClusterError> {
        Err(ClusterError::Unavailable("a stand-in".into()))
    }

    fn local_replica_port(&self, slot_id: &str) -> Result<u16, String> {
        Err(format!("{slot_id} does not run on a stand-in"))
    }
}

/// Node `node`'s identity from `ca`.
fn identity(ca: &ClusterCa, node: NodeId) -> NodeIdentity {
    let key = NodeKey::generate().unwrap();
    let request = CertRequest {
        node_id: node,
        names: Vec::new(),
        lifetime: Duration::from_secs(3600),
    };
    let issued = ca
        .sign(&key.csr_pem().unwrap(), &request, crate::time::now_ms())
        .unwrap();
    NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem()).unwrap()
}

/// A peer server for node 2 on loopback, serving until the test ends.
struct Server {
    addr: String,
    handler: StandIn,
    ca: ClusterCa,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start_server(limits: Limits) -> Server {
    let ca = ClusterCa::generate(crate::time::now_ms()).unwrap();
    let tls = crate::tls::peer_server_config(&identity(&ca, 2)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = StandIn::default();
    let dir = tempfile::tempdir().unwrap();
    let loopback = Loopback::new(UpstreamTimeouts {
        connect: Duration::from_secs(1),
        overall: Duration::from_secs(10),
    });
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(super::serve(
        listener,
        handler.clone(),
        loopback,
        SlotLogs::new(dir.path()),
        watch::channel(tls).1,
        limits,
        shutdown,
    ));
    Server {
        addr,
        handler,
        ca,
        _stop: stop,
        _dir: dir,
    }
}

fn limits() -> Limits {
    Limits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
    }
}

fn client_of(ca: &ClusterCa, node: NodeId) -> PeerClient {
    PeerClient::new(watch::channel(Arc::new(identity(ca, node))).1)
}

fn empty_append(leader: NodeId) -> AppendRequest {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, leader),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    }
}

fn vote_with_index(candidate: NodeId, index: u64) -> VoteRequest {
    VoteRequest {
        vote: Vote::new(2, candidate),
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, candidate), index)),
    }
}

const TTL: Duration = Duration::from_secs(10);

/// p50 / p90 / p99 of `samples` (µs), for printing.
fn percentiles(mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    format!("p50 {} µs, p90 {} µs, p99 {} µs", at(0.5), at(0.9), at(0.99))
}

async fn time_each<F: std::future::Future<Output = ()>>(
    rounds: usize,
    mut one: impl FnMut() -> F,
) -> Vec<u64> {
    let mut us = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        one().await;
        us.push(start.elapsed().as_micros() as u64);
    }
    us
}

/// The round trip of an empty append between two in-process nodes, against a plain TCP
/// round trip on the same loopback: what the transport itself costs per message. Timings
/// are printed, not asserted (`cargo test --lib peer::tests::round_trip -- --ignored
/// --nocapture`, best with `--release`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by name"]
async fn round_trip_of_an_empty_append_against_plain_tcp() {
    const ROUNDS: usize = 2000;
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let append = empty_append(1);
    let addr = server.addr.as_str();
    // Warm the connections up first.
    for _ in 0..100 {
        client.append(2, addr, &append, TTL).await.unwrap().unwrap();
    }
    let raft = time_each(ROUNDS, || async {
        client.append(2, addr, &append, TTL).await.unwrap().unwrap();
    })
    .await;
    let https = time_each(ROUNDS, || async {
        let _: AppendAnswer = client
            .call(2, addr, APPEND_PATH, &append, TTL)
            .await
            .unwrap();
    })
    .await;

    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut peer, _) = echo.accept().await.unwrap();
        peer.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        while peer.read_exact(&mut buf).await.is_ok() {
            peer.write_all(&buf).await.unwrap();
        }
    });
    let mut tcp = tokio::net::TcpStream::connect(echo_addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    let mut plain = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        tcp.write_all(&buf).await.unwrap();
        tcp.read_exact(&mut buf).await.unwrap();
        plain.push(start.elapsed().as_micros() as u64);
    }
    println!("empty append, RaftTransport: {}", percentiles(raft));
    println!("empty append, HTTPS/1.1:     {}", percentiles(https));
    println!("64 bytes, plain TCP:         {}", percentiles(plain));
}
