//! Once the node knows a leader: finish a bootstrap (the cluster CA, the first admin, the
//! first join token), and keep this node's addresses, GPUs and `HF_TOKEN` flag current in
//! the replicated state.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::files::DataDir;
use crate::cluster::{Cluster, CA_KEY_SCOPE};
use crate::crypto::{generate_api_key, hash_api_key, random_id, ClusterSecret, JoinToken};
use crate::state::{
    CaRecord, Command, IssuedCertificate, NewUser, NodeAnnouncement, SealError, Sealer,
};
use crate::tls::NodeIdentity;

/// How long the first join token, made at bootstrap for the quick start, admits nodes.
const FIRST_JOIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long recording this node may keep failing before it is worth a warning.
const ANNOUNCE_PATIENCE: Duration = Duration::from_secs(30);

/// What this node tells the cluster about itself.
pub struct Announcement {
    pub node: NodeAnnouncement,
    /// Started with `HF_TOKEN` in its environment (never the value).
    pub hf_token_in_env: bool,
}

/// Retries until done (every step is idempotent), or until shutdown.
pub async fn announce(
    cluster: Cluster,
    dir: DataDir,
    secret: ClusterSecret,
    sealer: Sealer,
    identity: Arc<NodeIdentity>,
    me: Announcement,
    mut shutdown: watch::Receiver<bool>,
) {
    // A new cluster or a new member often tries before the first leader made the keyring
    // or admitted it: routine for a while, worth a warning only when it lasts.
    let started = tokio::time::Instant::now();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = cluster.wait_member_with_leader() => {}
            _ = shutdown.changed() => return,
        }
        match announce_once(&cluster, &dir, &secret, &sealer, &identity, &me).await {
            Ok(()) => return,
            Err(e) if !warned && started.elapsed() > ANNOUNCE_PATIENCE => {
                warned = true;
                tracing::warn!(error = %e, "this node is still not recorded in the cluster state; retrying")
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not record this node in the cluster state yet")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn announce_once(
    cluster: &Cluster,
    dir: &DataDir,
    secret: &ClusterSecret,
    sealer: &Sealer,
    identity: &NodeIdentity,
    me: &Announcement,
) -> anyhow::Result<()> {
    // Only the node that bootstrapped holds the CA key in a file, until the state has it.
    if let Some(ca_key) = dir.pending_ca_key()? {
        bootstrap_trust(cluster, dir, secret, identity, &ca_key).await?;
    }
    // The first leader makes the keyring (also a leader of a cluster from before keyrings).
    if cluster.is_leader() && cluster.replica().read(|s| s.keyring.is_none()) {
        cluster
            .propose_system(Command::InstallKeyring(sealer.first_keyring()))
            .await?;
    }
    match cluster.replica().read(|s| sealer.check(s).map(drop)) {
        Ok(()) => {
            tracing::info!(seal_key = %sealer.seal_key_id(), "this node's seal key opens the keyring")
        }
        // Not an error to retry: the node serves, but seals and opens no token.
        Err(e @ SealError::WrongSealKey { .. }) => {
            tracing::error!(error = %e, "this node cannot open any Hugging Face token")
        }
        Err(e) => return Err(e.into()),
    }
    // Only the node that bootstrapped has no users yet and joined nobody.
    let no_users = cluster.replica().read(|s| s.users.is_empty());
    if no_users && dir.join_url()?.is_none() && cluster.is_leader() {
        bootstrap(cluster, dir, identity).await?;
    }
    let id = me.node.id;
    let known = cluster.replica().read(|s| s.nodes.get(&id).cloned());
    let addresses_known = known
        .as_ref()
        .is_some_and(|k| k.api_addr == me.node.api_addr && k.peer_addr == me.node.peer_addr);
    if !addresses_known {
        cluster
            .propose_system(Command::RegisterNode(me.node.clone()))
            .await?;
    }
    // Published when the node starts and they differ, not as a heartbeat. The HF_TOKEN flag
    // goes first: no slot is placed here before the GPUs are known, so `token-source` never
    // judges a slot of this node without it.
    if known.as_ref().is_some_and(|k| k.hf_token_in_env) != me.hf_token_in_env {
        cluster
            .propose_system(Command::PublishEnvToken {
                node_id: id,
                present: me.hf_token_in_env,
            })
            .await?;
    }
    if known.is_none_or(|k| k.gpus != me.node.gpus) {
        cluster
            .propose_system(Command::PublishGpus {
                node_id: id,
                gpus: me.node.gpus.clone(),
            })
            .await?;
        tracing::info!(gpus = me.node.gpus.len(), "published GPU inventory");
    }
    Ok(())
}

/// Put the cluster CA (its key sealed with the cluster key) and this node's certificate in
/// the replicated state; then the CA key file is no longer needed.
async fn bootstrap_trust(
    cluster: &Cluster,
    dir: &DataDir,
    secret: &ClusterSecret,
    identity: &NodeIdentity,
    ca_key: &secrecy::SecretString,
) -> anyhow::Result<()> {
    let fingerprint = crate::tls::fingerprint_of_pem(identity.ca_pem())?;
    cluster
        .propose_system(Command::InitCa(CaRecord {
            cert_pem: identity.ca_pem().to_string(),
            fingerprint,
            sealed_key: secret.ca_key_sealer().seal(ca_key, CA_KEY_SCOPE),
        }))
        .await?;
    let info = identity.info();
    let recorded = cluster
        .replica()
        .read(|s| s.trust.certificates.contains_key(&info.serial));
    if !recorded {
        cluster
            .propose_system(Command::RecordCertificate(IssuedCertificate {
                node_id: identity.node_id(),
                serial: info.serial.clone(),
                not_after_ms: info.not_after_ms,
            }))
            .await?;
    }
    dir.forget_pending_ca_key()?;
    Ok(())
}

/// Create the first admin and the first join token: each printed once, here, and kept only
/// in a file readable by this user (so a crash before the command commits reuses it).
async fn bootstrap(
    cluster: &Cluster,
    dir: &DataDir,
    identity: &NodeIdentity,
) -> anyhow::Result<()> {
    let key = match dir.admin_key()? {
        Some(key) => key,
        None => {
            let key = generate_api_key();
            dir.keep_admin_key(&key)?;
            show_secret("admin API key", &dir.admin_key_path(), key.expose_secret());
            key
        }
    };
    let key_hash = hash_api_key(key.expose_secret());
    cluster
        .propose_system(Command::Bootstrap {
            admin: NewUser {
                id: random_id(),
                name: "admin".into(),
                admin: true,
                created_ms: crate::time::now_ms(),
                organization_id: None,
                org_role: None,
                hf_token: None,
            },
            key_id: random_id(),
            key_hash: key_hash.clone(),
        })
        .await?;
    // The key id as committed, for operators who revoke the bootstrap key later.
    if let Some(key_id) = cluster
        .replica()
        .read(|s| s.api_keys.get(&key_hash).map(|k| k.id.clone()))
    {
        println!("admin API key id: {key_id} (revoke it with `helix user key revoke {key_id}`)");
    }
    let token = JoinToken::generate(&crate::tls::fingerprint_of_pem(identity.ca_pem())?);
    dir.keep_join_token(&token.reveal())?;
    cluster
        .commit_as(
            &key_hash,
            Command::CreateJoinToken {
                id: token.id.clone(),
                secret_hash: token.secret_hash(),
                ttl_ms: FIRST_JOIN_TOKEN_TTL.as_millis() as i64,
                max_uses: None,
            },
        )
        .await
        .context("cannot create the first join token")?;
    show_secret(
        "join token, valid 24h",
        &dir.join_token_path(),
        token.reveal().expose_secret(),
    );
    Ok(())
}

/// A secret made at bootstrap goes to a terminal once; output that goes elsewhere (a log
/// collector, a file) gets only the path of the 0600 file that holds it.
fn show_secret(what: &str, path: &std::path::Path, secret: &str) {
    if std::io::stdout().is_terminal() {
        println!("{what} (saved in {}): {secret}", path.display());
    } else {
        println!(
            "{what} saved in {} (not printed: standard output is not a terminal)",
            path.display()
        );
    }
}
