//! Secrets: reading the ones a node writes, making distinct test tokens, and checking that
//! no token value leaks into a file, a log, or a response.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::cluster::Cluster;

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A secret file a node wrote (`admin.key`, `join.token`), trimmed; panics when empty.
pub fn read_secret(p: &Path) -> String {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let s = s.trim().to_string();
    assert!(!s.is_empty(), "{} is empty", p.display());
    s
}

/// A Hugging Face token that cannot be mistaken for any other one in the test run.
pub fn secret(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "hf_itest_{label}_{:x}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Cluster {
    /// No secret in any file of the test (every node's data dir with its Raft log, sled and
    /// vLLM logs; every node's output; the launch records) nor in any response body the
    /// test's clients received.
    pub fn assert_no_leaks(&self, secrets: &[&str]) {
        let files = files_under(self.root());
        let in_data_dirs = files
            .iter()
            .filter(|f| self.nodes.iter().any(|n| f.starts_with(&n.data_dir)))
            .count();
        assert!(
            in_data_dirs > 0,
            "no files under the data dirs: nothing to scan"
        );
        for f in &files {
            // A node may remove a file between the listing and the read.
            let bytes = fs::read(f).unwrap_or_default();
            for s in secrets {
                assert!(
                    !contains_bytes(&bytes, s.as_bytes()),
                    "a token ({}...) was found in {}",
                    &s[..s.len().min(16)],
                    f.display()
                );
            }
        }
        let bodies = self.transcript.entries();
        assert!(!bodies.is_empty(), "no responses were recorded");
        for (what, body) in &bodies {
            for s in secrets {
                assert!(
                    !contains_bytes(body, s.as_bytes()),
                    "a token ({}...) was found in the response to {what}",
                    &s[..s.len().min(16)]
                );
            }
        }
    }
}
