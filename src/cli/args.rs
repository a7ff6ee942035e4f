//! The command line's arguments: every command, flag and help text of `helix`.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;

use crate::config::NodeOptions;
use crate::state::{ModelType, Runtime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
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
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Send one prompt to a model (through any node) and stream its answer.
    Chat {
        /// The model id, as in `helix model list`.
        model: String,
        prompt: String,
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
    Remove { id: u64 },
    /// The node --url reaches leaves the cluster gracefully (a leader hands over first),
    /// then stops with status 0. Give its ID to be sure the URL reaches that node.
    Leave { id: Option<u64> },
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
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    #[command(subcommand)]
    Settings(SettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    Get,
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

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Create a model from flags or from a JSON file.
    Create {
        /// e.g. Qwen/Qwen2.5-VL-7B-Instruct
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        model_id: Option<String>,
        /// JSON as in the seed's model.json.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        fields: ModelFlags,
    },
    List,
    Get {
        id: String,
    },
    Update {
        id: String,
        #[command(flatten)]
        fields: ModelFlags,
    },
    Delete {
        id: String,
    },
    /// Which level a launch of the model takes its token from (never the token).
    TokenSource {
        id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ModelFlags {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long = "type", value_parser = api_name::<ModelType>(&["chat", "embed", "image"]))]
    pub model_type: Option<ModelType>,
    #[arg(long, value_parser = api_name::<Runtime>(&["vllm"]))]
    pub runtime: Option<Runtime>,
    /// e.g. 39GB, 36GiB or bytes.
    #[arg(long)]
    pub memory: Option<String>,
    /// Context length in tokens.
    #[arg(long)]
    pub context: Option<u64>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Keep it running (`--prewarm` or `--prewarm true|false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub prewarm: Option<bool>,
    /// `--auto-pull` or `--auto-pull true|false`.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub auto_pull: Option<bool>,
    /// A JSON array of strings, e.g. '["--trust-remote-code"]'.
    #[arg(long)]
    pub runtime_args: Option<String>,
    /// The model's own Hugging Face token (write-only; `-` reads stdin, "" clears).
    #[arg(long)]
    pub huggingface_token: Option<String>,
    /// How many slots run it (prewarm models), on distinct GPUs, preferably distinct nodes.
    #[arg(long)]
    pub replicas: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum SlotCommand {
    List,
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    Create {
        name: String,
    },
    List,
    #[command(subcommand)]
    Settings(OrgSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum OrgSettingsCommand {
    Get {
        org: String,
    },
    Set {
        org: String,
        #[command(flatten)]
        token: TokenFlags,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; prints its API key once.
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        /// Organization id to put the user in.
        #[arg(long)]
        org: Option<String>,
        /// Make the user an owner of --org (default: member).
        #[arg(long, requires = "org")]
        owner: bool,
    },
    List,
    /// A user's API keys: id, name, created, last used (default: yourself).
    Keys {
        user: Option<String>,
    },
    /// Issue, rotate or revoke an API key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Disable a user: all their API keys stop working at once (admins only).
    Disable {
        user: String,
    },
    /// Enable a disabled user again (admins only).
    Enable {
        user: String,
    },
    #[command(subcommand)]
    Settings(UserSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Issue another API key for a user (default: yourself); prints it once.
    Issue {
        user: Option<String>,
        /// What to call the key (shown by `helix user keys`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Replace a key with a new one of the same name; prints the new key once, and the old
    /// one stops working.
    Rotate { key_id: String },
    /// Revoke an API key by its id.
    Revoke { key_id: String },
}

#[derive(Subcommand, Debug)]
pub enum UserSettingsCommand {
    Get {
        /// User id (default: yourself).
        user: Option<String>,
    },
    Set {
        /// User id (default: yourself).
        user: Option<String>,
        #[command(flatten)]
        token: TokenFlags,
    },
}

#[derive(Args, Debug)]
pub struct TokenFlags {
    /// The token; `-` reads it from standard input (keeps it out of shell history).
    #[arg(
        long,
        conflicts_with = "clear_hf_token",
        required_unless_present = "clear_hf_token"
    )]
    pub huggingface_token: Option<String>,
    /// Clear the token at this level (resolution falls through to the next).
    #[arg(long)]
    pub clear_hf_token: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Entries oldest first; the filters combine.
    List {
        /// A user id, or `cluster` for the cluster's own entries.
        #[arg(long)]
        actor: Option<String>,
        /// e.g. `hf_token_set`, `api_key_issued`, `node_removed`.
        #[arg(long)]
        kind: Option<String>,
        /// RFC 3339, e.g. 2026-12-01T03:00:00Z (inclusive).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 (inclusive).
        #[arg(long)]
        until: Option<String>,
        /// Only the newest N of the matching entries.
        #[arg(long)]
        limit: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Save or restore a snapshot of the whole state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// After a quorum is lost for good: make this stopped node (`--data-dir`) the only
    /// voter of a new configuration with its own committed state; then start it, and join
    /// the other survivors to it with join tokens and empty data dirs. Prints what may be
    /// lost; changes nothing without `--yes`.
    Recover {
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        flags: Box<NodeFlags>,
    },
    /// The data keys that seal Hugging Face tokens.
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Make every node snapshot its state and drop its Raft log up to it now, so replaced
    /// or cleared tokens and destroyed keys leave the logs without waiting for the next
    /// automatic snapshot.
    Compact,
}

#[derive(Subcommand, Debug)]
pub enum KeyringCommand {
    /// Key ids, ages, and how many tokens each seals; whether this node's seal key opens
    /// them.
    List,
    /// Make a new data key, re-seal every stored token with it (one Raft write), and
    /// destroy the old keys.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save the state, read at a linearizable point, to FILE (secrets stay sealed with the
    /// cluster key: keep the source's DATA_DIR/cluster.key safe too, apart from FILE).
    Save { file: PathBuf },
    /// Make a new data dir (`--data-dir`, missing or empty) whose node, started with
    /// `helix node start` and the same flags, runs a one-node cluster holding FILE's state;
    /// other nodes join it with join tokens. Offline: no node needs to run.
    Restore {
        file: PathBuf,
        /// The `cluster.key` of a node of the cluster FILE was saved from: it opens the CA and
        /// the sealed tokens in FILE, and becomes the new cluster's key. Required: without
        /// it nothing sealed in FILE could be opened.
        #[arg(long)]
        cluster_key_file: PathBuf,
        #[command(flatten)]
        flags: Box<NodeFlags>,
    },
}

/// One of `names` (listed in the help), read as the API value spelled that way in JSON.
fn api_name<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|name| T::deserialize(serde_json::Value::String(name)))
}
