//! sled's group-committing flusher (the state machine, snapshots, the node id; the Raft log
//! has its own, `segments/flusher.rs`), and the `fdatasync` that makes sled's flushes reach
//! the disk.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

/// A flush this slow is logged as a warning.
const SLOW_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// A caller of [`super::Db::flush`] waiting for the next flush.
pub(super) type FlushWaiter = oneshot::Sender<Result<(), sled::Error>>;

pub(super) fn stopped() -> sled::Error {
    sled::Error::Io(std::io::Error::other("the storage flusher has stopped"))
}

/// Group commit: one thread runs every flush. Whoever asks for a flush while one is running
/// is served by the next one, so a burst of callers costs one `fsync`. The flush is sled's synchronous one, on this thread: its async
/// variant hands each flush to sled's thread pool, whose `notify_all` wakes every pool
/// thread for every flush.
pub(super) struct Flusher {
    queue: std::sync::Mutex<Option<std::sync::mpsc::Sender<FlushWaiter>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub(super) fn start(db: sled::Db, dir: &Path) -> Result<Flusher, sled::Error> {
        let mut disk = DiskSync::open(dir).map_err(sled::Error::Io)?;
        let (tx, rx) = std::sync::mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("helix-flush".into())
            .spawn(move || {
                let mut batch = Vec::new();
                // Ends when every sender is gone (the last `Db` handle dropped).
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    batch.extend(rx.try_iter());
                    let started = std::time::Instant::now();
                    let result = db
                        .flush()
                        .and_then(|_| disk.sync().map_err(sled::Error::Io));
                    let took = started.elapsed();
                    if took >= SLOW_FLUSH {
                        tracing::warn!(
                            took_ms = took.as_millis() as u64,
                            waiting = batch.len(),
                            "slow disk: a flush of the state machine took long"
                        );
                    }
                    for tx in batch.drain(..) {
                        let result = result.as_ref().map_err(plain_io_error).copied();
                        let _ = tx.send(result.map_err(sled::Error::Io));
                    }
                }
            })
            .map_err(sled::Error::Io)?;
        Ok(Flusher {
            queue: std::sync::Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    pub(super) fn request(&self, waiter: FlushWaiter) -> Result<(), sled::Error> {
        let queue = self.queue.lock().expect("flusher lock poisoned");
        match queue.as_ref() {
            Some(tx) => tx.send(waiter).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }
}

/// A flush's error as a plain I/O error, one per waiter (`io::Error` is not `Clone`), so the
/// cause reads as the OS says it ("No space left on device (os error 28)"): the error sled
/// keeps after a failed write is a copy whose text is the original's `Debug` form.
pub(super) fn plain_io_error(e: &sled::Error) -> std::io::Error {
    let sled::Error::Io(io) = e else {
        return std::io::Error::other(e.to_string());
    };
    if let Some(code) = io.raw_os_error() {
        return std::io::Error::from_raw_os_error(code);
    }
    let text = io.to_string();
    let copied_code = text
        .strip_prefix("Os { code: ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|code| code.parse().ok());
    match copied_code {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(io.kind(), text),
    }
}

/// sled 0.34's flush writes its log file with `sync_file_range`, which waits for the write
/// to reach the device but does not flush the device's volatile write cache, and it writes
/// values too big for a log segment to files under `blobs/` without syncing them at all. A
/// power cut could thus lose a write sled reported flushed. After each of sled's flushes this
/// calls `fdatasync` on every blob file not synced yet (and on the directory that names
/// them) and then on the log file, as etcd does for its WAL.
struct DiskSync {
    log_file: std::fs::File,
    blobs_dir: PathBuf,
    /// Blob files already synced: sled never rewrites one, it writes a new one.
    synced_blobs: HashSet<OsString>,
}

impl DiskSync {
    fn open(dir: &Path) -> std::io::Result<DiskSync> {
        let log_file = std::fs::File::open(dir.join("db"))?;
        // The files sled just created are named in `dir` and in its parent.
        for d in [Some(dir), dir.parent()].into_iter().flatten() {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(DiskSync {
            log_file,
            blobs_dir: dir.join("blobs"),
            synced_blobs: HashSet::new(),
        })
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let mut present = HashSet::new();
        let mut new_blob = false;
        for entry in std::fs::read_dir(&self.blobs_dir)? {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match std::fs::File::open(self.blobs_dir.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // Replaced and removed by sled since it was listed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new_blob = true;
            }
            present.insert(name);
        }
        if new_blob {
            std::fs::File::open(&self.blobs_dir)?.sync_all()?;
        }
        self.synced_blobs = present;
        self.log_file.sync_data()
    }
}

impl Drop for Flusher {
    /// The last handle is gone: let the thread finish the flushes asked for, and end.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values too big for a log segment live in sled's `blobs/`, which sled never syncs:
    /// every flush syncs the new ones.
    #[test]
    fn flush_errors_read_as_the_os_says() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let direct = plain_io_error(&sled::Error::Io(enospc));
        assert_eq!(direct.raw_os_error(), Some(28));
        // What sled's `Clone` makes of it, as its kept global error.
        let enospc = std::io::Error::from_raw_os_error(28);
        let copy = std::io::Error::new(enospc.kind(), format!("{enospc:?}"));
        let kept = plain_io_error(&sled::Error::Io(copy));
        assert_eq!(kept.to_string(), direct.to_string());
        let other = plain_io_error(&sled::Error::Unsupported("x".into()));
        assert!(other.to_string().contains("Unsupported: x"), "{other}");
    }

    #[test]
    fn flushes_sync_new_blob_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("open sled");
        let mut disk = DiskSync::open(dir.path()).expect("open sled's files");
        disk.sync().expect("sync");
        assert!(disk.synced_blobs.is_empty());

        db.insert("big", vec![7u8; 4 << 20]).expect("insert");
        db.flush().expect("flush");
        disk.sync().expect("sync");
        assert_eq!(disk.synced_blobs.len(), 1, "the blob file was synced");

        db.insert("big", vec![8u8; 4 << 20]).expect("replace");
        db.flush().expect("flush");
        disk.sync().expect("sync");
        let on_disk = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert_eq!(
            disk.synced_blobs.len(),
            on_disk,
            "only files still there are tracked"
        );
    }
}
