//! Warnings a client can cause by the thousand (refused connections, rejected requests): log
//! one every few seconds and say how many were held back, so an attack shows in the log
//! without flooding it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Rate-limits one kind of warning; keep one per kind (a `static`, or a field).
///
/// ```
/// # use std::time::Duration;
/// # use helix::server::WarnLimiter;
/// static REJECTED: WarnLimiter = WarnLimiter::new(Duration::from_secs(5));
/// if let Some(suppressed) = REJECTED.check() {
///     tracing::warn!(suppressed, "rejected a peer request without the cluster credential");
/// }
/// ```
#[derive(Debug)]
pub struct WarnLimiter {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// At most one warning per `every`.
    pub const fn new(every: Duration) -> Self {
        WarnLimiter {
            every,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were held back since
    /// the last one; `None` (and counted) when this one must be held back.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock leaves the counts usable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_then_the_count_of_those_held_back() {
        let limiter = WarnLimiter::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(t0), Some(0));
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(4)), None);
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(5)), Some(2));
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(6)), None);
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(20)), Some(1));
    }
}
