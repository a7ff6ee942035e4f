//! The applied state, as the state machine, snapshots and every reader share it.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::raft::types::{LogId, NodeId, StoredMembership};
use crate::state::State;

/// The state and the log id it reflects, changed together under one lock.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub(super) state: State,
    pub(super) last_applied: Option<LogId>,
    pub(super) membership: StoredMembership,
}

/// Read access to this node's applied state, a watch that ticks on every apply, and one
/// that ticks only when what placement depends on changed.
#[derive(Clone)]
pub struct StateView {
    applied: Arc<RwLock<Applied>>,
    changes: watch::Receiver<u64>,
    placement: watch::Receiver<u64>,
}

impl StateView {
    pub(super) fn new(
        applied: Arc<RwLock<Applied>>,
        changes: watch::Receiver<u64>,
        placement: watch::Receiver<u64>,
    ) -> StateView {
        StateView {
            applied,
            changes,
            placement,
        }
    }

    /// Run `f` on the applied state (under a read lock: keep it short).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.applied.read().expect("state lock poisoned").state)
    }

    /// Run `f` on the applied state and the index it reflects, read together.
    pub fn read_at<R>(&self, f: impl FnOnce(u64, &State) -> R) -> R {
        let a = self.applied.read().expect("state lock poisoned");
        f(a.last_applied.map_or(0, |l| l.index), &a.state)
    }

    /// The index of the last applied log entry (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.applied
            .read()
            .expect("state lock poisoned")
            .last_applied
            .map_or(0, |l| l.index)
    }

    /// `node` is a member (voter or learner) as of the applied membership.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.applied
            .read()
            .expect("state lock poisoned")
            .membership
            .membership()
            .get_node(&node)
            .is_some()
    }

    /// A receiver that sees the applied index after each apply or snapshot install.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// A receiver of the placement revision: it grows with each apply or snapshot install
    /// that changed a record the scheduler's plan reads (see `state::PlacementInputs`).
    pub fn subscribe_placement(&self) -> watch::Receiver<u64> {
        self.placement.clone()
    }
}
