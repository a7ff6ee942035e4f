//! Autopilot, on the leader: keeps `raft.max_voters` voters from the healthy members, like
//! Consul's. It grows the voter set from learners (the first to have joined vote first),
//! finishes a membership change a crash or a leader change left half done, and replaces a
//! voter that has not answered for `raft.autopilot_dead_after_ms`: first the healthiest
//! caught-up learner votes, then the dead voter becomes a learner. It also forgets the
//! records of nodes that are no longer members. One change at a time,
//! none without a quorum of reachable voters, never fewer voters than configured because of
//! a demotion. The rules are pure (`decision.rs`); replacements are recorded in the audit
//! log through Raft, which the status page also reads.

mod decision;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use self::decision::{Action, AutopilotView, MemberHealth};
use super::Cluster;
use crate::raft::MembershipChange;
use crate::state::{AutopilotAction, Command};

/// A learner at most this many entries behind the leader's log is caught up.
pub(super) const CAUGHT_UP_WITHIN: u64 = 100;

/// Runs on every node until shutdown; acts while this node leads.
pub(super) async fn run(
    cluster: Cluster,
    max_voters: usize,
    dead_after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut leading_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !cluster.is_leader() {
            leading_since = None;
            continue;
        }
        let leading_for = leading_since.get_or_insert_with(Instant::now).elapsed();
        let membership = cluster.inner.raft.status().membership;
        if let Some(target) = membership.unfinished_change() {
            let target = target.clone();
            match cluster
                .change_membership(MembershipChange::SetVoters(target.clone()), true)
                .await
            {
                Ok(()) => {
                    tracing::info!(voters = ?target, "finished an interrupted membership change")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not finish an interrupted membership change")
                }
            }
            continue;
        }
        forget_former_members(&cluster).await;
        let Some(action) = decision::decide(&view(&cluster, max_voters, dead_after, leading_for))
        else {
            continue;
        };
        if let Err(e) = act(&cluster, action).await {
            tracing::warn!(?action, error = %e, "autopilot could not change the membership");
        }
    }
}

/// Node records of nodes that are no longer members (a leader that left, a removal whose
/// last step a leader change cut short) are removed, as `helix node remove` would have.
async fn forget_former_members(cluster: &Cluster) {
    let membership = cluster.inner.raft.status().membership;
    let former: Vec<u64> = cluster.replica().read(|s| {
        s.nodes
            .keys()
            .copied()
            .filter(|&id| !membership.contains(id))
            .collect()
    });
    for id in former {
        match cluster.propose_system(Command::RemoveNode { id }).await {
            Ok(_) => tracing::info!(node = id, "forgot a node that is no longer a member"),
            Err(e) => tracing::warn!(node = id, error = %e, "could not forget a former member"),
        }
    }
}

/// What the leader knows of each member now.
fn view(
    cluster: &Cluster,
    max_voters: usize,
    dead_after: Duration,
    leading_for: Duration,
) -> AutopilotView {
    let status = cluster.inner.raft.status();
    let last_log = status.last_log_index.unwrap_or(0);
    let me = cluster.node_id();
    let members = status
        .membership
        .members()
        .map(|id| {
            let (silence, lag) = if id == me {
                (Duration::ZERO, Some(0))
            } else {
                let silence = cluster
                    .inner
                    .peers
                    .contact()
                    .since_last_answer(id)
                    .unwrap_or(leading_for);
                let matched = status.replication.get(&id).copied().flatten();
                (silence, matched.map(|m| last_log.saturating_sub(m)))
            };
            MemberHealth {
                id,
                voter: status.membership.is_voter(id),
                silence,
                lag,
            }
        })
        .collect();
    AutopilotView {
        leader: me,
        members,
        max_voters,
        dead_after,
        reachable_within: cluster.inner.tuning.reachable_within(),
        caught_up_within: CAUGHT_UP_WITHIN,
    }
}

async fn act(cluster: &Cluster, action: Action) -> Result<(), super::ClusterError> {
    match action {
        Action::Grow { learner } => {
            cluster
                .change_membership(
                    MembershipChange::PromoteToVoters(BTreeSet::from([learner])),
                    true,
                )
                .await?;
            tracing::info!(promoted = learner, "promoted learner to voter");
        }
        Action::Replace { learner, dead } => {
            cluster
                .change_membership(
                    MembershipChange::PromoteToVoters(BTreeSet::from([learner])),
                    true,
                )
                .await?;
            tracing::warn!(
                promoted = learner,
                unreachable_voter = dead,
                "autopilot: promoted a learner in place of a voter that stopped answering"
            );
            record(cluster, AutopilotAction::Promoted, learner).await;
        }
        Action::Demote { dead } => {
            cluster
                .change_membership(MembershipChange::RemoveVoters(BTreeSet::from([dead])), true)
                .await?;
            tracing::warn!(
                demoted = dead,
                "autopilot: demoted a voter that stopped answering to learner"
            );
            record(cluster, AutopilotAction::Demoted, dead).await;
        }
    }
    Ok(())
}

/// The audit entry; a failure to write it (a leader change) leaves the change itself done.
async fn record(cluster: &Cluster, action: AutopilotAction, node_id: u64) {
    if let Err(e) = cluster
        .propose_system(Command::RecordAutopilot { action, node_id })
        .await
    {
        tracing::warn!(?action, node_id, error = %e, "could not record autopilot's change");
    }
}
