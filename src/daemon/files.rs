//! What a node keeps in its data dir besides its database: its certificate and private key
//! (`node.pem`), the cluster CA's certificate (`ca.pem`), the cluster key (`cluster.key`);
//! on the node that bootstrapped, the first join token (`join.token`), the admin key
//! (`admin.key`) and, until the replicated state holds it, the CA key (`ca.key`); on a node
//! that joined, whom it asked (`join.url`) and the members it was told of
//! (`join.members`); on every node, the API and peer addresses the cluster knows it by
//! (`node.addrs`). Secrets are written 0600, atomically, in a 0700 directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::ClusterSecret;
use crate::raft::NodeId;
use crate::tls::NodeIdentity;

const JOIN_TOKEN_FILE: &str = "join.token";
const CLUSTER_KEY_FILE: &str = "cluster.key";
const NODE_PEM_FILE: &str = "node.pem";
const CA_PEM_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const JOIN_MEMBERS_FILE: &str = "join.members";
const ADMIN_KEY_FILE: &str = "admin.key";
const JOIN_URL_FILE: &str = "join.url";
const ADDRESSES_FILE: &str = "node.addrs";
const DATABASE_DIR: &str = "sled";

/// A node's data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data dir at `root`, created (0700) if missing.
    pub fn create(root: &Path) -> anyhow::Result<DataDir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("cannot create data dir {}", root.display()))?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE_DIR)
    }

    /// The cluster key kept by every member, if this dir has one yet.
    pub fn cluster_key(&self) -> anyhow::Result<Option<ClusterSecret>> {
        let path = self.root.join(CLUSTER_KEY_FILE);
        let Some(text) = read_if_there(&path)? else {
            return Ok(None);
        };
        let key = ClusterSecret::from_hex(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        Ok(Some(key))
    }

    pub fn keep_cluster_key(&self, key: &ClusterSecret) -> anyhow::Result<()> {
        write_private(
            &self.root.join(CLUSTER_KEY_FILE),
            key.to_hex().expose_secret(),
        )
    }

    /// This node's certificate, key and CA, once it has them.
    pub fn identity(&self) -> anyhow::Result<Option<NodeIdentity>> {
        let node_path = self.root.join(NODE_PEM_FILE);
        let Some(node_pem) = read_if_there(&node_path)? else {
            return Ok(None);
        };
        let ca_path = self.ca_path();
        let ca_pem = read_if_there(&ca_path)?.with_context(|| {
            format!(
                "{} is there but {} is missing",
                node_path.display(),
                ca_path.display()
            )
        })?;
        let identity = NodeIdentity::from_node_pem(&ca_pem, &node_pem)
            .with_context(|| format!("{} is damaged", node_path.display()))?;
        Ok(Some(identity))
    }

    /// Keep the node's identity: the certificate and key together in one file, so a renewal
    /// replaces both at once.
    pub fn keep_identity(&self, identity: &NodeIdentity) -> anyhow::Result<()> {
        write_private(&self.ca_path(), identity.ca_pem())?;
        write_private(
            &self.root.join(NODE_PEM_FILE),
            identity.node_pem().expose_secret(),
        )
    }

    /// The cluster CA's certificate: what clients verify the API with (`--ca-cert`).
    pub fn ca_path(&self) -> PathBuf {
        self.root.join(CA_PEM_FILE)
    }

    /// The CA key the bootstrap made, until the replicated state holds it (sealed).
    pub fn pending_ca_key(&self) -> anyhow::Result<Option<SecretString>> {
        Ok(read_if_there(&self.root.join(CA_KEY_FILE))?.map(SecretString::from))
    }

    pub fn keep_pending_ca_key(&self, key: &SecretString) -> anyhow::Result<()> {
        write_private(&self.root.join(CA_KEY_FILE), key.expose_secret())
    }

    pub fn forget_pending_ca_key(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.root.join(CA_KEY_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The first join token, written at bootstrap for the quick start.
    pub fn keep_join_token(&self, token: &SecretString) -> anyhow::Result<()> {
        write_private(&self.join_token_path(), token.expose_secret())
    }

    /// The members a joining node was told of when it was admitted.
    pub fn join_members(&self) -> anyhow::Result<Vec<(NodeId, String)>> {
        let path = self.root.join(JOIN_MEMBERS_FILE);
        match read_if_there(&path)? {
            Some(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display())),
            None => Ok(Vec::new()),
        }
    }

    pub fn keep_join_members(&self, members: &[(NodeId, String)]) -> anyhow::Result<()> {
        write_private(
            &self.root.join(JOIN_MEMBERS_FILE),
            &serde_json::to_string(members)?,
        )
    }

    pub fn join_token_path(&self) -> PathBuf {
        self.root.join(JOIN_TOKEN_FILE)
    }

    pub fn admin_key_path(&self) -> PathBuf {
        self.root.join(ADMIN_KEY_FILE)
    }

    /// The admin key this node printed at bootstrap, if it got that far.
    pub fn admin_key(&self) -> anyhow::Result<Option<SecretString>> {
        Ok(read_if_there(&self.admin_key_path())?.map(SecretString::from))
    }

    pub fn keep_admin_key(&self, key: &SecretString) -> anyhow::Result<()> {
        write_private(&self.admin_key_path(), key.expose_secret())
    }

    /// The member this node asked to join through, if it joined rather than bootstrapped.
    pub fn join_url(&self) -> anyhow::Result<Option<String>> {
        read_if_there(&self.root.join(JOIN_URL_FILE))
    }

    pub fn keep_join_url(&self, url: &str) -> anyhow::Result<()> {
        write_private(&self.root.join(JOIN_URL_FILE), url)
    }
}

/// The addresses the cluster knows a node by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub api_addr: String,
    pub peer_addr: String,
}

impl Addresses {
    pub fn of(config: &crate::config::NodeConfig) -> Addresses {
        Addresses {
            api_addr: config.api_addr.to_string(),
            peer_addr: config.peer_addr.to_string(),
        }
    }
}

impl DataDir {
    /// The addresses this node was admitted (or bootstrapped) with, if recorded.
    pub fn addresses(&self) -> anyhow::Result<Option<Addresses>> {
        let path = self.root.join(ADDRESSES_FILE);
        read_if_there(&path)?
            .map(|text| {
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is damaged", path.display()))
            })
            .transpose()
    }

    pub fn keep_addresses(&self, addresses: &Addresses) -> anyhow::Result<()> {
        write_private(
            &self.root.join(ADDRESSES_FILE),
            &serde_json::to_string(addresses)?,
        )
    }
}

/// A file's text without surrounding white space, if the file is there.
fn read_if_there(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Write a file readable only by its owner (0600), atomically and durably.
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
