//! Doing something on the leader, wherever this node is: locally when it leads, else over
//! the peer protocol, retrying while no leader is known or leadership moves.

use std::future::Future;
use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::quorum::Action;
use super::{Cluster, ClusterError};
use crate::peer::{PeerClient, TransportError};
use crate::raft::NodeId;

impl Cluster {
    /// Run `local` if we lead, else `remote` against the leader's peer address, until the
    /// write timeout. Retries only when the request certainly was not carried out (no
    /// leader yet, leader changed, leader unreachable), so nothing is done twice by us.
    /// A node cut off from the quorum refuses at once: it knows no leader would answer.
    pub(super) async fn on_leader<Resp, L, LF, R, RF>(
        &self,
        action: Action,
        local: L,
        remote: R,
    ) -> Result<Resp, ClusterError>
    where
        L: Fn(Cluster) -> LF,
        LF: Future<Output = Result<Resp, ClusterError>>,
        R: Fn(PeerClient, NodeId, String, Duration) -> RF,
        RF: Future<Output = Result<Result<Resp, ClusterError>, TransportError>>,
    {
        self.check_storage()?;
        let write_timeout = self.inner.tuning.write_timeout;
        let deadline = Instant::now() + write_timeout;
        loop {
            if let Some(reason) = self.confirmed_cut_off().await {
                return Err(self.refuse_cut_off(action, reason));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = self.inner.raft.leader();
            let attempt = match leader {
                Some(leader) if leader == self.node_id() => {
                    match timeout(remaining, local(self.clone())).await {
                        Ok(result) => result,
                        Err(_) => return Err(no_quorum(action, write_timeout)),
                    }
                }
                Some(leader) => match self.inner.raft.peer_addr(leader) {
                    Some(addr) => {
                        match remote(self.inner.peers.clone(), leader, addr, remaining).await {
                            Ok(answer) => answer,
                            // Never delivered: safe to try again (the leader may be moving).
                            Err(TransportError::Unreachable { .. }) => {
                                Err(ClusterError::NotLeader { leader_id: None })
                            }
                            Err(TransportError::Timeout { .. }) => {
                                return Err(no_quorum(action, write_timeout))
                            }
                            // Delivered or not, we cannot tell: the caller must check.
                            Err(TransportError::Broken { message, .. }) => {
                                return Err(ClusterError::Unavailable(format!(
                                    "the leader went away before answering ({message}); the \
                                 request may or may not have been carried out"
                                )))
                            }
                            Err(e) => return Err(ClusterError::Internal(e.to_string())),
                        }
                    }
                    None => Err(ClusterError::NotLeader { leader_id: None }),
                },
                None => Err(ClusterError::NotLeader { leader_id: None }),
            };
            match attempt {
                Err(ClusterError::NotLeader { .. }) if Instant::now() < deadline => {
                    // Wait for Raft to name a (new) leader, or a short while.
                    let mut watch = self.watch();
                    let pause = remaining.min(Duration::from_millis(50));
                    let _ = timeout(pause, watch.changed()).await;
                }
                Err(ClusterError::NotLeader { .. }) => {
                    return Err(ClusterError::Unavailable(format!(
                        "no leader elected within {write_timeout:?}, so the {} was not carried \
                         out; is a majority of voters up?",
                        action.noun()
                    )))
                }
                other => return other,
            }
        }
    }
}

pub(super) fn no_quorum(action: Action, waited: Duration) -> ClusterError {
    ClusterError::Unavailable(match action {
        Action::Write => format!(
            "the write was not confirmed by a quorum within {waited:?}; it may still be applied \
             later"
        ),
        Action::Read => format!(
            "the linearizable read was not confirmed by a quorum within {waited:?}; retry, or \
             read with ?stale=true"
        ),
    })
}
