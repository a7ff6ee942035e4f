//! Waiting on state: poll with a deadline, never sleep for a fixed time and hope.

use std::thread;
use std::time::{Duration, Instant};

/// Default deadline for waiting on cluster state (loaded 2-core CI machines).
pub const WAIT: Duration = Duration::from_secs(60);
/// Poll interval of the wait helpers.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Ok`, or panics after `timeout` with `what` and the last `Err`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {:.1}s waiting until {what}; last observed: {last}",
                start.elapsed().as_secs_f64()
            );
        }
        thread::sleep(POLL);
    }
}

/// Polls `f` until it returns true, or panics after `timeout` naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        if f() {
            Ok(())
        } else {
            Err("condition false".into())
        }
    })
}

/// Checks `f` again and again for `period`: that something does NOT happen can only be
/// seen by watching for a while. Panics at the first `Err`.
pub fn assert_holds_for(period: Duration, what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        if let Err(e) = f() {
            panic!(
                "after {:.1}s, no longer true that {what}: {e}",
                start.elapsed().as_secs_f64()
            );
        }
        if start.elapsed() >= period {
            return;
        }
        thread::sleep(POLL);
    }
}
