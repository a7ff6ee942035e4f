//! One process per data dir: `DATA_DIR/helix.lock`, locked for as long as a node (or an
//! offline `operator recover`) uses the dir, says which process holds it. The lock goes
//! with the process (and across a restart in place: the file is close-on-exec).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

const LOCK_FILE: &str = "helix.lock";

/// The data dir's lock, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    file: Flock<File>,
}

impl DirLock {
    /// Lock the data dir at `root`; refused, naming the dir and the holder, while another
    /// process holds it.
    pub fn acquire(root: &Path) -> anyhow::Result<DirLock> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    said => format!("another helix process ({said})"),
                };
                bail!(
                    "the data dir {} is in use by {holder}: stop it first, or give this node \
                     its own --data-dir",
                    root.display()
                );
            }
            Err((_, e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        };
        let mut lock = DirLock { file };
        lock.say(&format!("pid {}", std::process::id()))?;
        Ok(lock)
    }

    /// Add the node id to what the lock file says about its holder.
    pub fn note_node(&mut self, node_id: u64) {
        let _ = self.say(&format!("pid {}, node {node_id}", std::process::id()));
    }

    fn say(&mut self, holder: &str) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(holder.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DirLock::acquire(dir.path()).unwrap();
        first.note_node(7);
        let refused = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains(&dir.path().display().to_string()),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("pid {}, node 7", std::process::id())),
            "{refused}"
        );
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
