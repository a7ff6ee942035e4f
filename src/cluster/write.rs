//! Writes: every change is a proposal committed through the leader, which stamps its time.

use std::time::Duration;

use tokio::sync::watch;

use super::quorum::Action;
use super::{Cluster, ClusterError};
use crate::peer::Written;
use crate::raft::RaftError;
use crate::state::{Command, Proposal, Reply, StateError};

impl From<RaftError> for ClusterError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader { leader } => ClusterError::NotLeader { leader_id: leader },
            // Retrying could apply it twice: the caller must look before it writes again.
            RaftError::LeadershipMoved { leader } => ClusterError::Unavailable(format!(
                "leadership moved while the write was in flight{}; it may or may not be \
                 applied: read before retrying",
                leader.map_or(String::new(), |l| format!(" (node {l} leads now)"))
            )),
            // Not confirmed as leader this time (a loaded machine, a slow peer): retried
            // like a missing leader, until the timeout.
            RaftError::NotConfirmed => ClusterError::NotLeader { leader_id: None },
            RaftError::ChangeInProgress | RaftError::ChangeRefused(_) => {
                ClusterError::Conflict(e.to_string())
            }
            RaftError::StorageFailed(_) | RaftError::Stopped(_) => {
                ClusterError::Unavailable(e.to_string())
            }
        }
    }
}

impl Cluster {
    /// Commit a change the cluster makes by itself (bootstrap, membership and runner
    /// bookkeeping), with no user behind it.
    pub async fn propose_system(&self, command: Command) -> Result<Reply, ClusterError> {
        let written = self.write(stamped(None, command)).await?;
        written.outcome.map_err(ClusterError::Refused)
    }

    /// [`Cluster::propose_system`] on this node, which must be the leader.
    pub(super) async fn propose_system_here(
        &self,
        command: Command,
    ) -> Result<Reply, ClusterError> {
        let written = self.write_local(stamped(None, command)).await?;
        written.outcome.map_err(ClusterError::Refused)
    }

    /// Commit `command` for the user whose API key hashes to `key_hash`, and wait until
    /// this node has applied it, so the caller's next read here shows it. Whether the user
    /// may, and that the command is well formed, is checked here first (fail fast, before a
    /// Raft round) and again by `apply` at commit time, where a key revoked meanwhile fails
    /// on every node alike.
    pub async fn commit_as(&self, key_hash: &str, command: Command) -> Result<Reply, ClusterError> {
        self.check_current(|state| match state.user_by_key_hash(key_hash) {
            Some(user) => state
                .authorize(user, &command)
                .and_then(|()| command.validate()),
            None => Err(StateError::Unauthenticated),
        })
        .await
        .map_err(ClusterError::Refused)?;
        let written = self
            .write(stamped(Some(key_hash.to_string()), command))
            .await?;
        let reply = written.outcome.map_err(ClusterError::Refused)?;
        self.wait_applied(written.log_index).await?;
        Ok(reply)
    }

    /// Commit `proposal` through whoever leads, waiting at most the write timeout.
    async fn write(&self, proposal: Proposal) -> Result<Written, ClusterError> {
        self.on_leader(
            Action::Write,
            |c| {
                let proposal = proposal.clone();
                async move { c.write_local(proposal).await }
            },
            |peers, leader, addr, remaining| {
                let proposal = proposal.clone();
                async move { peers.write(leader, &addr, &proposal, remaining).await }
            },
        )
        .await
    }

    /// Propose on this node, which must be the leader: local writes and those forwarded by
    /// other members all end here. Concurrent proposals share a log entry (group commit).
    pub(super) async fn write_local(&self, proposal: Proposal) -> Result<Written, ClusterError> {
        // Whatever time the proposer sent is overwritten: a member whose clock is far off
        // (or lying) gets the leader's.
        let proposal = Proposal {
            at_ms: self.inner.clock.now_ms(),
            ..proposal
        };
        let proposed = self.inner.raft.propose(proposal).await?;
        Ok(Written {
            log_index: proposed.log_index,
            outcome: proposed.outcome,
        })
    }

    /// Wait until this node has applied `index` (after a write, so the answer shows it).
    async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        let timeout = self.inner.tuning.write_timeout;
        if self
            .inner
            .raft
            .wait_applied(index, timeout, "apply own write")
            .await
        {
            Ok(())
        } else {
            Err(ClusterError::Unavailable(format!(
                "the write was committed at index {index} but this node has not applied it \
                 within {timeout:?}"
            )))
        }
    }
}

/// A proposal by `actor` (a key hash; `None`: the cluster itself). Stamped now, though the
/// leader stamps it again with its own clock: a leader of an older version does not.
fn stamped(actor: Option<String>, command: Command) -> Proposal {
    Proposal {
        actor,
        at_ms: crate::time::now_ms(),
        command,
    }
}

/// How often every node reads its leader clock, leading or not.
const CLOCK_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Reads the leader clock every [`CLOCK_SAMPLE_EVERY`] until shutdown, so that a step of the
/// wall clock is seen when it happens: seen first at a proposal after a quiet hour, it would
/// be followed at twice the pace of that whole hour.
pub(super) async fn sample_clock(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLOCK_SAMPLE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        cluster.inner.clock.now_ms();
    }
}
