//! Whether this node is fit to serve (`/readyz`), and noticing that it was removed.
//!
//! A removed node seldom learns it from Raft: the leader stops replicating to a member as
//! soon as it appends the membership without it. So a node that has heard from no leader
//! for the stall tolerance asks the members it knows: a peer refuses a removed node's
//! certificate, and the leader's progress report lists who is still a member.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::Cluster;
use crate::peer::TransportError;
use crate::raft::NodeId;

impl Cluster {
    /// Why this node was removed from the cluster, once it knows.
    pub fn removed(&self) -> Option<String> {
        if let Some(reason) = self.inner.removed.lock().expect("removed lock").clone() {
            return Some(reason);
        }
        // A node catching up passes through configurations from before it joined: only one
        // that was listed once and is no longer has been removed.
        let listed = self.inner.raft.status().membership.contains(self.node_id());
        if listed {
            self.inner.was_member.store(true, Ordering::Relaxed);
        }
        (!listed && self.inner.was_member.load(Ordering::Relaxed))
            .then(|| "the membership no longer lists this node".to_string())
    }

    /// The leader when this node can serve; else why not, for `/readyz`: its storage failed,
    /// it was removed or is not a member yet, no leader (cut off from the quorum, if so), the leader has not reached it (or,
    /// on the leader, a quorum has not answered) within the stall tolerance, or its applied
    /// index lags its log by more than `raft.ready_max_lag`.
    pub fn ready(&self) -> Result<NodeId, String> {
        let status = self.inner.raft.status();
        if let Some(cause) = status.storage_failure {
            return Err(format!("storage failed: {cause}"));
        }
        if let Some(reason) = self.removed() {
            return Err(format!("this node was removed from the cluster: {reason}"));
        }
        if !status.membership.contains(self.node_id()) {
            return Err("not a member yet".into());
        }
        let Some(leader) = status.leader else {
            // A leader that stepped down cut off, or a node that no quorum answers, says so.
            return Err(self.cut_off().unwrap_or_else(|| "no leader known".into()));
        };
        let tolerance = self.inner.tuning.reachable_within();
        if status.is_leader {
            let voters = status.membership.voters();
            let answered = voters
                .iter()
                .filter(|&&v| {
                    v == self.node_id()
                        || self
                            .inner
                            .peers
                            .contact()
                            .since_last_answer(v)
                            .is_some_and(|d| d < tolerance)
                })
                .count();
            if answered * 2 <= voters.len() {
                return Err(format!(
                    "this node leads but only {answered} of {} voters answered it within {} ms: \
                     no quorum",
                    voters.len(),
                    tolerance.as_millis()
                ));
            }
        } else {
            let silence = self.inner.leader_contact.silence();
            if silence >= tolerance {
                return Err(format!(
                    "no append from the leader (node {leader}) for {} ms (tolerance {} ms)",
                    silence.as_millis(),
                    tolerance.as_millis()
                ));
            }
        }
        let lag = status
            .last_log_index
            .unwrap_or(0)
            .saturating_sub(status.applied_index.unwrap_or(0));
        if lag > self.inner.tuning.ready_max_lag {
            return Err(format!(
                "applied index is {lag} entries behind the log (bound raft.ready_max_lag = {})",
                self.inner.tuning.ready_max_lag
            ));
        }
        Ok(leader)
    }

    fn mark_removed(&self, reason: String) {
        let mut removed = self.inner.removed.lock().expect("removed lock");
        if removed.is_none() {
            tracing::warn!(
                reason = %reason,
                "this node was removed from the cluster: it stops its slots and is not ready; \
                 to join again, stop it and join with an empty data dir"
            );
            *removed = Some(reason);
        }
    }

    /// Asks the members this node knows whether it is still one of them.
    async fn check_membership(&self) {
        let me = self.node_id();
        let membership = self.inner.raft.status().membership;
        for peer in membership.members().filter(|&p| p != me) {
            let Some(addr) = membership.peer_addr(peer).map(str::to_string) else {
                continue;
            };
            match self
                .inner
                .peers
                .progress(peer, &addr, Duration::from_secs(1))
                .await
            {
                Err(TransportError::Refused { message, .. }) if message.contains("removed") => {
                    return self.mark_removed(format!("node {peer} refused it: {message}"));
                }
                Ok(Ok(progress)) if !progress.members.contains_key(&me) => {
                    return self.mark_removed(format!(
                        "the leader (node {}) no longer lists it",
                        progress.leader_id
                    ));
                }
                Ok(Ok(_)) => return,
                _ => {}
            }
        }
    }
}

/// Runs on every node until shutdown: when no leader has been heard from for the stall
/// tolerance, finds out whether this node was removed.
pub(super) async fn watch_removal(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    let tolerance = cluster.inner.tuning.reachable_within();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tolerance) => {}
            _ = shutdown.changed() => return,
        }
        if let Some(reason) = cluster.removed() {
            // Say so once, whichever way it was learnt.
            cluster.mark_removed(reason);
            return;
        }
        let status = cluster.inner.raft.status();
        if !status.is_leader && cluster.inner.leader_contact.silence() >= tolerance {
            cluster.check_membership().await;
        }
    }
}
