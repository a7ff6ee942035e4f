//! Consensus: openraft wired to sled storage and an HTTP peer transport.

pub mod batch;
pub mod network;
pub mod store;
pub mod types;

pub use batch::Raft;
pub use types::{NodeId, TypeConfig};
