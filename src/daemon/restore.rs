//! `helix operator snapshot restore`: a new data dir whose node, once started, runs a
//! one-node cluster holding a snapshot's state. The snapshot's CA stays the cluster's CA (its
//! key is sealed in the state with the source's cluster key, which the restore is given), so
//! sealed tokens open as before. The source's nodes are removed from the state (retired:
//! their certificates are refused), and this node gets an id above every id ever used.

use anyhow::{bail, Context};

use super::files::DataDir;
use crate::cluster::{certificate_names, CA_KEY_SCOPE};
use crate::config::NodeConfig;
use crate::crypto::ClusterSecret;
use crate::raft::Db;
use crate::state::{Backup, Command, IssuedCertificate, Proposal, State};
use crate::tls::{CertRequest, ClusterCa, NodeIdentity, NodeKey};

/// Make `config.data_dir` (missing or empty) the data dir of a node holding `backup`'s
/// state; returns its node id.
pub async fn restore(
    config: &NodeConfig,
    backup: Backup,
    secret: &ClusterSecret,
) -> anyhow::Result<u64> {
    let mut state = backup.state;
    let record =
        state.trust.ca.clone().context(
            "the snapshot holds no cluster CA (it was taken before the cluster had one)",
        )?;
    let ca_key = secret
        .ca_key_sealer()
        .open(&record.sealed_key, CA_KEY_SCOPE)
        .map_err(|_| {
            anyhow::anyhow!(
                "the cluster key given does not open this snapshot's CA: give the cluster.key \
                 of a node of the cluster the snapshot was saved from (without it neither the \
                 CA nor the sealed tokens can be opened)"
            )
        })?;
    let ca = ClusterCa::from_pem(&record.cert_pem, &ca_key).context("the snapshot's CA")?;
    if let Ok(entries) = std::fs::read_dir(&config.data_dir) {
        if entries.count() > 0 {
            bail!(
                "data dir {} is not empty: a restore makes a new node in an empty one",
                config.data_dir.display()
            );
        }
    }

    let now = crate::time::now_ms();
    let node_id = match config.node_id {
        Some(id) if state.highest_node_id_used().is_some_and(|used| id <= used) => bail!(
            "node id {id} was used by the cluster the snapshot was saved from; choose one \
             above {} or leave --node-id out",
            state.highest_node_id_used().unwrap_or(0)
        ),
        Some(id) => id,
        None => state.highest_node_id_used().unwrap_or(0) + 1,
    };
    let key = NodeKey::generate()?;
    let issued = ca.sign(
        &key.csr_pem()?,
        &CertRequest {
            node_id,
            names: certificate_names(&config.api_addr.to_string(), &config.advertise_names),
            lifetime: config.certificate_lifetime,
        },
        now,
    )?;
    let identity = NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem())?;
    remove_nodes_but(&mut state, node_id, now)?;
    let certificate = Command::RecordCertificate(IssuedCertificate {
        node_id,
        serial: issued.serial.clone(),
        not_after_ms: issued.not_after_ms,
    });
    apply_as_cluster(&mut state, certificate, now)?;

    let dir = DataDir::create(&config.data_dir)?;
    let _lock = super::lock::DirLock::acquire(dir.root())?;
    dir.keep_cluster_key(secret)?;
    let db = Db::open(&dir.database())
        .with_context(|| format!("cannot open the database in {}", dir.root().display()))?;
    db.seed(&state, node_id, &config.peer_addr.to_string())
        .await?;
    db.set_node_id(node_id).await?;
    // The membership now knows the node at these addresses.
    dir.keep_addresses(&super::files::Addresses::of(config))?;
    // Last: a data dir with an identity is one that finished this step.
    dir.keep_identity(&identity)?;
    Ok(node_id)
}

/// Remove every node of `state` but `keep`, as `helix node remove` does: their certificates
/// are refused from then on, and their slots are placed elsewhere.
pub(super) fn remove_nodes_but(state: &mut State, keep: u64, at_ms: i64) -> anyhow::Result<()> {
    let others: Vec<u64> = state
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != keep)
        .collect();
    for id in others {
        apply_as_cluster(state, Command::RemoveNode { id }, at_ms)?;
    }
    Ok(())
}

/// Apply `command` as the cluster's own bookkeeping, as the leader would.
fn apply_as_cluster(state: &mut State, command: Command, at_ms: i64) -> anyhow::Result<()> {
    let name = command.name();
    let proposal = Proposal {
        actor: None,
        at_ms,
        command,
    };
    match state.apply(&proposal).0 {
        Ok(_) => Ok(()),
        Err(e) => bail!("preparing the restored state failed at {name}: {e}"),
    }
}
