//! The config file's shape: every table and key, all optional (an absent key keeps the
//! embedded default; an unknown one is an error naming it).

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, NodeOptions};

/// The config file. Every key is optional; absent keys keep the embedded default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub node: NodeOptions,
    #[serde(default)]
    pub raft: FileRaft,
    #[serde(default)]
    pub runner: FileRunner,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub gateway: FileGateway,
    #[serde(default)]
    pub metrics: FileMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRaft {
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub max_voters: Option<usize>,
    pub write_timeout_ms: Option<u64>,
    pub autopilot_dead_after_ms: Option<u64>,
    pub ready_max_lag: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRunner {
    pub node_lost_after_ms: Option<u64>,
    pub fence_after_ms: Option<u64>,
    pub port_range: Option<String>,
    pub stop_grace_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub certificate_lifetime_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub max_connections: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub key_use_report_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGateway {
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_s: Option<u64>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetrics {
    pub public: Option<bool>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}
