//! On the leader: grow the voter set from healthy learners up to `raft.max_voters`.
//! New members always join as learners first, so they catch up before they count.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::sync::watch;

use super::Cluster;

pub async fn maintain(cluster: Cluster, max_voters: usize, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !cluster.is_leader() {
            continue;
        }
        let membership = cluster.raft.metrics().borrow().membership_config.clone();
        let m = membership.membership();
        // A joint configuration left behind (a change interrupted by a crash or a leader
        // change) is finished by moving to its target configuration.
        if let Some(target) = m
            .get_joint_config()
            .last()
            .filter(|_| m.get_joint_config().len() > 1)
        {
            let target = target.clone();
            match cluster
                .change_membership(ChangeMembers::ReplaceAllVoters(target.clone()), true)
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
        if m.voter_ids().count() >= max_voters {
            continue;
        }
        let Some(learner) = cluster.healthy_learners().into_iter().next() else {
            continue;
        };
        match cluster
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([learner])), true)
            .await
        {
            Ok(()) => tracing::info!(promoted = learner, "promoted learner to voter"),
            Err(e) => tracing::warn!(learner, error = %e, "could not promote learner"),
        }
    }
}
