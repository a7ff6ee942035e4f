//! Node configuration: embedded defaults, overridden by the config file, overridden by flags.
//!
//! `cluster.example.toml` documents every key; keep the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod file;
mod tuning;

pub use file::FileConfig;
pub use tuning::FENCE_TICK;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Everything a node needs to run, fully resolved.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Requested node id; `None` lets the cluster pick one (join) or uses 1 (bootstrap).
    pub node_id: Option<u64>,
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub gpus: GpuSpec,
    /// The vLLM command line prefix, split on whitespace (`vllm`, or `python -m vllm...`).
    pub vllm_command: Vec<String>,
    pub log_format: LogFormat,
    pub raft: RaftTuning,
    pub runner: RunnerTuning,
    /// How the API port speaks: TLS unless it is a loopback address.
    pub api_tls: ApiTls,
    /// Extra names (DNS or IP) this node's certificate carries besides its API address.
    pub advertise_names: Vec<String>,
    /// How long the certificates this node signs as leader are valid; members renew theirs
    /// when two thirds of that have passed.
    pub certificate_lifetime: Duration,
    pub server: ServerTuning,
    /// Where the seal key is, when it is not derived from the cluster key in the data dir.
    pub seal_key_file: Option<PathBuf>,
    pub gateway: GatewayTuning,
    pub metrics: MetricsSettings,
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsSettings {
    /// Anyone who reaches the API port; otherwise an admin API key is needed.
    pub public: bool,
}

/// How the API port is served.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiTls {
    /// Plain HTTP on a loopback address.
    Plain,
    /// Plain HTTP on another address, because the operator said `--insecure-http`.
    Insecure,
    /// TLS with this node's certificate from the cluster CA.
    ClusterCertificate,
    /// TLS with the operator's own certificate chain and key (PEM files).
    OwnCertificate { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How a node learns its GPUs.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuSpec {
    /// Ask NVML; no driver means no GPUs.
    Auto,
    None,
    /// Declared GPUs, by total memory in bytes (for machines and tests without NVML).
    Declared(Vec<u64>),
}

#[derive(Debug, Clone)]
pub struct RaftTuning {
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot (and purge the log behind it) after this many applied entries.
    pub snapshot_every: u64,
    /// Members beyond this many join as non-voting learners.
    pub max_voters: usize,
    /// How long a write may wait for a leader and a quorum before the caller gets 503.
    pub write_timeout: Duration,
    /// Autopilot: a voter the leader has not heard from for this long is demoted to a
    /// learner when a healthy learner can take its place. Never shorter than
    /// [`RaftTuning::reachable_within`], the stall tolerance.
    pub autopilot_dead_after: Duration,
    /// `/readyz` fails on a node whose applied index is more than this many entries behind
    /// its log.
    pub ready_max_lag: u64,
}

impl RaftTuning {
    /// The leader lease: how long after hearing from a leader a voter refuses to elect
    /// another. openraft enforces the same span on real votes (it is openraft's
    /// `election_timeout_max`, see `raft::start`).
    pub fn leader_lease(&self) -> Duration {
        self.election_timeout_min
    }

    /// A peer that answered a Raft message within this counts as reachable (status pages,
    /// learner promotion), and a leader whose core and quorum answered within it is alive
    /// however long its last flush took (elections): a few election timeouts.
    pub fn reachable_within(&self) -> Duration {
        self.election_timeout_max * 4
    }
}

#[derive(Debug, Clone)]
pub struct RunnerTuning {
    /// A node the leader cannot reach for this long loses its slots to other nodes. Never
    /// shorter than [`RunnerTuning::fence_after`] plus the stall tolerance plus
    /// [`RunnerTuning::stop_grace`], so a node cut off has stopped its slots before they
    /// start elsewhere.
    pub node_lost_after: Duration,
    /// A node that no quorum of voters has been in touch with for this long stops its slots
    /// (the fence), and starts them again once it is back and they are still placed on it.
    pub fence_after: Duration,
    /// Ports handed to vLLM processes, inclusive.
    pub port_range: (u16, u16),
    /// Time between SIGTERM and SIGKILL when stopping a vLLM process.
    pub stop_grace: Duration,
}

/// What both of a node's servers (API and peer) tolerate from clients.
#[derive(Debug, Clone)]
pub struct ServerTuning {
    /// Connections each port holds at once; `None`: derived from the open-file limit at
    /// start (`server::FdLimit::default_max_connections`).
    pub max_connections: Option<usize>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// How often the API reports which keys it saw in use (their "last used" is that coarse).
    pub key_use_report: Duration,
}

/// How the OpenAI-compatible gateway reaches replicas and bounds what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct GatewayTuning {
    /// Connecting to a replica (loopback) or to the node that runs it (peer channel).
    pub connect_timeout: Duration,
    /// A whole answer, a long prompt's time to first token included.
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

/// The longest `runner.stop_grace_ms`: a node stops within 10 s of SIGTERM, and its vLLM
/// processes stop first, so their grace must leave room for the rest (see `daemon::stop`).
pub const MAX_STOP_GRACE_MS: u64 = 6000;

/// A node's own options: the config file's `[node]` table, and the same again as flags of
/// `helix node start|join`, which win over the file. `None` means "not given".
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct NodeOptions {
    /// Where the node keeps its database and secrets [default: ./helix-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The node id to ask for (default: the cluster picks one; 1 when bootstrapping).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// The admin API's address [default: 127.0.0.1:8080].
    #[arg(long)]
    pub api_addr: Option<String>,
    /// The peer protocol's address [default: 127.0.0.1:9080].
    #[arg(long)]
    pub peer_addr: Option<String>,
    /// `auto` (NVML), `none`, or declared GPUs by memory: `80GB,80GB`.
    #[arg(long)]
    pub gpus: Option<String>,
    /// The vLLM command (split on whitespace).
    #[arg(long)]
    pub vllm_command: Option<String>,
    /// How the node logs: text, or JSON lines [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve the API over TLS on a loopback address too (it always does on others).
    #[arg(long)]
    #[serde(default)]
    pub api_tls: bool,
    /// The API's certificate chain (PEM), instead of one from the cluster CA.
    #[arg(long, requires = "api_key_file")]
    pub api_cert: Option<PathBuf>,
    /// The private key (PEM) for `--api-cert`.
    #[arg(long = "api-key-file", requires = "api_cert")]
    pub api_key_file: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback API address: anyone on the path sees API keys.
    #[arg(long)]
    #[serde(default)]
    pub insecure_http: bool,
    /// A DNS name or IP clients use to reach this node's API; repeat for several. Goes
    /// into its certificate.
    #[arg(long = "advertise-name")]
    #[serde(default)]
    pub advertise_names: Vec<String>,
    /// The seal key (64 hex digits) kept outside the data dir: then a copy of the data dir
    /// or a snapshot opens no token. Every node of such a cluster needs it.
    #[arg(long, env = "HELIX_SEAL_KEY_FILE")]
    pub seal_key_file: Option<PathBuf>,
}

impl NodeConfig {
    /// Merge: flags over file over defaults.
    pub fn resolve(file: FileConfig, flags: NodeOptions) -> Result<Self, ConfigError> {
        let n = file.node;
        let api_addr = parse_addr(
            "api_addr",
            flags
                .api_addr
                .clone()
                .or(n.api_addr.clone())
                .as_deref()
                .unwrap_or("127.0.0.1:8080"),
        )?;
        let api_tls = resolve_api_tls(&flags, &n, api_addr)?;
        let mut advertise_names = n.advertise_names.clone();
        advertise_names.extend(flags.advertise_names.iter().cloned());
        let certificate_lifetime = Duration::from_secs(
            file.tls
                .certificate_lifetime_s
                .unwrap_or(DEFAULT_CERTIFICATE_LIFETIME_S),
        );
        if certificate_lifetime < Duration::from_secs(10) {
            return Err(invalid(
                "tls.certificate_lifetime_s",
                "must be at least 10 (seconds)",
            ));
        }
        let peer_addr = parse_addr(
            "peer_addr",
            flags
                .peer_addr
                .or(n.peer_addr)
                .as_deref()
                .unwrap_or("127.0.0.1:9080"),
        )?;
        let gpus = parse_gpus(flags.gpus.or(n.gpus).as_deref().unwrap_or("auto"))?;
        let vllm_command: Vec<String> = flags
            .vllm_command
            .or(n.vllm_command)
            .unwrap_or_else(|| "vllm".into())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if vllm_command.is_empty() {
            return Err(invalid("vllm_command", "must not be empty"));
        }
        let r = file.raft;
        let raft = RaftTuning {
            heartbeat: Duration::from_millis(r.heartbeat_ms.unwrap_or(50)),
            election_timeout_min: Duration::from_millis(r.election_timeout_min_ms.unwrap_or(150)),
            election_timeout_max: Duration::from_millis(r.election_timeout_max_ms.unwrap_or(300)),
            snapshot_every: r.snapshot_every.unwrap_or(5000),
            max_voters: r.max_voters.unwrap_or(5),
            write_timeout: Duration::from_millis(r.write_timeout_ms.unwrap_or(3000)),
            autopilot_dead_after: Duration::from_millis(
                r.autopilot_dead_after_ms.unwrap_or(120_000),
            ),
            ready_max_lag: r.ready_max_lag.unwrap_or(1000),
        };
        if raft.heartbeat.is_zero()
            || raft.heartbeat * 2 > raft.election_timeout_min
            || raft.election_timeout_min >= raft.election_timeout_max
        {
            return Err(invalid(
                "raft",
                "need 0 < 2 × heartbeat_ms <= election_timeout_min_ms < election_timeout_max_ms",
            ));
        }
        if raft.snapshot_every == 0 {
            return Err(invalid("raft.snapshot_every", "must be at least 1"));
        }
        if raft.max_voters == 0 {
            return Err(invalid("raft.max_voters", "must be at least 1"));
        }
        if raft.autopilot_dead_after < raft.reachable_within() {
            return Err(invalid(
                "raft.autopilot_dead_after_ms",
                format!(
                    "must be at least the stall tolerance, 4 × election_timeout_max_ms = {} ms: \
                     a voter silent for less may only be slow",
                    raft.reachable_within().as_millis()
                ),
            ));
        }
        if raft.ready_max_lag == 0 {
            return Err(invalid("raft.ready_max_lag", "must be at least 1"));
        }
        let runner = tuning::runner_tuning(file.runner, &raft)?;
        Ok(NodeConfig {
            data_dir: flags
                .data_dir
                .or(n.data_dir)
                .unwrap_or_else(|| PathBuf::from("./helix-data")),
            node_id: flags.node_id.or(n.node_id),
            api_addr,
            peer_addr,
            gpus,
            vllm_command,
            log_format: flags.log_format.or(n.log_format).unwrap_or(LogFormat::Text),
            raft,
            runner,
            api_tls,
            advertise_names,
            certificate_lifetime,
            server: tuning::server_tuning(file.server)?,
            seal_key_file: flags.seal_key_file.or(n.seal_key_file),
            gateway: tuning::gateway_tuning(file.gateway)?,
            metrics: MetricsSettings {
                public: file.metrics.public.unwrap_or(false),
            },
        })
    }
}

/// 30 days.
const DEFAULT_CERTIFICATE_LIFETIME_S: u64 = 30 * 24 * 3600;

fn resolve_api_tls(
    flags: &NodeOptions,
    file: &NodeOptions,
    api_addr: SocketAddr,
) -> Result<ApiTls, ConfigError> {
    let cert = flags.api_cert.clone().or(file.api_cert.clone());
    let key = flags.api_key_file.clone().or(file.api_key_file.clone());
    let insecure = flags.insecure_http || file.insecure_http;
    let forced = flags.api_tls || file.api_tls;
    match (cert, key) {
        (Some(_), Some(_)) if insecure => Err(invalid(
            "insecure_http",
            "cannot be combined with api_cert: choose TLS or plain HTTP",
        )),
        (Some(cert), Some(key)) => Ok(ApiTls::OwnCertificate { cert, key }),
        (Some(_), None) | (None, Some(_)) => {
            Err(invalid("api_cert", "api_cert and api_key_file go together"))
        }
        (None, None) if insecure && forced => {
            Err(invalid("insecure_http", "cannot be combined with api_tls"))
        }
        (None, None) if api_addr.ip().is_loopback() && !forced => Ok(ApiTls::Plain),
        (None, None) if insecure => Ok(ApiTls::Insecure),
        (None, None) => Ok(ApiTls::ClusterCertificate),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

fn parse_addr(field: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(field, format!("{s:?} is not HOST:PORT with a numeric IP")))
}

pub fn parse_gpus(s: &str) -> Result<GpuSpec, ConfigError> {
    match s.trim() {
        "auto" => Ok(GpuSpec::Auto),
        "none" | "" => Ok(GpuSpec::None),
        list => list
            .split(',')
            .map(|g| {
                crate::state::parse_memory(g.trim())
                    .map_err(|e| invalid("gpus", format!("{g:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(GpuSpec::Declared),
    }
}

#[cfg(test)]
mod tests;
