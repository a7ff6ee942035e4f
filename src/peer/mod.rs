//! The peer protocol: how nodes talk to each other. Raft's RPCs, pre-vote, joining, and the
//! leader-only operations other nodes forward (writes, read index, removal, progress).
//!
//! Both ends use mutual TLS (certificates from the cluster CA, each naming its node). Raft's
//! appends, votes and pre-votes travel on one long-lived connection per peer in a framed
//! protocol with many requests in flight (`frame`, `link`, `link_server`); everything else
//! is HTTPS with bincode bodies, on the same port (the TLS handshake's ALPN tells them
//! apart). Callers see only typed calls ([`PeerClient`]), the handler they implement
//! ([`PeerHandler`]), and [`serve`], so the transport can change without them.

mod auth;
mod client;
mod contact;
mod frame;
mod handler;
mod join;
mod link;
mod link_server;
mod message;
mod server;
#[cfg(test)]
mod tests;

pub use client::{PeerClient, TransportError};
pub use contact::PeerContact;
pub use handler::PeerHandler;
pub use join::{request_join, JoinError, CA_API_PATH, JOIN_API_PATH};
pub use message::{
    AddLearnerRequest, AdmitRequest, ClusterError, JoinReply, JoinRequest, MemberProgress,
    PreVoteRequest, PreVoteResponse, Progress, RenewRequest, Written,
};
pub use server::serve;
