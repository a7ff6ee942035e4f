//! The integration tests, as users see helix: real `helix` processes, each node on its own
//! 127.0.0.N, driven over the HTTP API and the command line. One test binary, so the rig is
//! built and linked once.

mod common;

mod audit;
mod autopilot;
mod bench_smoke;
mod chaos;
mod cli;
mod cli_failover;
mod cli_output;
mod cli_slots;
mod cluster_core;
mod disk_faults;
mod gossip;
mod inference;
mod keyring;
mod keys;
mod lab;
mod log_crash;
mod metrics;
mod node_life;
mod openapi;
mod partitions;
mod pauses_clocks;
mod quiet_logs;
mod runner;
mod settings_maps;
mod snapshot;
mod starvation;
mod storage;
mod tenancy;
mod trust;
mod ui;
