//! The command line's arguments: every command, flag and help text of `helix`.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;

use crate::config::NodeOptions;

mod model;
mod operator;
mod tenancy;

pub use model::{ModelCommand, ModelFlags, SlotCommand};
pub use operator::{KeyringCommand, OperatorCommand, SnapshotCommand};
pub use tenancy::{
    AuditCommand, KeyCommand, OrgCommand, OrgSettingsCommand, TokenFlags, UserCommand,
    UserSettingsCommand,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, or a line per field.
    Table,
    /// The API's JSON, as the node sent it.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node, or look at and change the members.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Cluster-wide state.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// System settings (the cluster-wide Hugging Face token).
    #[command(subcommand)]
    System(SystemCommand),
    /// Models the cluster runs.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Model instances: what runs where.
    #[command(subcommand)]
    Slot(SlotCommand),
    /// Load a helix or etcd cluster with writes and report throughput and latency.
    Bench(crate::bench::BenchArgs),
    /// Organizations and their Hugging Face token.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users, their API keys and their Hugging Face token.
    #[command(subcommand)]
    User(UserCommand),
    /// Changes of secrets and permissions (admin).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Backups of the whole state (admin).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// This CLI's version, and the version of the node at `--url` when it answers.
    Version,
    /// A completion script for your shell: `helix completions bash > /etc/bash_completion.d/helix`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Send one prompt to a model (through any node) and stream its answer.
    Chat {
        /// The model id, as in `helix model list`.
        model: String,
        /// What to ask it.
        prompt: String,
        /// The longest answer, in tokens [default: the model's own limit].
        #[arg(long)]
        max_tokens: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run a node: bootstrap a new cluster on an empty data dir, or resume.
    Start(NodeFlags),
    /// Run a node that joins the cluster reachable at URL.
    Join {
        /// Any member's API address, e.g. https://10.0.0.1:8080 (http:// only on loopback).
        url: String,
        /// A join token (`helix cluster join-token create`). Prefer the environment
        /// variable: command lines are visible to other users of the machine.
        #[arg(long, env = "HELIX_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        #[command(flatten)]
        flags: NodeFlags,
    },
    /// List members and their runner state.
    List,
    /// Remove a member (dead or alive).
    Remove {
        /// The node id, as in `helix node list`.
        id: u64,
    },
    /// The node --url reaches leaves the cluster gracefully (a leader hands over first),
    /// then stops with status 0. Give its ID to be sure the URL reaches that node.
    Leave {
        /// The id of the node --url reaches (a guard against leaving the wrong one).
        id: Option<u64>,
    },
}

#[derive(Args, Debug)]
pub struct NodeFlags {
    /// TOML config file; see cluster.example.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: NodeOptions,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Leader, term, commit index, members, quorum health.
    Status,
    /// Join tokens: what a new node shows to be admitted (admin).
    #[command(subcommand)]
    JoinToken(JoinTokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum JoinTokenCommand {
    /// Create a join token; it is shown this once.
    Create {
        /// How long it admits nodes: 90s, 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// How many nodes may join with it [default: any number until it expires].
        #[arg(long)]
        uses: Option<u32>,
    },
    /// Join tokens and whether each still admits nodes.
    List,
    /// Revoke a join token: it admits no one from now on.
    Revoke {
        /// The token's id, as in `helix cluster join-token list`.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// The cluster-wide Hugging Face token: shown as set or not, set, cleared.
    #[command(subcommand)]
    Settings(SettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Whether the token is set, and where it comes from (never the token).
    Get,
    /// Set the cluster-wide token, or clear it.
    Set {
        /// The token; `-` reads it from standard input (keeps it out of shell history).
        #[arg(
            long,
            conflicts_with = "clear_hf_token",
            required_unless_present = "clear_hf_token"
        )]
        huggingface_token: Option<String>,
        /// Clear the cluster-wide token (nodes fall back to their HF_TOKEN).
        #[arg(long)]
        clear_hf_token: bool,
    },
}

/// One of `names` (listed in the help), read as the API value spelled that way in JSON.
fn api_name<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|name| T::deserialize(serde_json::Value::String(name)))
}
