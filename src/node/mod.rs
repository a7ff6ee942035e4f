//! A node's life: bootstrap or join, serve the peer and admin APIs, keep membership healthy,
//! and stop cleanly.

pub mod cluster;
pub mod election;
mod membership;
pub mod peer_server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use openraft::{BasicNode, SnapshotPolicy};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cluster::{Cluster, ClusterError};

use self::election::LeaderContact;
use crate::config::NodeConfig;
use crate::crypto::{generate_api_key, hash_api_key, random_id, ClusterSecret};
use crate::raft::network::{NetworkFactory, PeerClient, PeerContact};
use crate::raft::store::Db;
use crate::raft::{NodeId, Raft};
use crate::state::{Command, NodeRecord, Proposal, User};

/// How this process becomes a member.
pub enum Launch {
    /// Resume the cluster in the data dir, or bootstrap a new one if it is empty.
    Start,
    /// Join the cluster reachable at `url` (any member's API address).
    Join { url: String, token: SecretString },
}

const JOIN_TOKEN_FILE: &str = "join.token";
const ADMIN_KEY_FILE: &str = "admin.key";
/// Where a joining node remembers whom it asked, to finish joining after a crash.
const JOIN_URL_FILE: &str = "join.url";

/// Run a node until SIGTERM/SIGINT.
pub async fn run(config: NodeConfig, launch: Launch) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    create_private_dir(dir)?;
    let db = Db::open(&dir.join("sled"))
        .with_context(|| format!("cannot open the database in {}", dir.display()))?;
    let known_id = db.node_id()?;
    if known_id.is_some() {
        if let Launch::Join { .. } = launch {
            println!(
                "data dir {} already holds a member of a cluster; resuming it (the join URL is ignored)",
                dir.display()
            );
        }
    }

    // The cluster secret: kept in join.token (0600) by every member.
    let token_path = dir.join(JOIN_TOKEN_FILE);
    let secret = if token_path.exists() {
        let text = std::fs::read_to_string(&token_path)
            .with_context(|| format!("cannot read {}", token_path.display()))?;
        ClusterSecret::from_join_token(&text)
            .with_context(|| format!("{} is damaged", token_path.display()))?
    } else {
        let secret = match &launch {
            Launch::Start => ClusterSecret::generate(),
            Launch::Join { token, .. } => ClusterSecret::from_join_token(token.expose_secret())?,
        };
        write_private(&token_path, &secret.join_token())?;
        secret
    };
    let peers = PeerClient::new(&secret.peer_credential());

    let api_addr = config.api_addr.to_string();
    let peer_addr = config.peer_addr.to_string();
    let node_id = match (known_id, &launch) {
        (Some(id), _) => id,
        // Crashed after asking to join but before learning its id: ask again.
        (None, _) if dir.join(JOIN_URL_FILE).exists() => {
            let url = std::fs::read_to_string(dir.join(JOIN_URL_FILE))?;
            request_join(
                url.trim(),
                &secret,
                config.node_id,
                &api_addr,
                &peer_addr,
                false,
            )
            .await?
        }
        (None, Launch::Start) => config.node_id.unwrap_or(1),
        (None, Launch::Join { url, .. }) => {
            write_private(&dir.join(JOIN_URL_FILE), url)?;
            request_join(url, &secret, config.node_id, &api_addr, &peer_addr, false).await?
        }
    };
    crate::logging::set_node_id(node_id);
    db.set_node_id(node_id).await?;

    // Bind before anything is persisted as ours, so a busy port fails fast and cleanly.
    let api_listener = bind(config.api_addr, "api").await?;
    let peer_listener = bind(config.peer_addr, "peer").await?;

    let gpus = {
        let spec = config.gpus.clone();
        tokio::task::spawn_blocking(move || crate::runner::gpus::discover(&spec)).await?
    };

    let contact = PeerContact::default();
    let (log_store, state_machine) = db.stores()?;
    let view = state_machine.view();
    let (heartbeat_interval, election_timeout_min, election_timeout_max) =
        election::openraft_timing(&config.raft);
    let raft_config = openraft::Config {
        cluster_name: "helix".into(),
        heartbeat_interval,
        election_timeout_min,
        election_timeout_max,
        install_snapshot_timeout: 5_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_every),
        max_in_snapshot_log_to_keep: config.raft.snapshot_every / 10,
        ..Default::default()
    }
    .validate()
    .map_err(|e| anyhow!("invalid raft timing: {e}"))?;
    let raft = Raft::new(
        node_id,
        Arc::new(raft_config),
        NetworkFactory {
            client: peers.clone(),
            contact: contact.clone(),
        },
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| anyhow!("cannot start raft: {e}"))?;
    // Elections are started by `election::run`, after a pre-vote, never by openraft's timer.
    raft.runtime_config().elect(false);

    let cluster = Cluster {
        node_id,
        raft: raft.clone(),
        view: view.clone(),
        peers,
        contact,
        leader_contact: LeaderContact::default(),
        data_key: secret.data_key(),
        secret: secret.clone(),
        tuning: config.raft.clone(),
        membership_lock: Arc::default(),
        handed_out_ids: Arc::default(),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let env_token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let tokens = crate::runner::tokens::watch_tokens(
        node_id,
        view.clone(),
        secret.data_key(),
        env_token,
        shutdown_rx.clone(),
    );

    let scheduler = tokio::spawn(crate::runner::scheduler::run(
        cluster.clone(),
        config.runner.node_lost_after,
        shutdown_rx.clone(),
    ));
    let reconciler = tokio::spawn(
        crate::runner::reconciler::Reconciler::new(
            cluster.clone(),
            tokens.clone(),
            config.vllm_command.clone(),
            dir.clone(),
            config.runner.clone(),
        )
        .run(shutdown_rx.clone()),
    );

    let peer_server = tokio::spawn(serve(
        peer_listener,
        peer_server::router(cluster.clone()),
        shutdown_rx.clone(),
    ));
    let api_server = tokio::spawn(serve(
        api_listener,
        crate::api::router(crate::api::ApiContext {
            cluster: cluster.clone(),
            tokens,
        }),
        shutdown_rx.clone(),
    ));
    println!("helix node {node_id} listening: api=http://{api_addr} peer={peer_addr}");

    if !raft.is_initialized().await? {
        if dir.join(JOIN_URL_FILE).exists() {
            let url = std::fs::read_to_string(dir.join(JOIN_URL_FILE))?;
            let url = url.trim();
            request_join(url, &secret, Some(node_id), &api_addr, &peer_addr, true).await?;
        } else {
            let members = BTreeMap::from([(
                node_id,
                BasicNode {
                    addr: peer_addr.clone(),
                },
            )]);
            // Idempotent across a crash between here and the next line: already done is fine.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "cluster already initialized");
            }
        }
    }

    tokio::spawn(election::run(cluster.clone(), shutdown_rx.clone()));
    tokio::spawn(membership::maintain(
        cluster.clone(),
        config.raft.max_voters,
        shutdown_rx.clone(),
    ));
    tokio::spawn(announce(
        cluster.clone(),
        dir.clone(),
        NodeRecord {
            id: node_id,
            api_addr: api_addr.clone(),
            peer_addr: peer_addr.clone(),
            joined_ms: crate::time::now_ms(),
            gpus,
        },
        shutdown_rx.clone(),
    ));

    let mut shutdown_signal = Box::pin(shutdown_signal());
    let signalled = tokio::select! {
        _ = wait_ready(&cluster) => {
            println!("helix node {node_id} ready");
            false
        }
        _ = &mut shutdown_signal => true,
    };
    if !signalled {
        shutdown_signal.await;
    }
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    // vLLM processes stop first (SIGTERM, then SIGKILL after the grace period).
    let _ = reconciler.await;
    let _ = scheduler.await;
    let _ = api_server.await;
    let _ = peer_server.await;
    raft.shutdown()
        .await
        .map_err(|e| anyhow!("raft did not stop cleanly: {e}"))?;
    db.flush().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {what} address {addr}"))
}

async fn serve(listener: TcpListener, router: axum::Router, mut shutdown: watch::Receiver<bool>) {
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A member that knows a leader.
async fn wait_member_with_leader(cluster: &Cluster) {
    let mut metrics = cluster.raft.metrics();
    loop {
        {
            let m = metrics.borrow();
            let member = m
                .membership_config
                .membership()
                .get_node(&cluster.node_id)
                .is_some();
            if member && m.current_leader.is_some() {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Ready: a member that knows a leader and has applied the cluster's bootstrap, so the
/// admin key works here.
async fn wait_ready(cluster: &Cluster) {
    let mut applied = cluster.view.subscribe();
    loop {
        wait_member_with_leader(cluster).await;
        if !cluster.view.read(|a| a.state.users.is_empty()) {
            return;
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

/// Ask the cluster at `url` for an id (`add: false`) or to add us as a learner (`add: true`).
async fn request_join(
    url: &str,
    secret: &ClusterSecret,
    node_id: Option<NodeId>,
    api_addr: &str,
    peer_addr: &str,
    add: bool,
) -> anyhow::Result<NodeId> {
    let http = reqwest::Client::new();
    let endpoint = format!("{}/api/v1/cluster/join", url.trim_end_matches('/'));
    let body = serde_json::json!({
        "node_id": node_id, "api_addr": api_addr, "peer_addr": peer_addr, "add": add,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent = http
            .post(&endpoint)
            .bearer_auth(secret.peer_credential())
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let retry_reason = match sent {
            Ok(resp) if resp.status().is_success() => {
                let reply: cluster::JoinReply = resp.json().await?;
                return Ok(reply.node_id);
            }
            Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                format!("{} answered 503", endpoint)
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or(text);
                bail!("join refused by {url} ({status}): {message}");
            }
            Err(e) => format!("cannot reach {endpoint}: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("could not join: {retry_reason}");
        }
        tracing::warn!(reason = %retry_reason, "join not done yet, retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Once a leader is known: finish bootstrap (first admin) and keep our addresses current in
/// the replicated state. Retries until done; every step is idempotent.
async fn announce(
    cluster: Cluster,
    dir: PathBuf,
    record: NodeRecord,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        wait_member_with_leader(&cluster).await;
        match announce_once(&cluster, &dir, &record).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not record this node in the cluster state yet")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn announce_once(cluster: &Cluster, dir: &Path, record: &NodeRecord) -> anyhow::Result<()> {
    let no_users = cluster.view.read(|a| a.state.users.is_empty());
    let key_path = dir.join(ADMIN_KEY_FILE);
    // Only the node that bootstrapped has no users yet and no admin key elsewhere.
    let bootstrapping = no_users && !dir.join(JOIN_URL_FILE).exists() && cluster.is_leader();
    if bootstrapping {
        let key = if key_path.exists() {
            SecretString::from(std::fs::read_to_string(&key_path)?.trim().to_string())
        } else {
            let key = generate_api_key();
            write_private(&key_path, key.expose_secret())?;
            // Printed once, here, and kept only in files readable by this user.
            println!(
                "admin API key (saved in {}): {}",
                key_path.display(),
                key.expose_secret()
            );
            println!(
                "join token (saved in {}): {}",
                dir.join(JOIN_TOKEN_FILE).display(),
                cluster.secret.join_token()
            );
            key
        };
        let admin = User {
            id: random_id(),
            name: "admin".into(),
            admin: true,
            created_ms: crate::time::now_ms(),
            organization_id: None,
            org_role: None,
            hf_token: None,
        };
        cluster
            .write(Proposal {
                actor: None,
                at_ms: crate::time::now_ms(),
                command: Command::Bootstrap {
                    admin,
                    key_id: random_id(),
                    key_hash: hash_api_key(key.expose_secret()),
                },
            })
            .await?
            .outcome?;
    }
    let current = cluster
        .view
        .read(|a| a.state.nodes.get(&record.id).cloned());
    let addresses_known = current
        .as_ref()
        .is_some_and(|c| c.api_addr == record.api_addr && c.peer_addr == record.peer_addr);
    if !addresses_known {
        cluster
            .write(Proposal {
                actor: None,
                at_ms: crate::time::now_ms(),
                command: Command::RegisterNode(record.clone()),
            })
            .await?
            .outcome?;
    }
    // Published when the node starts and its inventory differs, not as a heartbeat.
    if current.is_none_or(|c| c.gpus != record.gpus) {
        cluster
            .write(Proposal {
                actor: None,
                at_ms: crate::time::now_ms(),
                command: Command::PublishGpus {
                    node_id: record.id,
                    gpus: record.gpus.clone(),
                },
            })
            .await?
            .outcome?;
        tracing::info!(gpus = record.gpus.len(), "published GPU inventory");
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))
}

/// Write a secret file readable only by its owner (0600), atomically.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
