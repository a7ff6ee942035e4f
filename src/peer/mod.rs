//! The peer protocol: how nodes talk to each other. Raft's RPCs, pre-vote, joining, and the
//! leader-only operations other nodes forward (writes, read index, removal, progress).
//!
//! It is HTTPS with mutual TLS (certificates from the cluster CA, each naming its node) and
//! bincode bodies; callers see only typed calls ([`PeerClient`]), the handler they implement
//! ([`PeerHandler`]), and [`serve`], so the transport can change without them.

mod auth;
mod client;
mod contact;
mod handler;
mod join;
mod message;
mod server;

pub use client::{PeerClient, TransportError};
pub use contact::PeerContact;
pub use handler::PeerHandler;
pub use join::{request_join, JoinError, CA_API_PATH, JOIN_API_PATH};
pub use message::{
    AddLearnerRequest, AdmitRequest, ClusterError, JoinReply, JoinRequest, MemberProgress,
    PreVoteRequest, PreVoteResponse, Progress, RenewRequest, Written,
};
pub use server::serve;
