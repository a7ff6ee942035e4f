//! helix: run LLMs on a fleet of GPU machines with no central database.
//!
//! Every node is a Raft member (replicated state in sled) and a GPU runner. The modules,
//! from the bottom up (each uses only those below it; see docs/architecture.md):
//! - `time`, `crypto`, `config`, `logging`, `metrics`, `server`, `tls`, `loopback`, `slot_log`:
//!   plumbing; `test_faults`: a slow disk and a jumped clock, for debug builds' tests;
//! - `state`: the replicated data model and the pure, deterministic `apply`;
//! - `raft`: openraft over sled, behind a handle in helix's terms;
//! - `peer`: the protocol nodes speak to each other;
//! - `cluster`: the narrow handle to write, read and change the membership;
//! - `runner` (acts on applied state) and `api` (the admin HTTP API, which also serves `ui`,
//!   the dashboard's embedded files);
//! - `daemon`: a node's start-up and shutdown;
//! - `cli` and `bench`: the `helix` command line.

pub mod api;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod gateway;
pub mod gossip;
pub mod logging;
pub mod loopback;
pub mod metrics;
pub mod peer;
pub mod raft;
pub mod retry;
pub mod runner;
pub mod server;
pub mod slot_log;
pub mod state;
pub mod test_faults;
pub mod time;
pub mod tls;
pub mod ui;
