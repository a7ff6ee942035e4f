//! Raft's figures for `/metrics`: term, leadership and log positions from openraft's metrics
//! channel, the commit index as the log store saves it, and the apply lag between the two.

use std::sync::atomic::{AtomicU64, Ordering};

use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::watch;

use super::types::NodeId;
use crate::metrics::names;

/// The latest commit and applied indices this process saw (one node per process).
static COMMITTED: AtomicU64 = AtomicU64::new(0);
static APPLIED: AtomicU64 = AtomicU64::new(0);

/// The log store saved a new commit index.
pub(super) fn note_committed(index: u64) {
    COMMITTED.store(index, Ordering::Relaxed);
    ::metrics::gauge!(names::RAFT_COMMIT_INDEX).set(index as f64);
    set_lag();
}

fn note_applied(index: u64) {
    APPLIED.store(index, Ordering::Relaxed);
    ::metrics::gauge!(names::RAFT_APPLIED_INDEX).set(index as f64);
    set_lag();
}

fn set_lag() {
    let lag = COMMITTED
        .load(Ordering::Relaxed)
        .saturating_sub(APPLIED.load(Ordering::Relaxed));
    ::metrics::gauge!(names::RAFT_APPLY_LAG).set(lag as f64);
}

/// Follow openraft's metrics until Raft stops, counting the leaders seen.
pub(super) fn follow(mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>) {
    tokio::spawn(async move {
        let mut leader = None;
        loop {
            {
                let m = metrics.borrow_and_update();
                ::metrics::gauge!(names::RAFT_TERM).set(m.current_term as f64);
                let leads = m.state == ServerState::Leader;
                ::metrics::gauge!(names::RAFT_IS_LEADER).set(if leads { 1.0 } else { 0.0 });
                let last = m.last_log_index.unwrap_or(0);
                ::metrics::gauge!(names::RAFT_LAST_LOG_INDEX).set(last as f64);
                note_applied(m.last_applied.map_or(0, |l| l.index));
                // A leader known in a new term, or a new leader: the first one seen counts too.
                if let Some(id) = m.current_leader {
                    if leader != Some((m.current_term, id)) {
                        ::metrics::counter!(names::RAFT_LEADER_CHANGES).increment(1);
                        leader = Some((m.current_term, id));
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// One proposal, committed or not.
pub(super) fn note_proposal(committed: bool) {
    let outcome = if committed { "committed" } else { "failed" };
    ::metrics::counter!(names::RAFT_PROPOSALS, "outcome" => outcome).increment(1);
}
