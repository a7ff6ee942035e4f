//! `helix node start|join`: run a node in the foreground until SIGTERM or Ctrl-C.

use secrecy::SecretString;

use super::args::NodeFlags;
use super::failure::{failed, usage, Failure};
use crate::config::{FileConfig, NodeConfig};
use crate::crypto::JoinToken;
use crate::daemon::Launch;

/// Bootstrap a new cluster on an empty data dir, or resume the one there.
pub async fn start(flags: NodeFlags) -> Result<(), Failure> {
    run_node(flags, Launch::Start).await
}

/// Join the cluster reachable at `url`; a malformed token is refused before anything starts.
pub async fn join(url: String, token: String, flags: NodeFlags) -> Result<(), Failure> {
    JoinToken::parse(&token).map_err(|e| usage(e.to_string()))?;
    let launch = Launch::Join {
        url,
        token: SecretString::from(token),
    };
    run_node(flags, launch).await
}

/// The node's configuration: the config file, overridden by the flags.
pub fn config(flags: NodeFlags) -> Result<NodeConfig, Failure> {
    let file = match &flags.config {
        Some(path) => FileConfig::load(path).map_err(|e| usage(e.to_string()))?,
        None => FileConfig::default(),
    };
    NodeConfig::resolve(file, flags.options).map_err(|e| usage(e.to_string()))
}

async fn run_node(flags: NodeFlags, launch: Launch) -> Result<(), Failure> {
    let config = config(flags)?;
    crate::logging::init(config.log_format);
    crate::daemon::run(config, launch, shutdown_signal())
        .await
        .map_err(|e| failed(format!("{e:#}")))
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
