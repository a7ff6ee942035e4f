//! The peer protocol: how nodes talk to each other. Raft's RPCs, pre-vote, joining, and the
//! leader-only operations other nodes forward (writes, read index, removal, progress).
//!
//! Today it is HTTP with bincode bodies and one cluster credential as bearer; callers see
//! only typed calls ([`PeerClient`]), the handler they implement ([`PeerHandler`]), and
//! [`serve`], so the transport can change without them.

mod auth;
mod client;
mod contact;
mod join;
mod message;
mod server;

pub use auth::credential_matches;
pub use client::{PeerClient, TransportError};
pub use contact::PeerContact;
pub use join::{request_join, JoinError, JOIN_API_PATH};
pub use message::{
    ClusterError, JoinReply, JoinRequest, MemberProgress, PreVoteRequest, PreVoteResponse,
    Progress, Written,
};
pub use server::{serve, PeerHandler};
