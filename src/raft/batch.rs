//! Group commit at the log-entry level: concurrent proposals share one Raft entry.
//!
//! openraft 0.9 appends one entry per `client_write` and waits for each append to be flushed
//! (inside `RaftCore`, before it looks at the next request), so without help every write
//! costs the leader its own flush and the log store never sees two appends to flush
//! together. Here at most [`MAX_IN_FLIGHT`] entries are proposed at a time; proposals that
//! arrive meanwhile wait and then go out together as one [`Batch`] entry (one append, one
//! flush on each member, one replication round), each answered with its own outcome. A lone
//! write is proposed at once, as a batch of one, from the caller's own task.

// The error is openraft's `RaftError`, handed on as it is (as `client_write` does).
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;

use openraft::error::{ClientWriteError, Fatal};
use openraft::BasicNode;
use tokio::sync::oneshot;

use std::sync::{Arc, Mutex};

use super::types::{Batch, NodeId, TypeConfig};
use crate::state::{Outcome, Proposal};

/// Entries proposed and not yet answered. With one, the next entry gathers every proposal
/// that arrives while the current one commits: on a CPU-bound machine bigger batches beat
/// overlapping the leader's flush with replication (measured on 2 cores: 3-8% more writes/s
/// at 16 clients than with two in flight, the same single-client latency).
pub const MAX_IN_FLIGHT: usize = 1;
/// Most proposals in one entry.
pub const MAX_BATCH: usize = 512;

/// openraft's answer to the entry that carried a proposal.
pub(super) type ProposeError =
    openraft::error::RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

/// A committed proposal: the index of the entry that carried it and what `apply` answered.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub log_index: u64,
    pub outcome: Outcome,
}

type Answer = Result<Proposed, ProposeError>;
type Waiting = (Proposal, oneshot::Sender<Answer>);

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    in_flight: usize,
}

/// Proposes through openraft, batching as described above. Cheap to clone.
#[derive(Clone)]
pub(super) struct Proposer {
    raft: openraft::Raft<TypeConfig>,
    queue: Arc<Mutex<Queue>>,
}

/// Hands the caller's in-flight slot on when its entry is answered, or when its future is
/// dropped (a timeout, a client gone): the next batch starts, or the slot is freed.
struct Slot<'a>(&'a Proposer);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.pass_slot_on();
    }
}

impl Proposer {
    pub(super) fn new(raft: openraft::Raft<TypeConfig>) -> Proposer {
        Proposer {
            raft,
            queue: Arc::default(),
        }
    }

    /// Commit `proposal` (this node must lead), sharing a log entry with the proposals
    /// that arrive while earlier entries are in flight.
    pub(super) async fn propose(&self, proposal: Proposal) -> Answer {
        let mut proposal = Some(proposal);
        let waiting = {
            let mut queue = self.queue.lock().expect("proposal queue poisoned");
            if queue.in_flight < MAX_IN_FLIGHT && queue.waiting.is_empty() {
                queue.in_flight += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                queue.waiting.extend(proposal.take().map(|p| (p, tx)));
                Some(rx)
            }
        };
        match (waiting, proposal) {
            (None, Some(proposal)) => {
                let _slot = Slot(self);
                let mut answers = self.submit(vec![proposal]).await;
                answers
                    .pop()
                    .unwrap_or(Err(openraft::error::RaftError::Fatal(Fatal::Panicked)))
            }
            (None, None) => Err(openraft::error::RaftError::Fatal(Fatal::Panicked)),
            // The sender is dropped only when the runtime shuts down under the batch.
            (Some(rx), _) => rx
                .await
                .unwrap_or(Err(openraft::error::RaftError::Fatal(Fatal::Stopped))),
        }
    }

    /// Propose `proposals` as one entry; one answer per proposal, in order.
    async fn submit(&self, proposals: Vec<Proposal>) -> Vec<Answer> {
        let n = proposals.len();
        match self.raft.client_write(Batch(proposals)).await {
            Ok(response) => {
                let log_index = response.log_id.index;
                let mut answers: Vec<Answer> = response
                    .data
                    .into_iter()
                    .map(|outcome| Ok(Proposed { log_index, outcome }))
                    .collect();
                // `apply` answers every proposal of a batch; anything else is a bug.
                answers.resize_with(n, || {
                    Err(openraft::error::RaftError::Fatal(Fatal::Panicked))
                });
                answers
            }
            Err(e) => vec![Err(e); n],
        }
    }

    /// An entry was answered: propose the next batch in its place, or free the slot.
    fn pass_slot_on(&self) {
        if let Some(batch) = self.next_batch() {
            let proposer = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(proposer.drive(batch));
                }
                // No runtime any more: the waiters learn it from their dropped senders.
                Err(_) => drop(batch),
            }
        }
    }

    /// The next batch to propose, keeping the caller's slot; `None` frees the slot.
    fn next_batch(&self) -> Option<Vec<Waiting>> {
        let mut queue = self.queue.lock().expect("proposal queue poisoned");
        if queue.waiting.is_empty() {
            queue.in_flight -= 1;
            return None;
        }
        let n = queue.waiting.len().min(MAX_BATCH);
        Some(queue.waiting.drain(..n).collect())
    }

    /// Propose batches until nobody is waiting, answering each waiter.
    async fn drive(self, mut batch: Vec<Waiting>) {
        loop {
            let (proposals, senders): (Vec<Proposal>, Vec<_>) = batch.into_iter().unzip();
            let answers = self.submit(proposals).await;
            for (tx, answer) in senders.into_iter().zip(answers) {
                // A waiter that gave up (timeout, client gone) no longer listens.
                let _ = tx.send(answer);
            }
            match self.next_batch() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }
}
