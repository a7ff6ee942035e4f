//! The openraft type configuration, and the names the rest of helix uses for what crosses
//! the peer transport: the Raft RPCs travel as opaque values of these types.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Outcome, Proposal};

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// What a normal log entry carries: proposals committed together (one append, one flush,
/// one replication round) and applied in order, each with its own outcome. Concurrent
/// writes share an entry (see [`super::batch`]); a lone write is a batch of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Proposal>);

// Format 1 of the log: an entry carried a single proposal. Kept to read logs written then.
openraft::declare_raft_types!(
    pub(crate) TypeConfigV1:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;

/// The Raft RPCs and the answers a peer's Raft gives them.
pub type AppendRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub type AppendAnswer =
    Result<openraft::raft::AppendEntriesResponse<NodeId>, openraft::error::RaftError<NodeId>>;
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
pub type VoteAnswer =
    Result<openraft::raft::VoteResponse<NodeId>, openraft::error::RaftError<NodeId>>;
pub type SnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
pub type SnapshotAnswer = Result<
    openraft::raft::InstallSnapshotResponse<NodeId>,
    openraft::error::RaftError<NodeId, openraft::error::InstallSnapshotError>,
>;

/// The node a Raft RPC speaks for: the leader or candidate named in its vote. The peer
/// server checks it against the certificate of the connection it came on.
pub trait Speaker {
    fn speaker(&self) -> Option<NodeId>;
}

impl Speaker for AppendRequest {
    fn speaker(&self) -> Option<NodeId> {
        self.vote.leader_id().voted_for()
    }
}

impl Speaker for VoteRequest {
    fn speaker(&self) -> Option<NodeId> {
        self.vote.leader_id().voted_for()
    }
}

impl Speaker for SnapshotRequest {
    fn speaker(&self) -> Option<NodeId> {
        self.vote.leader_id().voted_for()
    }
}

/// Where a node's log ends, as pre-vote compares it: the last entry's term and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

impl LogPosition {
    pub(crate) fn of(log_id: Option<LogId>) -> Option<LogPosition> {
        log_id.map(|l| LogPosition {
            term: l.leader_id.term,
            index: l.index,
        })
    }
}
