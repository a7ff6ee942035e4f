//! What a node keeps in its data dir besides its database: the cluster secret
//! (`join.token`), the bootstrap admin key (`admin.key`), and whom it asked to join
//! (`join.url`). Secrets are written 0600, atomically, in a 0700 directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::ClusterSecret;

const JOIN_TOKEN_FILE: &str = "join.token";
const ADMIN_KEY_FILE: &str = "admin.key";
const JOIN_URL_FILE: &str = "join.url";
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

    /// The cluster secret kept by every member, if this dir has one yet.
    pub fn cluster_secret(&self) -> anyhow::Result<Option<ClusterSecret>> {
        let path = self.join_token_path();
        let Some(text) = read_if_there(&path)? else {
            return Ok(None);
        };
        let secret = ClusterSecret::from_join_token(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        Ok(Some(secret))
    }

    pub fn keep_cluster_secret(&self, secret: &ClusterSecret) -> anyhow::Result<()> {
        write_private(&self.join_token_path(), &secret.join_token())
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
