//! A node's life in one place: start everything in the order each part needs the one
//! before, run until told to stop, and stop in reverse.
//!
//! Start: data dir and storage → who we are (certificate, cluster key, node id: bootstrap,
//! admission with a join token, or the data dir) → Raft → peer server (mutual TLS) → API
//! server → runner (token watch, scheduler, reconciler) → become a learner or bootstrap →
//! elections, membership upkeep, certificate renewal → announce → ready. Stop: runner (its
//! vLLM processes first) → API and peer servers → Raft → a last flush of storage, all within
//! [`STOP_WITHIN`] (`stop.rs`). A node whose storage failed restarts itself in place once the
//! storage works again (`storage.rs`).

mod announce;
mod certificates;
mod compaction;
mod files;
mod identity;
mod lock;
mod recover;
mod restore;
mod stop;
mod storage;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::announce::Announcement;
use self::files::DataDir;
use self::identity::Established;
use self::lock::DirLock;
pub use self::recover::recover;
pub use self::restore::restore;
pub use self::stop::STOP_WITHIN;
use self::stop::{Ending, Stopping};
use crate::api::ApiContext;
use crate::cluster::{Cluster, KeyUse, Signing};
use crate::config::NodeConfig;
use crate::crypto::SealKey;
use crate::gateway::{Gateway, InFlight};
use crate::gossip::Gossip;
use crate::loopback::{Loopback, UpstreamTimeouts};
use crate::peer::{AddLearnerRequest, PeerClient};
use crate::raft::Db;
use crate::runner::fence::Fenced;
use crate::runner::reconciler::Reconciler;
use crate::runner::tokens::Tokens;
use crate::server::Limits;
use crate::slot_log::SlotLogs;
use crate::state::{NodeAnnouncement, Sealer};

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
    // Before anything records a figure (a restart in place keeps the first).
    crate::metrics::install();
    // Before anything opens a file: every connection and file needs a handle.
    let limits = server_limits(&config);
    // Storage, and who we are.
    let dir = DataDir::create(&config.data_dir)?;
    let mut dir_lock = DirLock::acquire(dir.root())?;
    let db = Db::open(&dir.database())
        .with_context(|| format!("cannot open the database in {}", dir.root().display()))?;
    // Read before joining anything, so a bad file fails fast.
    let external_seal_key = config
        .seal_key_file
        .as_deref()
        .map(SealKey::from_file)
        .transpose()?;
    let Established { identity, secret } = identity::establish(&config, &dir, &db, &launch).await?;
    let seal_key = external_seal_key.unwrap_or_else(|| secret.seal_key());
    let node_id = identity.node_id();
    crate::logging::set_node_id(node_id);
    dir_lock.note_node(node_id);
    let (identity_tx, identity_rx) = watch::channel(Arc::new(identity));
    let peers = PeerClient::new(identity_rx.clone());
    // Bind before anything runs, so a busy port fails fast and cleanly.
    let api_listener = bind(config.api_addr, "api").await?;
    let peer_listener = bind(config.peer_addr, "peer").await?;
    let gpus = {
        let spec = config.gpus.clone();
        tokio::task::spawn_blocking(move || crate::runner::gpus::discover(&spec)).await?
    };

    // Raft, and the servers other nodes and users talk to.
    let (raft, replica) = crate::raft::start(node_id, &config.raft, peers.clone(), &db).await?;
    let signing = Signing {
        secret: secret.clone(),
        cert_lifetime: config.certificate_lifetime,
    };
    let cluster = Cluster::new(
        node_id,
        raft,
        replica,
        peers.clone(),
        config.raft.clone(),
        signing,
    );
    let (stop_tx, stop) = watch::channel(false);
    let peer_tls = certificates::follow(
        identity_rx.clone(),
        crate::tls::peer_server_config,
        stop.clone(),
    )?;
    let api_tls = certificates::api_tls(&config.api_tls, &identity_rx, &stop)?;
    let api_scheme = if api_tls.is_some() { "https" } else { "http" };
    let loopback = Loopback::new(UpstreamTimeouts {
        connect: config.gateway.connect_timeout,
        overall: config.gateway.request_timeout,
    });
    let slot_logs = SlotLogs::new(dir.root());
    let peer_server = tokio::spawn(crate::peer::serve(
        peer_listener,
        cluster.clone(),
        loopback.clone(),
        slot_logs.clone(),
        peer_tls,
        limits,
        stop.clone(),
    ));
    let env_token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let hf_token_in_env = env_token.is_some();
    let sealer = Sealer::new(seal_key, secret.legacy_data_key());
    let in_flight = InFlight::default();
    let gossip = {
        let in_flight = in_flight.clone();
        Gossip::start(
            cluster.clone(),
            sealer.clone(),
            config.peer_addr,
            loopback.clone(),
            Arc::new(move || in_flight.snapshot()),
            stop.clone(),
        )
        .await?
    };
    let tokens = Tokens::new(sealer.clone(), env_token);
    tokens.watch(node_id, cluster.replica().clone(), stop.clone());
    let key_use = KeyUse::default();
    // The runner's fence, which `/readyz` reports.
    let fenced = Fenced::default();
    tokio::spawn(key_use.clone().report(
        cluster.clone(),
        config.server.key_use_report,
        stop.clone(),
    ));
    let api_server = tokio::spawn(crate::api::serve(
        api_listener,
        ApiContext {
            cluster: cluster.clone(),
            tokens: tokens.clone(),
            sealer: sealer.clone(),
            key_use: key_use.clone(),
            gossip: gossip.clone(),
            metrics_public: config.metrics.public,
            logs: slot_logs,
            fenced: fenced.clone(),
        },
        Gateway::new(
            cluster.clone(),
            peers.clone(),
            loopback,
            config.gateway,
            in_flight,
            gossip,
            key_use,
        ),
        api_tls,
        limits,
        stop.clone(),
    ));
    println!(
        "helix node {node_id} listening: api={api_scheme}://{} peer={} (mutual TLS)",
        config.api_addr, config.peer_addr
    );

    // The runner: acts on applied state only.
    crate::runner::metrics::watch_gpus(&config.gpus, &gpus, stop.clone());
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
            fenced,
        )
        .run(stop.clone()),
    );

    // Membership: finish joining or bootstrap, then keep it healthy.
    let peer_addr = config.peer_addr.to_string();
    if !cluster.is_initialized().await? {
        match dir.join_url()? {
            Some(_) => {
                let request = AddLearnerRequest {
                    node_id,
                    api_addr: config.api_addr.to_string(),
                    peer_addr: peer_addr.clone(),
                };
                identity::become_learner(&peers, &dir.join_members()?, &request).await?;
            }
            None => cluster.initialize_alone(&peer_addr).await,
        }
    }
    cluster.start_upkeep(stop.clone());
    tokio::spawn(compaction::follow_requests(cluster.clone(), stop.clone()));
    tokio::spawn(certificates::keep_renewed(
        cluster.clone(),
        dir.clone(),
        identity_tx.clone(),
        config.advertise_names.clone(),
        stop.clone(),
    ));
    let announced = tokio::spawn(announce::announce(
        cluster.clone(),
        dir.clone(),
        secret.clone(),
        sealer,
        identity_rx.borrow().clone(),
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
    // Ready once a member with a leader that has recorded this node (and, on the node that
    // bootstrapped, the first admin and join token).
    let ending = tokio::select! {
        _ = async { cluster.wait_ready().await; let _ = announced.await; } => {
            if cluster.readiness().storage_failure.is_none() {
                println!("helix node {node_id} ready");
            }
            tokio::select! {
                _ = &mut shutdown => Ending::Exit,
                _ = cluster.wait_left() => Ending::Exit,
                _ = &mut recovered => Ending::RestartInPlace,
            }
        }
        _ = &mut shutdown => Ending::Exit,
        _ = cluster.wait_left() => Ending::Exit,
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

/// Raise the open-file limit, and the limits of both servers: the configured connection cap,
/// else one the open-file limit can carry.
fn server_limits(config: &NodeConfig) -> Limits {
    let fd_limit = crate::server::raise_fd_limit();
    let max_connections = match config.server.max_connections {
        Some(cap) if cap > fd_limit.per_port_capacity() => {
            tracing::warn!(
                cap,
                open_file_limit = fd_limit.soft,
                "server.max_connections is more than the open-file limit can hold on both ports; \
                 the node may run out of file handles"
            );
            cap
        }
        Some(cap) => cap,
        None => fd_limit.default_max_connections(),
    };
    Limits {
        max_connections,
        header_read_timeout: config.server.header_read_timeout,
        idle_timeout: config.server.idle_timeout,
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {what} address {addr}"))
}
