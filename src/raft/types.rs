//! The openraft type configuration: a log entry carries a [`Batch`] of proposals, applying it
//! answers one [`Outcome`] per proposal, members are addressed by their peer address.

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
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
