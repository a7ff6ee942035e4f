//! The fence: a node that no quorum of voters has been in touch with for
//! `runner.fence_after_ms` stops its slots, because the leader on the other side will move
//! them after `runner.node_lost_after_ms` and the model must not run twice. The config makes
//! the loss time long enough for the fence and the stop grace to come first
//! (`config::runner_tuning`). Once in touch again, the node catches up with the leader before
//! it starts anything: the slots may have moved meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many slots the fence holds stopped now, if it is up: the reconciler says, `/readyz`
/// tells. Cheap to clone; every clone is the same.
#[derive(Debug, Clone, Default)]
pub struct Fenced(Arc<Mutex<Option<usize>>>);

impl Fenced {
    /// `Some(n)` while the fence is up, holding `n` slots stopped.
    pub fn slots(&self) -> Option<usize> {
        *self.0.lock().expect("fence lock poisoned")
    }

    pub(super) fn set(&self, slots: Option<usize>) {
        *self.0.lock().expect("fence lock poisoned") = slots;
    }
}

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
    fenced: bool,
}

impl Fence {
    pub fn new(after: Duration) -> Fence {
        Fence {
            after,
            fenced: false,
        }
    }

    /// Whether a look now would fence: then the caller first asks the leader afresh, so a
    /// node that was only paused (SIGSTOP, a stalled VM) keeps its processes.
    pub fn would_fence(&self, quorum_silence: Duration) -> bool {
        !self.fenced && quorum_silence >= self.after
    }

    /// The verdict for a node that no quorum has been in touch with for `quorum_silence`.
    pub fn look(&mut self, quorum_silence: Duration) -> Verdict {
        if quorum_silence < self.after {
            return if self.fenced {
                Verdict::Rejoining
            } else {
                Verdict::InTouch
            };
        }
        self.fenced = true;
        let silent = if quorum_silence == Duration::MAX {
            "since it started".to_string()
        } else {
            format!("for {} ms", quorum_silence.as_millis())
        };
        Verdict::Fenced(format!(
            "fenced: no quorum of voters has been in touch with this node {silent} \
             (runner.fence_after_ms = {}), so it stopped the slot before the leader may start \
             it elsewhere; it starts again here once the node is back and the slot is still \
             placed here",
            self.after.as_millis()
        ))
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
    fn a_silence_past_the_fence_time_fences_until_the_node_has_caught_up() {
        let mut fence = Fence::new(AFTER);
        assert!(!fence.would_fence(ms(2399)));
        assert_eq!(fence.look(ms(2399)), Verdict::InTouch);
        assert!(fence.would_fence(ms(2650)));
        let Verdict::Fenced(reason) = fence.look(ms(2650)) else {
            panic!("a silence past the fence time is fenced");
        };
        assert!(reason.contains("2650 ms") && reason.contains("runner.fence_after_ms = 2400"));
        // Fenced already: nothing more to confirm.
        assert!(!fence.would_fence(ms(9000)));
        assert!(matches!(fence.look(ms(9000)), Verdict::Fenced(_)));
        // In touch again: not running before catching up.
        assert_eq!(fence.look(ms(10)), Verdict::Rejoining);
        assert_eq!(fence.look(ms(60)), Verdict::Rejoining);
        fence.lift();
        assert_eq!(fence.look(ms(10)), Verdict::InTouch);
    }

    #[test]
    fn a_node_that_never_had_a_quorum_says_so() {
        let Verdict::Fenced(reason) = Fence::new(AFTER).look(Duration::MAX) else {
            panic!("fenced");
        };
        assert!(reason.contains("since it started"), "{reason}");
    }
}
