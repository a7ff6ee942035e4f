//! A node's life in one place: start everything in the order each part needs the one
//! before, run until told to stop, and stop in reverse.
//!
//! Start: data dir and storage → who we are (cluster secret, node id) → Raft → peer server
//! → API server → runner (token watch, scheduler, reconciler) → join or bootstrap →
//! elections and membership upkeep → announce → ready. Stop: runner (its vLLM processes
//! first) → API and peer servers → Raft → a last flush of storage, all within
//! [`STOP_WITHIN`] (`stop.rs`). A node whose storage failed restarts itself in place once the
//! storage works again (`storage.rs`).

mod announce;
mod files;
mod stop;
mod storage;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::announce::Announcement;
use self::files::DataDir;
pub use self::stop::STOP_WITHIN;
use self::stop::{Ending, Stopping};
use crate::api::ApiContext;
use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::crypto::ClusterSecret;
use crate::peer::{request_join, JoinRequest, PeerClient};
use crate::raft::{Db, NodeId};
use crate::runner::reconciler::Reconciler;
use crate::runner::tokens::Tokens;
use crate::state::NodeAnnouncement;

/// How this process becomes a member.
pub enum Launch {
    /// Resume the cluster in the data dir, or bootstrap a new one if it is empty.
    Start,
    /// Join the cluster reachable at `url` (any member's API address).
    Join { url: String, token: SecretString },
}

/// Run a node until `shutdown` resolves (SIGTERM, Ctrl-C), then stop it within
/// [`STOP_WITHIN`]; after a storage failure that has passed, restart it in place (this does
/// not return then).
pub async fn run(
    config: NodeConfig,
    launch: Launch,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Storage, and who we are.
    let dir = DataDir::create(&config.data_dir)?;
    let db = Db::open(&dir.database())
        .with_context(|| format!("cannot open the database in {}", dir.root().display()))?;
    let secret = cluster_secret(&dir, &launch)?;
    let peers = PeerClient::new(&secret.peer_credential());
    let node_id = node_id(&config, &dir, &db, &launch, &secret).await?;
    crate::logging::set_node_id(node_id);
    // Bind before anything runs, so a busy port fails fast and cleanly.
    let api_listener = bind(config.api_addr, "api").await?;
    let peer_listener = bind(config.peer_addr, "peer").await?;
    let gpus = {
        let spec = config.gpus.clone();
        tokio::task::spawn_blocking(move || crate::runner::gpus::discover(&spec)).await?
    };

    // Raft, and the servers other nodes and users talk to.
    let (raft, replica) = crate::raft::start(node_id, &config.raft, peers.clone(), &db).await?;
    let cluster = Cluster::new(node_id, raft, replica, peers, config.raft.clone());
    let (stop_tx, stop) = watch::channel(false);
    let peer_server = tokio::spawn(crate::peer::serve(
        peer_listener,
        cluster.clone(),
        secret.peer_credential(),
        stop.clone(),
    ));
    let env_token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let hf_token_in_env = env_token.is_some();
    let tokens = Tokens::new(secret.data_key(), env_token);
    tokens.watch(node_id, cluster.replica().clone(), stop.clone());
    let api_server = tokio::spawn(crate::api::serve(
        api_listener,
        ApiContext {
            cluster: cluster.clone(),
            tokens: tokens.clone(),
            data_key: secret.data_key(),
            secret: secret.clone(),
        },
        stop.clone(),
    ));
    println!(
        "helix node {node_id} listening: api=http://{} peer={}",
        config.api_addr, config.peer_addr
    );

    // The runner: acts on applied state only.
    let scheduler = tokio::spawn(crate::runner::scheduler::run(
        cluster.clone(),
        config.runner.node_lost_after,
        stop.clone(),
    ));
    let reconciler = tokio::spawn(
        Reconciler::new(
            cluster.clone(),
            tokens,
            config.vllm_command.clone(),
            dir.root().to_path_buf(),
            config.runner.clone(),
        )
        .run(stop.clone()),
    );

    // Membership: finish joining or bootstrap, then keep it healthy.
    let peer_addr = config.peer_addr.to_string();
    if !cluster.is_initialized().await? {
        match dir.join_url()? {
            Some(url) => {
                let request = join_request(&config, Some(node_id), true);
                request_join(&url, &secret.peer_credential(), &request).await?;
            }
            None => cluster.initialize_alone(&peer_addr).await,
        }
    }
    cluster.start_upkeep(config.raft.max_voters, stop.clone());
    tokio::spawn(announce::announce(
        cluster.clone(),
        dir.clone(),
        secret.clone(),
        Announcement {
            node: NodeAnnouncement {
                id: node_id,
                api_addr: config.api_addr.to_string(),
                peer_addr,
                joined_ms: crate::time::now_ms(),
                gpus,
            },
            hf_token_in_env,
        },
        stop.clone(),
    ));

    let mut shutdown = std::pin::pin!(shutdown);
    let mut recovered = std::pin::pin!(storage::recovered(
        cluster.clone(),
        dir.root().to_path_buf()
    ));
    let ending = tokio::select! {
        _ = cluster.wait_ready() => {
            if cluster.readiness().storage_failure.is_none() {
                println!("helix node {node_id} ready");
            }
            tokio::select! {
                _ = &mut shutdown => Ending::Exit,
                _ = &mut recovered => Ending::RestartInPlace,
            }
        }
        _ = &mut shutdown => Ending::Exit,
        _ = &mut recovered => Ending::RestartInPlace,
    };

    tracing::info!("shutting down");
    let mut stopping = Stopping::start(ending);
    let _ = stop_tx.send(true);
    // vLLM processes stop first (SIGTERM, then SIGKILL after the grace period).
    let runner_cap = config.runner.stop_grace + stop::RUNNER_SLACK;
    let runner = async {
        let _ = reconciler.await;
        let _ = scheduler.await;
        Ok(())
    };
    stopping.step("the runner", runner_cap, runner).await;
    let servers = async {
        let _ = api_server.await;
        let _ = peer_server.await;
        Ok(())
    };
    // Requests in flight finish: a write waits at most the write timeout.
    let servers_cap = config.raft.write_timeout + stop::STEP;
    stopping
        .step("the API and peer servers", servers_cap, servers)
        .await;
    stopping.step("raft", stop::STEP, cluster.shutdown()).await;
    // Everything acknowledged is durable already (appends, votes and truncations are
    // fdatasync-ed before they are acknowledged, `raft/store/flush.rs`): this flush only
    // spares re-applying a few entries at the next start, so it may be cut short. It runs on
    // the flusher's own thread, never blocking the runtime. Before a restart in place there
    // is nothing to flush: sled refuses everything after its storage error.
    if ending == Ending::Exit {
        let flush = async { db.flush().await.map_err(|e| e.to_string()) };
        stopping.step("the last flush", stop::STEP, flush).await;
    }
    tracing::info!("stopped");
    stopping.finish()
}

/// The cluster secret: kept in `join.token` (0600) by every member; created at bootstrap,
/// taken from the join token when joining.
fn cluster_secret(dir: &DataDir, launch: &Launch) -> anyhow::Result<ClusterSecret> {
    if let Some(secret) = dir.cluster_secret()? {
        return Ok(secret);
    }
    let secret = match launch {
        Launch::Start => ClusterSecret::generate(),
        Launch::Join { token, .. } => ClusterSecret::from_join_token(token.expose_secret())?,
    };
    dir.keep_cluster_secret(&secret)?;
    Ok(secret)
}

/// This node's id: the one it has, else one the cluster hands out (joining), else the
/// configured one or 1 (bootstrap). Kept in the database before anything else runs.
async fn node_id(
    config: &NodeConfig,
    dir: &DataDir,
    db: &Db,
    launch: &Launch,
    secret: &ClusterSecret,
) -> anyhow::Result<NodeId> {
    let id = match (db.node_id()?, launch) {
        (Some(id), launch) => {
            if let Launch::Join { .. } = launch {
                println!(
                    "data dir {} already holds a member of a cluster; resuming it (the join URL is ignored)",
                    dir.root().display()
                );
            }
            id
        }
        (None, launch) => {
            let url = match (dir.join_url()?, launch) {
                // Crashed after asking to join but before learning its id: ask again.
                (Some(url), _) => Some(url),
                (None, Launch::Join { url, .. }) => {
                    dir.keep_join_url(url)?;
                    Some(url.clone())
                }
                (None, Launch::Start) => None,
            };
            match url {
                Some(url) => {
                    let request = join_request(config, config.node_id, false);
                    request_join(&url, &secret.peer_credential(), &request)
                        .await?
                        .node_id
                }
                None => config.node_id.unwrap_or(1),
            }
        }
    };
    db.set_node_id(id).await?;
    Ok(id)
}

fn join_request(config: &NodeConfig, node_id: Option<NodeId>, add: bool) -> JoinRequest {
    JoinRequest {
        node_id,
        api_addr: config.api_addr.to_string(),
        peer_addr: config.peer_addr.to_string(),
        add,
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {what} address {addr}"))
}
