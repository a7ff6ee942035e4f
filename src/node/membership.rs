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
        // One change at a time: skip while a joint configuration is in flight.
        if m.get_joint_config().len() > 1 || m.voter_ids().count() >= max_voters {
            continue;
        }
        let Some(learner) = cluster.healthy_learners().into_iter().next() else {
            continue;
        };
        match cluster
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([learner])), true)
            .await
        {
            Ok(_) => tracing::info!(promoted = learner, "promoted learner to voter"),
            Err(e) => tracing::warn!(learner, error = %e, "could not promote learner"),
        }
    }
}
