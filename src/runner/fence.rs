//! The fence: a node that no quorum of voters has been in touch with for
//! `runner.fence_after_ms` stops its slots, because the leader on the other side will move
//! them after `runner.node_lost_after_ms` and the model must not run twice. The config makes
//! the loss time long enough for the fence and the stop grace to come first
//! (`config::runner_tuning`). Once in touch again, the node catches up with the leader before
//! it starts anything: the slots may have moved meanwhile.

use std::time::Duration;

use tokio::time::Instant;

/// How long the silence must still last at a second look before the fence acts: a node that
/// was only paused (SIGSTOP, a stalled VM) hears from its leader within this after it runs
/// again, and keeps its processes. With the reconciler's tick it is `config::FENCE_SLACK`.
pub const CONFIRM: Duration = Duration::from_millis(200);

/// What the reconciler does with its slots now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run what is placed here.
    InTouch,
    /// Stop every slot, for this reason.
    Fenced(String),
    /// In touch again after a fence: catch up with the leader, then [`Fence::lift`].
    Rejoining,
}

#[derive(Debug)]
pub struct Fence {
    after: Duration,
    /// When a look first saw the silence at or past `after`.
    over_since: Option<Instant>,
    fenced: bool,
}

impl Fence {
    pub fn new(after: Duration) -> Fence {
        Fence {
            after,
            over_since: None,
            fenced: false,
        }
    }

    /// The verdict for a node that no quorum has been in touch with for `quorum_silence`.
    pub fn look(&mut self, quorum_silence: Duration, now: Instant) -> Verdict {
        if quorum_silence < self.after {
            self.over_since = None;
            return if self.fenced {
                Verdict::Rejoining
            } else {
                Verdict::InTouch
            };
        }
        let since = *self.over_since.get_or_insert(now);
        if self.fenced || now.duration_since(since) >= CONFIRM {
            self.fenced = true;
            let silent = if quorum_silence == Duration::MAX {
                "since it started".to_string()
            } else {
                format!("for {} ms", quorum_silence.as_millis())
            };
            return Verdict::Fenced(format!(
                "fenced: no quorum of voters has been in touch with this node {silent} \
                 (runner.fence_after_ms = {}), so it stopped the slot before the leader may \
                 start it elsewhere; it starts again here once the node is back and the slot \
                 is still placed here",
                self.after.as_millis()
            ));
        }
        Verdict::InTouch
    }

    /// The node caught up with the leader after a fence: run what is placed here again.
    pub fn lift(&mut self) {
        self.fenced = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_millis(2400);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_silence_that_lasts_fences_until_the_node_has_caught_up() {
        let mut fence = Fence::new(AFTER);
        let t0 = Instant::now();
        assert_eq!(fence.look(ms(2000), t0), Verdict::InTouch);
        // Past the fence time it looks once more before it acts.
        assert_eq!(fence.look(ms(2400), t0 + ms(400)), Verdict::InTouch);
        let Verdict::Fenced(reason) = fence.look(ms(2650), t0 + ms(650)) else {
            panic!("a silence that lasted is fenced");
        };
        assert!(reason.contains("2650 ms") && reason.contains("runner.fence_after_ms = 2400"));
        assert!(matches!(
            fence.look(ms(9000), t0 + ms(7000)),
            Verdict::Fenced(_)
        ));
        // In touch again: not running before catching up.
        assert_eq!(fence.look(ms(10), t0 + ms(7100)), Verdict::Rejoining);
        assert_eq!(fence.look(ms(60), t0 + ms(7150)), Verdict::Rejoining);
        fence.lift();
        assert_eq!(fence.look(ms(10), t0 + ms(7200)), Verdict::InTouch);
    }

    #[test]
    fn a_paused_node_that_is_back_at_the_second_look_keeps_its_slots() {
        let mut fence = Fence::new(AFTER);
        let t0 = Instant::now();
        // The first look after a long pause sees the silence of the pause itself.
        assert_eq!(fence.look(ms(30_000), t0), Verdict::InTouch);
        assert_eq!(fence.look(ms(40), t0 + ms(250)), Verdict::InTouch);
        assert_eq!(fence.look(ms(2500), t0 + ms(2700)), Verdict::InTouch);
    }

    #[test]
    fn a_node_that_never_had_a_quorum_says_so() {
        let mut fence = Fence::new(AFTER);
        let t0 = Instant::now();
        fence.look(Duration::MAX, t0);
        let Verdict::Fenced(reason) = fence.look(Duration::MAX, t0 + CONFIRM) else {
            panic!("fenced");
        };
        assert!(reason.contains("since it started"), "{reason}");
    }
}
