//! The command line of `helix bench`.

use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to load: a helix cluster or an etcd cluster (v3 HTTP/JSON gateway).
    #[arg(long, value_enum, default_value_t = Target::Helix)]
    pub target: Target,
    /// write: throughput and latency of writes; propagation: how soon a change reaches
    /// every node; inference: chat requests through the gateway; floor: this machine's
    /// fdatasync of a 4 KiB append and loopback round trip (no cluster needed).
    #[arg(long, value_enum, default_value_t = Scenario::Write)]
    pub scenario: Scenario,
    /// Endpoints, comma separated (`http://127.0.0.1:8080,...`); default: `--url`.
    /// For etcd, its client URLs (`http://127.0.0.1:2379`).
    #[arg(long)]
    pub endpoints: Option<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Run this many seconds (default 10 when --count is not given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Send this many requests in all (for `propagation`: this many changes).
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes in each written value (the model description, or the etcd value).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// `create`: a new model (distinct key) per write; `update`: rewrite one of --keys.
    #[arg(long, value_enum, default_value_t = WriteMode::Create)]
    pub mode: WriteMode,
    /// How many models/keys `--mode update` cycles through.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// `--mode update`: the keys exist already (an earlier run with the same --prefix).
    #[arg(long)]
    pub skip_setup: bool,
    /// Per-request timeout.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Pause after a failed request before the client tries again.
    #[arg(long, default_value_t = 5)]
    pub error_backoff_ms: u64,
    /// Report gaps between consecutive successful writes longer than this.
    #[arg(long, default_value_t = 100)]
    pub gaps_over_ms: u64,
    /// Prefix of model ids / keys (default: `bench-` and a random tag).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Hard limit on the run's length, whatever --count says.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// `propagation`: run even if the cluster already has a Hugging Face token (it is lost).
    #[arg(long)]
    pub allow_token_overwrite: bool,
    /// `inference`: the model to chat with.
    #[arg(long)]
    pub model: Option<String>,
    /// `inference`: stream the answers (and time the first chunk apart).
    #[arg(long)]
    pub stream: bool,
    /// `inference`: tokens per answer.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// `floor`: a directory on the file system to flush to (that of the data dirs)
    /// [default: the current directory].
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Helix,
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Write,
    Propagation,
    Inference,
    Floor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Create,
    Update,
}
