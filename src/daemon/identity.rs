//! Who this node is: its id, its certificate from the cluster CA, and the cluster key. A
//! new cluster makes them at bootstrap; a joining node makes its own key pair, is admitted
//! with a join token (the leader signs its certificate), then fetches the cluster key over
//! mutual TLS; a restarted node reads them from its data dir.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::files::{Addresses, DataDir};
use super::Launch;
use crate::cluster::certificate_names;
use crate::config::NodeConfig;
use crate::crypto::{ClusterSecret, JoinToken};
use crate::peer::{request_join, AddLearnerRequest, ClusterError, JoinRequest, PeerClient};
use crate::raft::{Db, NodeId};
use crate::retry::Retry;
use crate::tls::{CertRequest, ClusterCa, NodeIdentity, NodeKey};

/// How long a joining node keeps trying members for the cluster key and its place.
const MEMBER_PATIENCE: Duration = Duration::from_secs(60);

/// What a node knows about itself once it may talk to the cluster.
pub struct Established {
    pub identity: NodeIdentity,
    pub secret: ClusterSecret,
}

/// This node's identity: the one in the data dir, else a new cluster's (bootstrap), else one
/// the cluster admits it with (join). Kept in the data dir before anything else runs.
pub async fn establish(
    config: &NodeConfig,
    dir: &DataDir,
    db: &Db,
    launch: &Launch,
) -> anyhow::Result<Established> {
    if let Some(identity) = dir.identity()? {
        let id = identity.node_id();
        let expired_at = identity.info().not_after_ms;
        if expired_at < crate::time::now_ms() {
            // Peers refuse it; only a cluster this node leads alone can still renew it.
            tracing::error!(
                expired_at = %crate::time::rfc3339(expired_at),
                "this node's certificate has expired (it was stopped for longer than its \
                 lifetime); unless it is alone in its cluster, remove it (`helix node remove`) \
                 and join it again with a join token"
            );
        }
        if let Some(stored) = db.node_id()? {
            if stored != id {
                bail!(
                    "the certificate in {} is node {id}'s but the database is node {stored}'s",
                    dir.root().display()
                );
            }
        }
        if let Launch::Join { token, .. } = launch {
            // A member of another cluster must not start running as if it had joined.
            let wanted = JoinToken::parse(token.expose_secret())?.ca_fingerprint;
            let held = crate::tls::fingerprint_of_pem(identity.ca_pem())?;
            if held != wanted {
                bail!(
                    "data dir {} holds node {id} of another cluster (CA {held}), not of the \
                     cluster this join token is for (CA {wanted}); join with an empty data dir",
                    dir.root().display()
                );
            }
            println!(
                "data dir {} already holds a member of this cluster; resuming it (the join URL is ignored)",
                dir.root().display()
            );
        }
        check_addresses(config, dir, id)?;
        let secret = match dir.cluster_key()? {
            Some(secret) => secret,
            // Admitted, but stopped before it had the key.
            None => {
                let secret = fetch_cluster_key(&identity, &dir.join_members()?).await?;
                dir.keep_cluster_key(&secret)?;
                secret
            }
        };
        db.set_node_id(id).await?;
        return Ok(Established { identity, secret });
    }
    if db.node_id()?.is_some() {
        bail!(
            "data dir {} holds a node of a cluster made by an older helix, without certificates; \
             this version's nodes talk only over mutual TLS. Remove the node from its cluster and \
             join with an empty data dir",
            dir.root().display()
        );
    }
    let established = match launch {
        Launch::Start => {
            if let Some(url) = dir.join_url()? {
                bail!(
                    "data dir {} was joining the cluster at {url} when the node stopped; run \
                     `helix node join {url}` again with a join token",
                    dir.root().display()
                );
            }
            bootstrap(config, dir)?
        }
        Launch::Join { url, token } => join(config, dir, url, token.expose_secret()).await?,
    };
    db.set_node_id(established.identity.node_id()).await?;
    Ok(established)
}

/// A new cluster: its CA, its cluster key, and this node's certificate signed by that CA.
/// The CA key waits in `ca.key` until the replicated state holds it, sealed.
fn bootstrap(config: &NodeConfig, dir: &DataDir) -> anyhow::Result<Established> {
    let now = crate::time::now_ms();
    let ca = ClusterCa::generate(now)?;
    let key = NodeKey::generate()?;
    let issued = ca.sign(
        &key.csr_pem()?,
        &CertRequest {
            node_id: config.node_id.unwrap_or(1),
            names: certificate_names(&config.api_addr.to_string(), &config.advertise_names),
            lifetime: config.certificate_lifetime,
        },
        now,
    )?;
    let identity = NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem())?;
    dir.keep_addresses(&Addresses::of(config))?;
    let secret = ClusterSecret::generate();
    dir.keep_cluster_key(&secret)?;
    dir.keep_pending_ca_key(&ca.key_pem())?;
    // Last: a data dir with an identity is one that finished this step.
    dir.keep_identity(&identity)?;
    Ok(Established { identity, secret })
}

/// Be admitted by the cluster at `url` with `token`, then fetch the cluster key.
async fn join(
    config: &NodeConfig,
    dir: &DataDir,
    url: &str,
    token: &str,
) -> anyhow::Result<Established> {
    let token = JoinToken::parse(token)?;
    let key = NodeKey::generate()?;
    let request = JoinRequest {
        token: token.reveal().expose_secret().to_string(),
        csr_pem: key.csr_pem()?,
        api_addr: config.api_addr.to_string(),
        peer_addr: config.peer_addr.to_string(),
        node_id: config.node_id,
        names: config.advertise_names.clone(),
    };
    // Nothing is kept before the cluster admits this node: a refused join (a wrong token,
    // say) leaves the data dir as it was, and the next `helix node join` starts afresh.
    let reply = request_join(url, &token, &request).await?;
    let identity = NodeIdentity::new(&reply.ca_pem, &reply.cert_pem, key.key_pem())
        .context("the cluster answered with a certificate that does not fit this node's key")?;
    if identity.node_id() != reply.node_id {
        bail!(
            "the cluster said node {} but signed a certificate for node {}",
            reply.node_id,
            identity.node_id()
        );
    }
    dir.keep_join_url(url)?;
    dir.keep_addresses(&Addresses::of(config))?;
    dir.keep_join_members(&reply.members)?;
    let secret = fetch_cluster_key(&identity, &reply.members).await?;
    dir.keep_cluster_key(&secret)?;
    dir.keep_identity(&identity)?;
    println!("admitted to the cluster as node {}", reply.node_id);
    Ok(Established { identity, secret })
}

/// The cluster key, from whichever member answers first (over mutual TLS).
async fn fetch_cluster_key(
    identity: &NodeIdentity,
    members: &[(NodeId, String)],
) -> anyhow::Result<ClusterSecret> {
    if members.is_empty() {
        bail!("this node was admitted but knows no member to fetch the cluster key from");
    }
    let (_keep, identity_rx) = watch::channel(Arc::new(identity.clone()));
    let peers = PeerClient::new(identity_rx);
    let mut retry = Retry::new("fetching the cluster key", MEMBER_PATIENCE);
    loop {
        let mut last_error = String::new();
        for (id, addr) in members {
            match peers.cluster_key(*id, addr, Duration::from_secs(5)).await {
                Ok(Ok(hex)) => return Ok(ClusterSecret::from_hex(&hex)?),
                Ok(Err(e)) => last_error = format!("node {id} refused: {e}"),
                Err(e) => last_error = e.to_string(),
            }
        }
        if !retry.wait(&last_error).await {
            bail!("could not fetch the cluster key from any member: {last_error}");
        }
    }
}

/// An admitted node, listening now, asks the leader to add it as a learner: it tries the
/// members it knows, following a "not the leader" answer to the leader it names.
pub async fn become_learner(
    peers: &PeerClient,
    members: &[(NodeId, String)],
    request: &AddLearnerRequest,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + MEMBER_PATIENCE;
    let mut hint: Option<NodeId> = None;
    loop {
        let mut order: Vec<&(NodeId, String)> = members.iter().collect();
        order.sort_by_key(|(id, _)| Some(*id) != hint);
        let mut last_error = String::from("no member answered");
        for (id, addr) in order {
            match peers
                .add_learner(*id, addr, request, Duration::from_secs(10))
                .await
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(ClusterError::NotLeader { leader_id })) => {
                    hint = leader_id;
                    last_error = format!("node {id} is not the leader");
                    if leader_id.is_some() {
                        break;
                    }
                }
                Ok(Err(e)) if !matches!(e, ClusterError::Unavailable(_)) => {
                    bail!("node {id} refused to add this node: {e}")
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(e) => last_error = e.to_string(),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("could not become a member: {last_error}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node restarts with the addresses the cluster knows it by: with others the leader could
/// not reach it, and it would say `ready` all the same. A data dir from before addresses
/// were recorded records the ones it starts with.
fn check_addresses(config: &NodeConfig, dir: &DataDir, id: NodeId) -> anyhow::Result<()> {
    let given = Addresses::of(config);
    match dir.addresses()? {
        None => dir.keep_addresses(&given),
        Some(stored) if stored == given => Ok(()),
        Some(stored) => bail!(
            "data dir {} holds node {id}, which the cluster knows at --api-addr {} \
             --peer-addr {}, not at --api-addr {} --peer-addr {}; start it with its stored \
             addresses (to move a node, remove it and join again with an empty data dir)",
            dir.root().display(),
            stored.api_addr,
            stored.peer_addr,
            given.api_addr,
            given.peer_addr
        ),
    }
}
