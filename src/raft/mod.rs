//! Consensus: openraft wired to sled storage, behind a handle that speaks helix's types.
//!
//! Nothing outside this module touches openraft: the rest of helix sees [`Raft`] (propose,
//! read index, membership changes, status), [`StateView`] (the applied state), and the
//! Raft RPCs as opaque values that the peer transport carries ([`RaftTransport`]).

mod batch;
mod handle;
mod metrics;
mod network;
mod status;
mod store;
mod types;

pub use batch::Proposed;
pub use handle::{start, Raft, RaftError, StartError};
pub use network::{RaftTransport, RpcFailure};
pub use status::{Membership, MembershipChange, RaftStatus, StatusWatch};
pub use store::{Db, StateView};
pub use types::{
    AppendAnswer, AppendRequest, LogPosition, NodeId, SnapshotAnswer, SnapshotRequest, Speaker,
    VoteAnswer, VoteRequest,
};
