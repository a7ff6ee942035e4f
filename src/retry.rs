//! Waiting between tries of a step that may succeed later (a join while the cluster elects, a
//! member that is restarting): the wait doubles up to a cap, and each retry is one log line
//! that says why and when the next try comes, instead of a line every half second.

use std::time::Duration;

use tokio::time::Instant;

pub struct Retry {
    /// What is being tried, for the log line ("join", "fetch the cluster key").
    what: &'static str,
    next_wait: Duration,
    max_wait: Duration,
    /// Tries stop after this.
    deadline: Instant,
    tries: u32,
}

impl Retry {
    /// Tries of `what` for up to `patience`, waiting 0.5 s after the first failure, then
    /// doubling up to 8 s.
    pub fn new(what: &'static str, patience: Duration) -> Retry {
        Retry {
            what,
            next_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(8),
            deadline: Instant::now() + patience,
            tries: 0,
        }
    }

    /// After a failed try for `reason`: logs it and waits, or returns `false` when the
    /// patience is spent (the caller reports `reason` as final).
    pub async fn wait(&mut self, reason: &str) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        self.tries += 1;
        let wait = self.next_wait.min(self.deadline - now);
        tracing::warn!(
            "{} failed (try {}): {reason}; retrying in {:.1} s",
            self.what,
            self.tries,
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
        self.next_wait = (self.next_wait * 2).min(self.max_wait);
        true
    }
}

/// The innermost cause of an error, which is where "connection refused" or "timed out"
/// lives (reqwest's own message is only "error sending request for url (...)").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_cap_and_stop_at_the_deadline() {
        let mut retry = Retry::new("test", Duration::from_secs(20));
        let start = Instant::now();
        let mut waits = Vec::new();
        loop {
            let before = Instant::now();
            if !retry.wait("no").await {
                break;
            }
            waits.push(Instant::now() - before);
        }
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 4.5], "{secs:?}");
        assert_eq!(Instant::now() - start, Duration::from_secs(20));
    }

    #[test]
    fn the_root_cause_is_the_innermost_error() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = anyhow::Error::new(io).context("error sending request");
        assert_eq!(root_cause(outer.as_ref()), "connection refused");
    }
}
