//! The peer protocol between two in-process nodes: a real peer server (with a stand-in
//! handler) and a real client, over loopback with the cluster's mutual TLS.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteResponse};
use openraft::{CommittedLeaderId, LogId, Vote};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::frame::{self, Kind};
use super::message::*;
use super::{PeerClient, PeerHandler, TransportError};
use crate::loopback::{Loopback, UpstreamTimeouts};
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, RaftTransport, RpcFailure, SnapshotAnswer,
    SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::server::Limits;
use crate::slot_log::SlotLogs;
use crate::state::Proposal;
use crate::tls::{CertRequest, ClusterCa, NodeIdentity, NodeKey};

/// Answers Raft RPCs at once (a vote after as many ms as its last log index says, so
/// answers can overtake each other; appends with an error while `stopped`), refuses the
/// certificates of `removed` nodes, and notes the serial of the last certificate it checked.
#[derive(Clone, Default)]
struct StandIn {
    removed: Arc<Mutex<HashSet<NodeId>>>,
    last_serial: Arc<Mutex<String>>,
    stopped: Arc<AtomicBool>,
}

impl PeerHandler for StandIn {
    fn check_peer(&self, node: NodeId, serial: &str) -> Result<(), String> {
        *self.last_serial.lock().unwrap() = serial.to_owned();
        match self.removed.lock().unwrap().contains(&node) {
            true => Err(format!("node {node} was removed from the cluster")),
            false => Ok(()),
        }
    }

    async fn append(&self, _rpc: AppendRequest) -> AppendAnswer {
        match self.stopped.load(Ordering::Relaxed) {
            true => Err(RaftError::Fatal(Fatal::Stopped)),
            false => Ok(AppendEntriesResponse::Success),
        }
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
    format!(
        "p50 {} µs, p90 {} µs, p99 {} µs",
        at(0.5),
        at(0.9),
        at(0.99)
    )
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

/// A TLS client of node 2's peer port that asks for the framed protocol, trusts the cluster
/// CA and presents `presented`'s certificate (none: no certificate).
async fn raw_link(
    server: &Server,
    presented: Option<&NodeIdentity>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(server.ca.cert_pem().as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match presented {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert_pem().as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                PrivateKeyDer::from_pem_slice(id.key_pem().expose_secret().as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![frame::ALPN.to_vec()];
    let tcp = TcpStream::connect(&server.addr).await?;
    let name = ServerName::try_from("node-2.helix").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Reads until the server closes the connection (or fails it), within 30 s.
async fn closed_by_server(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut sink = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .is_ok()
}

/// A peer whose Raft answers with an error (its core stopped) was reached, but it takes no
/// part: only its `Ok` answers count as contact.
#[tokio::test]
async fn only_an_ok_answer_counts_as_contact() {
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let addr = server.addr.as_str();
    server.handler.stopped.store(true, Ordering::Relaxed);
    let stopped = client.append(2, addr, &empty_append(1), TTL).await.unwrap();
    assert!(stopped.is_err(), "{stopped:?}");
    assert_eq!(client.contact().since_last_answer(2), None);

    server.handler.stopped.store(false, Ordering::Relaxed);
    client
        .append(2, addr, &empty_append(1), TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(client.contact().since_last_answer(2).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight_on_one_link_come_back_matched() {
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let addr = server.addr.as_str();
    client
        .append(2, addr, &empty_append(1), TTL)
        .await
        .unwrap()
        .unwrap();
    let link = client.link_to(2).unwrap();
    // Later requests are answered first: the stand-in waits `index` ms before a vote.
    let votes = (1..=32u64).map(|i| {
        let client = client.clone();
        async move {
            let rpc = vote_with_index(1, 33 - i);
            let answer = client.vote(2, addr, &rpc, TTL).await.unwrap().unwrap();
            (rpc.last_log_id, answer.last_log_id)
        }
    });
    for (asked, answered) in futures::future::join_all(votes).await {
        assert_eq!(asked, answered, "an answer came back to the wrong request");
    }
    let same = client.link_to(2).unwrap();
    assert!(
        Arc::ptr_eq(&link, &same),
        "the votes went on more than one link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_holds_up_no_other_on_the_link() {
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let addr = server.addr.clone();
    let slow = {
        let client = client.clone();
        let rpc = vote_with_index(1, 600_000);
        tokio::spawn(async move { client.vote(2, &addr, &rpc, Duration::from_secs(900)).await })
    };
    let link = wait_for_link(&client).await;
    for _ in 0..3 {
        let answer = client.append(2, &server.addr, &empty_append(1), TTL).await;
        assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
        assert!(!slow.is_finished(), "the slow vote was answered");
    }
    let same = client.link_to(2).unwrap();
    assert!(
        Arc::ptr_eq(&link, &same),
        "the appends went on another link"
    );
    slow.abort();
}

/// The link the client made to node 2, once there is one.
async fn wait_for_link(client: &PeerClient) -> Arc<super::link::Link> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(link) = client.link_to(2) {
            return link;
        }
        assert!(Instant::now() < deadline, "no link was made");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_and_the_connection_closed() {
    let server = start_server(limits()).await;
    let member = identity(&server.ca, 1);
    let mut link = raw_link(&server, Some(&member)).await.unwrap();
    let mut head = frame::header(7, Kind::Append, 0);
    head[..4].copy_from_slice(&(frame::MAX_PAYLOAD as u32 + 1).to_be_bytes());
    link.write_all(&head).await.unwrap();
    link.flush().await.unwrap();
    let answer = frame::read(&mut link, Some(Duration::from_secs(30)), TTL)
        .await
        .unwrap();
    assert_eq!((answer.id, answer.kind), (7, Kind::Invalid));
    let why = String::from_utf8(answer.payload).unwrap();
    assert!(why.contains("over the limit"), "{why}");
    assert!(
        closed_by_server(&mut link).await,
        "the connection stayed open"
    );
}

#[tokio::test]
async fn a_client_without_a_cluster_certificate_cannot_speak() {
    let server = start_server(limits()).await;
    let foreign_ca = ClusterCa::generate(crate::time::now_ms()).unwrap();
    for presented in [None, Some(identity(&foreign_ca, 1))] {
        // TLS 1.3 finishes the client's side of the handshake before the server has
        // checked its certificate: the refusal shows on the first read.
        let Ok(mut link) = raw_link(&server, presented.as_ref()).await else {
            continue;
        };
        let bytes = crate::state::codec::encode(&empty_append(1));
        let _ = link
            .write_all(&frame::header(1, Kind::Append, bytes.len()))
            .await;
        let _ = link.write_all(&bytes).await;
        let _ = link.flush().await;
        let answer = frame::read(&mut link, Some(Duration::from_secs(30)), TTL).await;
        assert!(answer.is_err(), "answered: {answer:?}");
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let server = start_server(Limits {
        header_read_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let member = identity(&server.ca, 1);
    let mut link = raw_link(&server, Some(&member)).await.unwrap();
    assert!(
        closed_by_server(&mut link).await,
        "the connection stayed open"
    );
}

#[tokio::test]
async fn each_request_on_a_link_is_checked_against_the_membership_and_its_speaker() {
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let addr = server.addr.as_str();
    let ok = client.append(2, addr, &empty_append(1), TTL).await;
    assert!(matches!(ok, Ok(Ok(_))), "{ok:?}");

    // Node 1's certificate speaking for node 3.
    match client.append(2, addr, &empty_append(3), TTL).await {
        Err(RpcFailure::Failed(why)) => assert!(why.contains("node 1's"), "{why}"),
        other => panic!("an append for node 3 on node 1's link: {other:?}"),
    }
    let pre_vote = PreVoteRequest {
        candidate: 3,
        last_log: None,
    };
    match client.pre_vote(2, addr, &pre_vote, TTL).await {
        Err(TransportError::Refused { message, .. }) => assert!(message.contains("node 1's")),
        other => panic!("a pre-vote for node 3 on node 1's link: {other:?}"),
    }

    // Removed while its link is open: refused from the next request on.
    server.handler.removed.lock().unwrap().insert(1);
    match client.append(2, addr, &empty_append(1), TTL).await {
        Err(RpcFailure::Failed(why)) => assert!(why.contains("removed"), "{why}"),
        other => panic!("a removed node's append: {other:?}"),
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_used_for_new_links() {
    let server = start_server(limits()).await;
    let (renew, identity_rx) = watch::channel(Arc::new(identity(&server.ca, 1)));
    let client = PeerClient::new(identity_rx);
    let addr = server.addr.as_str();
    client
        .append(2, addr, &empty_append(1), TTL)
        .await
        .unwrap()
        .unwrap();
    let first = client.link_to(2).unwrap();

    let renewed = identity(&server.ca, 1);
    let serial = renewed.info().serial.clone();
    renew.send(Arc::new(renewed)).unwrap();
    client
        .append(2, addr, &empty_append(1), TTL)
        .await
        .unwrap()
        .unwrap();
    let second = client.link_to(2).unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "the old link was kept");
    assert_eq!(*server.handler.last_serial.lock().unwrap(), serial);
}

/// What a partition looks like to a client: requests go out, nothing comes back, and the
/// TCP connection does not fail by itself.
#[tokio::test]
async fn a_link_that_owes_answers_and_hears_nothing_is_given_up() {
    let server = start_server(limits()).await;
    let client = client_of(&server.ca, 1);
    let addr = server.addr.as_str();
    let unanswered = vote_with_index(1, 600_000);
    let silent = client
        .vote(2, addr, &unanswered, Duration::from_millis(100))
        .await;
    assert!(matches!(silent, Err(RpcFailure::Failed(_))), "{silent:?}");
    let link = client.link_to(2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !link.is_dead() {
        assert!(Instant::now() < deadline, "the silent link was kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .append(2, addr, &empty_append(1), TTL)
        .await
        .unwrap()
        .unwrap();
    let next = client.link_to(2).unwrap();
    assert!(
        !Arc::ptr_eq(&link, &next),
        "requests still go on the silent link"
    );
}
