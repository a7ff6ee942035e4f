//! A node's disk under test: its data dir on a small tmpfs (full disks), and the debug
//! build's fault files (a slow disk, a jumped clock; see `src/test_faults.rs`).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// What helix promises: a node is gone within this long of SIGTERM.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);

/// A tmpfs mounted over a directory for the test; unmounted when dropped, test failed or
/// not (lazily: a node of a failed test may still hold files there).
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root: it mounts a small tmpfs as a node's data dir, and \
             `mount -t tmpfs` on {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Moves node `k`'s data dir onto a tmpfs of `size` (`16m`): SIGTERM (which must end the
/// healthy node in time, with status 0), copy, restart.
pub fn move_to_tmpfs(c: &mut Cluster, k: usize, size: &str) -> Tmpfs {
    let started = Instant::now();
    let st = c.terminate(k, STOP_WITHIN);
    assert_eq!(
        st.code(),
        Some(0),
        "a healthy node exits 0 after SIGTERM: {st}"
    );
    assert!(started.elapsed() < STOP_WITHIN);

    let data = c.node(k).data_dir.clone();
    let saved = c.root().join(format!("node{k}-data-saved"));
    fs::rename(&data, &saved).unwrap();
    fs::create_dir(&data).unwrap();
    let tmpfs = Tmpfs::mount(&data, size);
    copy_tree(&saved, &data);
    c.restart(k);
    tmpfs
}

/// Fills the filesystem of `dir` with one file; returns its path.
pub fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).expect("create the filler");
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last partial chunk may have taken a few pages; what is left is less than a chunk.
    let _ = f.flush();
    path
}

/// A fault file a debug-build node re-reads at every use: one whole number of milliseconds.
pub struct FaultFile {
    pub path: PathBuf,
}

impl FaultFile {
    /// `name` in the test's `dir`, holding nothing yet (no fault).
    pub fn new(dir: &Path, name: &str) -> FaultFile {
        FaultFile {
            path: dir.join(name),
        }
    }

    /// Replaces the value at once (write and rename), so the node never reads half of it.
    pub fn set_ms(&self, ms: i64) {
        let next = self.path.with_extension("next");
        fs::write(&next, ms.to_string()).expect("write the fault file");
        fs::rename(&next, &self.path).expect("rename the fault file");
    }
}
