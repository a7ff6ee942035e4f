//! A node whose storage failed (a full disk, no file handles left, an I/O error): out of
//! service, visibly, until the storage works again; then it restarts itself in place.
//!
//! Raft's core stops on the first storage error and openraft never restarts it; the node
//! then answers 503 naming the cause (`/readyz`, writes, reads; see `Cluster::readiness`).
//! Reopening the database in this process is not an option: after an I/O error sled keeps
//! the error (its "global error") and fails every later operation with it. So a probe tries
//! the data dir every [`PROBE_EVERY`], and once it passes the node stops in order and execs
//! itself afresh (`stop::restart_in_place`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::Cluster;

const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_FILE: &str = ".storage-probe";
/// A fresh start writes at least a segment of sled's log (512 KiB): ask for room for that.
const PROBE_BYTES: usize = 1 << 20;
/// Files a fresh start opens at once: sled's, the listeners, connections, vLLM logs.
const PROBE_HANDLES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    #[error("cannot write and sync {PROBE_BYTES} bytes in {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot open {PROBE_HANDLES} files at once: {0}")]
    Handles(io::Error),
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// Resolves once this node's storage has failed and then passed the probe in `dir` (the
/// data dir); never while it works.
pub(super) async fn recovered(cluster: Cluster, dir: PathBuf) {
    let cause = failure(&cluster).await;
    tracing::error!(
        "storage failed: {cause}. This node is out of service (Raft stopped; /readyz, writes \
         and reads answer 503) until its data dir {} works again; checking every {PROBE_EVERY:?}",
        dir.display()
    );
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let d = dir.clone();
        let error = match tokio::task::spawn_blocking(move || probe(&d)).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the storage probe failed: {e}"),
        };
        if error != last_error {
            tracing::warn!("storage still failing: {error}");
            last_error = error;
        }
    }
    tracing::warn!("storage is healthy again; restarting in place (the failure was: {cause})");
}

/// Why Raft's core stopped on a storage error, once it has.
async fn failure(cluster: &Cluster) -> String {
    let mut watch = cluster.watch();
    loop {
        if let Some(cause) = watch.current().storage_failure {
            return cause;
        }
        if !watch.changed().await {
            // Raft stopped; its last status says why.
            return match watch.current().storage_failure {
                Some(cause) => cause,
                None => std::future::pending().await,
            };
        }
    }
}

/// Could a fresh start work in `dir`: create, write, fdatasync and remove a probe file, with
/// [`PROBE_HANDLES`] files open at once on the way.
pub(super) fn probe(dir: &Path) -> Result<(), ProbeError> {
    let path = dir.join(PROBE_FILE);
    let written = write_synced(&path).map_err(|source| ProbeError::Write {
        path: path.clone(),
        source,
    });
    let opened = written.and_then(|()| {
        (0..PROBE_HANDLES)
            .map(|_| File::open(&path))
            .collect::<io::Result<Vec<File>>>()
            .map(drop)
            .map_err(ProbeError::Handles)
    });
    let removed = match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(ProbeError::Remove { path, source: e })
        }
        _ => Ok(()),
    };
    opened.and(removed)
}

fn write_synced(path: &Path) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(&vec![0u8; PROBE_BYTES])?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_passes_on_a_working_dir_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).expect("probe");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_probe_names_what_failed() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = probe(&gone).unwrap_err().to_string();
        assert!(err.contains("cannot write and sync"), "{err}");
        assert!(err.contains(&gone.display().to_string()), "{err}");
    }
}
