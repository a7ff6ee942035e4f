//! When each peer's Raft last answered one of our Raft RPCs with success (an error from a
//! stopped core is no contact). The leader heartbeats every member, so on the leader this
//! says who is reachable (and, for the runner, who is lost).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::raft::NodeId;

#[derive(Clone, Default)]
pub struct PeerContact {
    last_answer: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
}

impl PeerContact {
    pub(super) fn record(&self, target: NodeId) {
        self.last_answer
            .lock()
            .expect("peer contact lock poisoned")
            .insert(target, Instant::now());
    }

    /// How long ago `target` last answered us, if it ever did.
    pub fn since_last_answer(&self, target: NodeId) -> Option<Duration> {
        self.last_answer
            .lock()
            .expect("peer contact lock poisoned")
            .get(&target)
            .map(|t| t.elapsed())
    }
}
