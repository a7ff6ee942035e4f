//! Whether this node is in touch with a quorum of voters, and what follows when it is not:
//! a leader steps down (etcd's check-quorum), requests fail fast, the runner fences its slots.
//!
//! How long since a quorum was last with this node ([`Cluster::quorum_silence`]):
//! - on the leader, since a majority of the voters (itself included; of each configuration
//!   during a change) last answered one of its Raft messages, which it sends every heartbeat;
//! - elsewhere, since the leader last heard from this node, as the leader says when asked
//!   (every leader lease, [`keep_in_touch`]), or since a majority of the voters last granted
//!   one of its pre-vote rounds, whichever is later. Hearing from the leader is not enough:
//!   over a link cut one way the leader stops hearing from this node, and after
//!   `runner.node_lost_after_ms` moves its slots, while the node still hears it. A follower
//!   in the majority after its leader died stays in touch through the election (the others
//!   grant it, having no leader either); one cut off hears neither.
//!
//! A node is **cut off** once that silence reaches the stall tolerance
//! ([`RaftTuning::reachable_within`](crate::config::RaftTuning::reachable_within), four
//! election timeouts), not a single election timeout: openraft's core sends no heartbeat
//! while a log flush is under way, so a leader whose disk stalls briefly is silent without
//! being cut off, and the pre-vote already lets such a leader veto elections for that long.
//! Past the tolerance the majority no longer waits for it, and neither does it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Cluster, ClusterError};
use crate::raft::NodeId;

/// What a request forwarded to the leader does, for the words of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Write,
    Read,
}

impl Action {
    pub(super) fn noun(self) -> &'static str {
        match self {
            Action::Write => "write",
            Action::Read => "linearizable read",
        }
    }
}

impl Cluster {
    /// How long since this node last knew a quorum of voters was with it (see the module).
    pub fn quorum_silence(&self) -> Duration {
        let status = self.inner.raft.status();
        let contact = self.inner.peers.contact();
        let answered = quorum_answered(self.node_id(), status.membership.configs(), |voter| {
            contact.since_last_answer(voter)
        });
        if status.is_leader {
            return answered.unwrap_or(Duration::MAX);
        }
        let contact = &self.inner.leader_contact;
        contact
            .leader_silence_of_us()
            .min(contact.pre_vote_quorum_silence())
    }

    /// Why this node is cut off from the quorum, if it is: then it knows that it can neither
    /// lead nor reach a leader.
    pub fn cut_off(&self) -> Option<String> {
        let tolerance = self.inner.tuning.reachable_within();
        let silence = self.quorum_silence();
        (silence >= tolerance).then(|| {
            format!(
                "this node is cut off: no quorum of voters has been in touch with it for {} \
                 (tolerance {} ms)",
                describe_silence(silence),
                tolerance.as_millis()
            )
        })
    }

    /// Asks the leader now, waiting at most a leader lease, when it last heard from this node:
    /// a node whose knowledge is old (its process was paused) learns that it is in touch
    /// before it acts on being cut off. Nothing to ask without a leader, or on the leader.
    pub async fn refresh_contact(&self) {
        let me = self.node_id();
        let Some(leader) = self.inner.raft.leader().filter(|&l| l != me) else {
            return;
        };
        let Some(addr) = self.inner.raft.peer_addr(leader) else {
            return;
        };
        let answer = self
            .inner
            .peers
            .progress(leader, &addr, self.inner.tuning.leader_lease())
            .await;
        let heard_ms = match answer {
            Ok(Ok(p)) => p.members.get(&me).and_then(|m| m.since_last_answer_ms),
            _ => None,
        };
        if let Some(at) =
            heard_ms.and_then(|ms| Instant::now().checked_sub(Duration::from_millis(ms)))
        {
            self.inner.leader_contact.leader_heard_us_at(at);
        }
    }

    /// [`Cluster::cut_off`], confirmed with the leader when it says so.
    pub(super) async fn confirmed_cut_off(&self) -> Option<String> {
        self.cut_off()?;
        self.refresh_contact().await;
        self.cut_off()
    }

    /// The refusal of a request on a node that is cut off, naming the leader it last knew.
    pub(super) fn refuse_cut_off(&self, action: Action, reason: String) -> ClusterError {
        let what = match action {
            Action::Write => "the write cannot be committed here",
            Action::Read => {
                "a linearizable read cannot be confirmed here (a stale read, ?stale=true, can)"
            }
        };
        let leader = match self.inner.raft.leader().filter(|&l| l != self.node_id()) {
            Some(leader) => {
                let api = self
                    .replica()
                    .read(|s| s.nodes.get(&leader).map(|n| n.api_addr.clone()));
                match api {
                    Some(addr) => format!("the last leader it knew is node {leader} at {addr}"),
                    None => format!("the last leader it knew is node {leader}"),
                }
            }
            None => "it knows no leader".to_string(),
        };
        ClusterError::Unavailable(format!("{reason}; {what}; {leader}"))
    }
}

/// Runs on every node until shutdown: a leader that a quorum has not answered within the
/// stall tolerance steps down, in its own term (see [`crate::raft::Raft::step_down`]), so it
/// stops replicating into the void and answers as a follower that knows no leader.
pub(super) async fn check_quorum(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    let tuning = cluster.inner.tuning.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tuning.heartbeat) => {}
            _ = shutdown.changed() => return,
        }
        if !cluster.is_leader() {
            continue;
        }
        let Some(reason) = cluster.cut_off() else {
            continue;
        };
        // A core stalled on its disk answers only once the flush is done: the step-down
        // then waits in its queue, and this loop keeps checking meanwhile.
        match tokio::time::timeout(tuning.leader_lease(), cluster.inner.raft.step_down()).await {
            Ok(Ok(true)) => tracing::warn!(
                term = cluster.inner.raft.status().term,
                "stepped down from leading: {reason}; requests here fail at once until a \
                 quorum is back"
            ),
            Ok(Ok(false)) | Err(_) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not step down"),
        }
    }
}

/// Runs on every node until shutdown: a node that follows asks its leader, every leader
/// lease, when the leader last heard from it. A question lost on the way, or its answer,
/// leaves the silence growing.
pub(super) async fn keep_in_touch(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    let lease = cluster.inner.tuning.leader_lease();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease) => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = cluster.refresh_contact() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Since when a majority of every voter configuration has answered: in each, the silence of
/// the voter that completes a majority when voters are taken freshest first (`me` counts as
/// answering now). `None` while some configuration never had a majority answer.
pub fn quorum_answered(
    me: NodeId,
    configs: &[BTreeSet<NodeId>],
    since_last_answer: impl Fn(NodeId) -> Option<Duration>,
) -> Option<Duration> {
    let mut longest = Duration::ZERO;
    for voters in configs {
        let mut silences: Vec<Duration> = voters
            .iter()
            .filter_map(|&v| {
                if v == me {
                    Some(Duration::ZERO)
                } else {
                    since_last_answer(v)
                }
            })
            .collect();
        silences.sort();
        let majority = voters.len() / 2 + 1;
        longest = longest.max(*silences.get(majority - 1)?);
    }
    Some(longest)
}

fn describe_silence(silence: Duration) -> String {
    if silence == Duration::MAX {
        "as long as it has run".to_string()
    } else {
        format!("{} ms", silence.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn the_voter_that_completes_a_majority_sets_the_silence() {
        let voters = vec![BTreeSet::from([1, 2, 3])];
        let silence = |v| match v {
            2 => ms(900),
            3 => ms(40),
            _ => None,
        };
        // Node 1 and node 3 are a majority: node 3's 40 ms counts, node 2 lagging does not.
        assert_eq!(quorum_answered(1, &voters, silence), ms(40));
        // Node 3 alone (node 1 is away, node 2 slow): it needs node 2 too.
        let from_3 = |v| match v {
            1 => None,
            2 => ms(900),
            _ => None,
        };
        assert_eq!(quorum_answered(3, &voters, from_3), ms(900));
    }

    #[test]
    fn a_cut_off_leader_has_no_majority_and_a_lone_voter_always_has() {
        let voters = vec![BTreeSet::from([1, 2, 3, 4, 5])];
        let two_answer = |v| (v == 2).then(|| Duration::from_millis(10));
        assert_eq!(quorum_answered(1, &voters, two_answer), None);
        assert_eq!(
            quorum_answered(7, &[BTreeSet::from([7])], |_| None),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn during_a_change_every_configuration_needs_its_majority() {
        let configs = vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([1, 4, 5])];
        let silence = |v| match v {
            2 => ms(10),
            4 => ms(700),
            _ => None,
        };
        assert_eq!(quorum_answered(1, &configs, silence), ms(700));
        assert_eq!(
            quorum_answered(1, &configs, |v| (v == 2).then_some(Duration::ZERO)),
            None
        );
    }
}
