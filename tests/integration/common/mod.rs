//! The integration-test rig: real `helix` processes, each node on its own loopback address
//! 127.0.0.N, driven over HTTP. Every test binary uses a part of it.
//!
//! - [`cluster`]: [`Cluster`] and [`NodeSpec`], the one way to start nodes; [`membership`]:
//!   status, leader and members.
//! - [`process`]: one node process (output, `ready`, signals); [`net`]: addresses;
//!   [`netns`]: a lab of network namespaces for real partitions.
//! - [`http`]: the client; [`api`]: routes and calls several test files make.
//! - [`fake_vllm`]: the vLLM test double, its launch records and processes; [`slots`]: models
//!   and their slots.
//! - [`disk`]: a data dir on a small tmpfs, and the fault files of a slow disk and a jumped
//!   clock.
//! - [`secrets`]: test tokens and leak checks; [`wait`]: polling with deadlines.
//! - [`writer`]: steady writers that record acknowledged writes, for fault tests.
//! - [`browser`]: headless Chromium over WebDriver, for the dashboard; [`packages`]: what
//!   such tests install with apt-get when missing.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod browser;
pub mod cluster;
pub mod disk;
pub mod fake_vllm;
pub mod http;
pub mod membership;
pub mod net;
pub mod netns;
pub mod packages;
pub mod peer;
pub mod process;
pub mod secrets;
pub mod slots;
pub mod wait;
pub mod writer;

pub use api::*;
pub use cluster::{Cluster, NodeSpec, NODE_LOST_AFTER_MS};
pub use fake_vllm::{contract_argv, fake_vllm, pid_of, pretty, str_vec};
pub use http::{Client, Resp};
pub use process::{helix_bin, pid_alive};
pub use secrets::{secret, sha256_hex};
pub use slots::model_json;
pub use wait::{assert_holds_for, wait_for, wait_until, WAIT};
