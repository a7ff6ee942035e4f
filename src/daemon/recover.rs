//! `helix operator recover`: after a quorum is lost for good, a stopped survivor becomes the
//! single voter of a new configuration holding its own committed state; the other survivors
//! join it again with join tokens and empty data dirs. Its old database is kept aside, not
//! deleted.

use anyhow::{bail, Context};

use super::files::DataDir;
use super::restore::remove_nodes_but;
use crate::config::NodeConfig;
use crate::raft::Db;

/// Recover the stopped node in `config.data_dir`; without `yes`, only say what would be
/// lost. Returns the node id.
pub async fn recover(config: &NodeConfig, yes: bool) -> anyhow::Result<u64> {
    let dir = DataDir::create(&config.data_dir)?;
    let _lock = super::lock::DirLock::acquire(dir.root())?;
    let Some(identity) = dir.identity()? else {
        bail!(
            "{} holds no member of a cluster (no node.pem)",
            dir.root().display()
        );
    };
    let node_id = identity.node_id();
    let (mut state, committed, last) = {
        let db = Db::open(&dir.database()).with_context(|| {
            format!(
                "cannot open the database in {} (is the node still running? stop it first)",
                dir.root().display()
            )
        })?;
        db.committed_state().await?
    };
    let others: Vec<String> = state
        .nodes
        .keys()
        .filter(|id| **id != node_id)
        .map(u64::to_string)
        .collect();
    println!(
        "node {node_id} knows the cluster's writes up to log index {committed}; {} entries after \
         it were not known committed here and will be lost; nodes to remove: [{}]",
        last.saturating_sub(committed),
        others.join(", ")
    );
    if !yes {
        bail!("nothing changed: add --yes to make node {node_id} the only voter of a new configuration");
    }
    remove_nodes_but(&mut state, node_id, crate::time::now_ms())?;
    // Kept aside rather than deleted: the state before recovery can still be looked at.
    let aside = dir
        .root()
        .join(format!("sled.before-recover-{}", crate::time::now_ms()));
    std::fs::rename(dir.database(), &aside)
        .with_context(|| format!("cannot move the old database to {}", aside.display()))?;
    let db = Db::open(&dir.database())
        .with_context(|| format!("cannot make a new database in {}", dir.root().display()))?;
    db.seed(&state, node_id, &config.peer_addr.to_string())
        .await?;
    db.set_node_id(node_id).await?;
    // The membership now knows the node at these addresses.
    dir.keep_addresses(&super::files::Addresses::of(config))?;
    println!("the old database is kept in {}", aside.display());
    Ok(node_id)
}
