//! helix: run LLMs on a fleet of GPU machines with no central database.
//!
//! Every node is a Raft member (replicated state in sled) and a GPU runner.
//! The modules follow the path of a write:
//! `api` (HTTP, auth, validation) → `node` (forward to the leader) → `raft` (log, network,
//! state machine) → `state` (pure, deterministic `apply`) → `runner` (acts on applied state).

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod logging;
pub mod node;
pub mod raft;
pub mod runner;
pub mod state;
pub mod time;
