//! A slot's log from the node that runs it, over the peer protocol: each node keeps only
//! its own slots' logs.

use std::time::Duration;

use super::{Cluster, ClusterError};
use crate::peer::TransportError;
use crate::raft::NodeId;
use crate::slot_log::{LogChunk, LogQuery};

/// How long the node that runs the slot may take to answer.
const SLOT_LOG_TIMEOUT: Duration = Duration::from_secs(10);

impl Cluster {
    /// The part of a slot's log `query` asks for, from member `node` (not this one).
    pub async fn slot_log_from(
        &self,
        node: NodeId,
        query: &LogQuery,
    ) -> Result<LogChunk, ClusterError> {
        let addr = self.inner.raft.peer_addr(node).ok_or_else(|| {
            ClusterError::Unavailable(format!("node {node} is not a member any more"))
        })?;
        self.inner
            .peers
            .slot_log(node, &addr, query, SLOT_LOG_TIMEOUT)
            .await
            .map_err(|e| match e {
                TransportError::Unreachable { .. } | TransportError::Timeout { .. } => {
                    ClusterError::Unavailable(format!(
                        "node {node}, which runs the slot, does not answer: {e}"
                    ))
                }
                e => ClusterError::Internal(e.to_string()),
            })?
    }
}
