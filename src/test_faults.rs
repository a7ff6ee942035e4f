//! Faults a test injects into a running node: a slow disk and a jumped wall clock. Debug
//! builds only: a release build never reads the variables below (these functions are
//! constants there), so no setting can switch them on in production.
//!
//! Each variable names a file holding one integer (milliseconds), read again at every use,
//! so a test changes the fault while the node runs. No variable, no file or an empty file:
//! no fault.

use std::time::Duration;

/// Names a file: milliseconds each write of the Raft log waits before it starts (a slow
/// disk, on the way to every acknowledgement).
pub const FLUSH_DELAY_FILE: &str = "HELIX_TEST_FLUSH_DELAY_MS_FILE";
/// Names a file: milliseconds added to this node's wall clock, negative for behind.
pub const CLOCK_OFFSET_FILE: &str = "HELIX_TEST_CLOCK_OFFSET_MS_FILE";

/// How long the next write of the Raft log waits before it starts.
pub fn flush_delay() -> Duration {
    Duration::from_millis(read_ms(FLUSH_DELAY_FILE).max(0) as u64)
}

/// How far this node's wall clock is off.
pub fn clock_offset_ms() -> i64 {
    read_ms(CLOCK_OFFSET_FILE)
}

#[cfg(debug_assertions)]
fn read_ms(var: &str) -> i64 {
    let Some(path) = std::env::var_os(var) else {
        return 0;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => panic!("{var}: cannot read {}: {e}", path.to_string_lossy()),
    };
    let text = text.trim();
    if text.is_empty() {
        return 0;
    }
    text.parse().unwrap_or_else(|_| {
        panic!(
            "{var}: {} holds {text:?}, not a whole number of milliseconds",
            path.to_string_lossy()
        )
    })
}

#[cfg(not(debug_assertions))]
fn read_ms(_var: &str) -> i64 {
    0
}
