//! The `helix` command line: `node start|join` runs a node; everything else talks HTTP to
//! `--url`. Exit codes: 0 success, 1 a request failed, 2 bad usage.

mod client;
mod output;

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use crate::config::{FileConfig, LogFormat, NodeConfig, Overrides};
use client::{Client, ClientError};

#[derive(Parser, Debug)]
#[command(name = "helix", version, about = "Run LLMs on a fleet of GPU machines")]
pub struct Cli {
    /// API endpoints to talk to, comma separated; the next is tried when one is unreachable.
    #[arg(
        long,
        env = "HELIX_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key (`Authorization: Bearer`).
    #[arg(long, env = "HELIX_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
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
}

#[derive(Subcommand, Debug)]
enum SlotCommand {
    List,
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    Create {
        name: String,
    },
    List,
    #[command(subcommand)]
    Settings(OrgSettingsCommand),
}

#[derive(Subcommand, Debug)]
enum OrgSettingsCommand {
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
enum UserCommand {
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
    /// Issue another API key for a user (default: yourself).
    IssueKey {
        user: Option<String>,
    },
    /// Revoke an API key by its id.
    RevokeKey {
        key_id: String,
    },
    #[command(subcommand)]
    Settings(UserSettingsCommand),
}

#[derive(Subcommand, Debug)]
enum UserSettingsCommand {
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
struct TokenFlags {
    /// The token; `-` reads it from standard input (keeps it out of shell history).
    #[arg(
        long,
        conflicts_with = "clear_hf_token",
        required_unless_present = "clear_hf_token"
    )]
    huggingface_token: Option<String>,
    /// Clear the token at this level (resolution falls through to the next).
    #[arg(long)]
    clear_hf_token: bool,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    List,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Run a node: bootstrap a new cluster on an empty data dir, or resume.
    Start(NodeFlags),
    /// Run a node that joins the cluster reachable at URL.
    Join {
        /// Any member's API address, e.g. http://10.0.0.1:8080.
        url: String,
        /// The cluster's join token (`helix cluster join-token`).
        #[arg(long, env = "HELIX_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        #[command(flatten)]
        flags: NodeFlags,
    },
    /// List members and their runner state.
    List,
    /// Remove a member (dead or alive).
    Remove { id: u64 },
}

#[derive(Args, Debug)]
struct NodeFlags {
    /// TOML config file; see cluster.example.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    node_id: Option<u64>,
    #[arg(long)]
    api_addr: Option<String>,
    #[arg(long)]
    peer_addr: Option<String>,
    /// `auto` (NVML), `none`, or declared GPUs by memory: `80GB,80GB`.
    #[arg(long)]
    gpus: Option<String>,
    /// The vLLM command (split on whitespace).
    #[arg(long)]
    vllm_command: Option<String>,
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Leader, term, commit index, members, quorum health.
    Status,
    /// Print the join token (admin).
    JoinToken,
}

#[derive(Subcommand, Debug)]
enum SystemCommand {
    #[command(subcommand)]
    Settings(SettingsCommand),
}

#[derive(Subcommand, Debug)]
enum SettingsCommand {
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
enum ModelCommand {
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
struct ModelFlags {
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "type", value_parser = ["chat", "embed", "image"])]
    model_type: Option<String>,
    #[arg(long, value_parser = ["vllm"])]
    runtime: Option<String>,
    /// e.g. 39GB, 36GiB or bytes.
    #[arg(long)]
    memory: Option<String>,
    /// Context length in tokens.
    #[arg(long)]
    context: Option<u64>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    enabled: Option<bool>,
    /// Keep it running (`--prewarm` or `--prewarm true|false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    prewarm: Option<bool>,
    /// `--auto-pull` or `--auto-pull true|false`.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    auto_pull: Option<bool>,
    /// A JSON array of strings, e.g. '["--trust-remote-code"]'.
    #[arg(long)]
    runtime_args: Option<String>,
    /// The model's own Hugging Face token (write-only; `-` reads stdin, "" clears).
    #[arg(long)]
    huggingface_token: Option<String>,
}

/// A failure and the exit code it deserves.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        failed(e.to_string())
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::new(&cli.url, cli.api_key.clone());
    let out = cli.output;
    if !matches!(
        cli.command,
        Command::Node(NodeCommand::Start(_) | NodeCommand::Join { .. })
    ) {
        // A client piped into `head` should end quietly, like any Unix tool.
        // SAFETY: restoring the default disposition of a signal has no preconditions.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    match cli.command {
        Command::Node(NodeCommand::Start(flags)) => {
            run_node(flags, crate::daemon::Launch::Start).await
        }
        Command::Node(NodeCommand::Join { url, token, flags }) => {
            crate::crypto::ClusterSecret::from_join_token(&token)
                .map_err(|e| usage(e.to_string()))?;
            run_node(
                flags,
                crate::daemon::Launch::Join {
                    url,
                    token: SecretString::from(token),
                },
            )
            .await
        }
        Command::Node(NodeCommand::List) => {
            let v = client.request(Method::GET, "/api/v1/nodes", None).await?;
            print_list(
                out,
                &v,
                &[
                    "id",
                    "api_addr",
                    "peer_addr",
                    "role",
                    "leader",
                    "reachable",
                    "applied_index",
                ],
            );
            Ok(())
        }
        Command::Node(NodeCommand::Remove { id }) => {
            let v = client
                .request(Method::DELETE, &format!("/api/v1/nodes/{id}"), None)
                .await?;
            print_object(out, &v);
            Ok(())
        }
        Command::Cluster(ClusterCommand::Status) => {
            let v = client
                .request(Method::GET, "/api/v1/cluster/status", None)
                .await?;
            if out == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let q = &v["quorum"];
                println!(
                    "leader: {}  term: {}  commit index: {}  quorum: {} ({}/{} voters reachable, {} needed)",
                    output::cell(v.get("leader_id")),
                    output::cell(v.get("term")),
                    output::cell(v.get("commit_index")),
                    if q["healthy"].as_bool() == Some(true) { "healthy" } else { "NOT healthy" },
                    output::cell(q.get("reachable_voters")),
                    output::cell(q.get("voters")),
                    output::cell(q.get("needed")),
                );
                print_list(
                    out,
                    &v["members"],
                    &[
                        "id",
                        "api_addr",
                        "peer_addr",
                        "role",
                        "leader",
                        "reachable",
                        "applied_index",
                    ],
                );
            }
            Ok(())
        }
        Command::Cluster(ClusterCommand::JoinToken) => {
            let v = client
                .request(Method::GET, "/api/v1/cluster/join-token", None)
                .await?;
            match out {
                OutputFormat::Json => println!("{v}"),
                OutputFormat::Table => println!("{}", output::cell(v.get("join_token"))),
            }
            Ok(())
        }
        Command::System(SystemCommand::Settings(SettingsCommand::Get)) => {
            let v = client
                .request(Method::GET, "/api/v1/system/settings", None)
                .await?;
            print_object(out, &v);
            Ok(())
        }
        Command::System(SystemCommand::Settings(SettingsCommand::Set {
            huggingface_token,
            clear_hf_token,
        })) => {
            let token = if clear_hf_token {
                String::new()
            } else {
                read_secret_arg(huggingface_token.unwrap_or_default())?
            };
            if !clear_hf_token && token.is_empty() {
                return Err(usage(
                    "--huggingface-token is empty; use --clear-hf-token to clear it",
                ));
            }
            let body = json!({ "huggingface_token": token });
            let v = client
                .request(Method::PUT, "/api/v1/system/settings", Some(&body))
                .await?;
            print_object(out, &v);
            Ok(())
        }
        Command::Model(cmd) => model(cmd, &client, out).await,
        Command::Bench(args) => crate::bench::run(
            args,
            &cli.url,
            cli.api_key.as_deref(),
            out == OutputFormat::Json,
        )
        .await
        .map_err(failed),
        Command::Org(cmd) => org(cmd, &client, out).await,
        Command::User(cmd) => user(cmd, &client, out).await,
        Command::Audit(AuditCommand::List) => {
            let v = client.request(Method::GET, "/api/v1/audit", None).await?;
            print_list(
                out,
                &v,
                &["seq", "at", "actor_user_id", "kind", "level", "target"],
            );
            Ok(())
        }
        Command::Slot(SlotCommand::List) => {
            let v = client.request(Method::GET, "/api/v1/slots", None).await?;
            print_list(
                out,
                &v,
                &[
                    "id",
                    "model_id",
                    "node_id",
                    "gpu_indices",
                    "state",
                    "port",
                    "hf_token_source",
                    "restarts",
                    "last_error",
                    "pending_reason",
                ],
            );
            Ok(())
        }
    }
}

async fn model(cmd: ModelCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        ModelCommand::Create {
            model_id,
            file,
            fields,
        } => {
            let body = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
                    serde_json::from_str::<Value>(&text)
                        .map_err(|e| usage(format!("{} is not valid JSON: {e}", path.display())))?
                }
                None => {
                    let mut body = model_fields(&fields)?;
                    body.insert("id".into(), json!(model_id));
                    Value::Object(body)
                }
            };
            let v = client
                .request(Method::POST, "/api/v1/helix-models", Some(&body))
                .await?;
            print_object(out, &v);
        }
        ModelCommand::List => {
            let v = client
                .request(Method::GET, "/api/v1/helix-models", None)
                .await?;
            print_list(
                out,
                &v,
                &[
                    "id",
                    "name",
                    "type",
                    "memory",
                    "context_length",
                    "enabled",
                    "prewarm",
                ],
            );
        }
        ModelCommand::Get { id } => {
            let v = client
                .request(
                    Method::GET,
                    &format!("/api/v1/helix-models/{}", path_segment(&id)),
                    None,
                )
                .await?;
            print_object(out, &v);
        }
        ModelCommand::Update { id, fields } => {
            let body = Value::Object(model_fields(&fields)?);
            let v = client
                .request(
                    Method::PUT,
                    &format!("/api/v1/helix-models/{}", path_segment(&id)),
                    Some(&body),
                )
                .await?;
            print_object(out, &v);
        }
        ModelCommand::TokenSource { id } => {
            let v = client
                .request(
                    Method::GET,
                    &format!("/api/v1/helix-models/{}/token-source", path_segment(&id)),
                    None,
                )
                .await?;
            print_object(out, &v);
        }
        ModelCommand::Delete { id } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/v1/helix-models/{}", path_segment(&id)),
                    None,
                )
                .await?;
            if out == OutputFormat::Table {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

async fn org(cmd: OrgCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        OrgCommand::Create { name } => {
            let v = client
                .request(Method::POST, "/api/v1/orgs", Some(&json!({ "name": name })))
                .await?;
            print_object(out, &v);
        }
        OrgCommand::List => {
            let v = client.request(Method::GET, "/api/v1/orgs", None).await?;
            print_list(out, &v, &["id", "name", "huggingface_token_set", "created"]);
        }
        OrgCommand::Settings(OrgSettingsCommand::Get { org }) => {
            let v = client
                .request(Method::GET, &format!("/api/v1/orgs/{org}/settings"), None)
                .await?;
            print_object(out, &v);
        }
        OrgCommand::Settings(OrgSettingsCommand::Set { org, token }) => {
            let body = token_body(token)?;
            let v = client
                .request(
                    Method::PUT,
                    &format!("/api/v1/orgs/{org}/settings"),
                    Some(&body),
                )
                .await?;
            print_object(out, &v);
        }
    }
    Ok(())
}

async fn user(cmd: UserCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        UserCommand::Create {
            name,
            admin,
            org,
            owner,
        } => {
            let mut body = json!({ "name": name, "admin": admin });
            if let Some(org) = org {
                body["organization_id"] = json!(org);
                body["org_role"] = json!(if owner { "owner" } else { "member" });
            }
            let v = client
                .request(Method::POST, "/api/v1/users", Some(&body))
                .await?;
            print_object(out, &v);
        }
        UserCommand::List => {
            let v = client.request(Method::GET, "/api/v1/users", None).await?;
            print_list(
                out,
                &v,
                &[
                    "id",
                    "name",
                    "admin",
                    "organization_id",
                    "org_role",
                    "huggingface_token_set",
                ],
            );
        }
        UserCommand::IssueKey { user } => {
            let user = user.unwrap_or_else(|| "me".into());
            let v = client
                .request(
                    Method::POST,
                    &format!("/api/v1/users/{user}/api-keys"),
                    None,
                )
                .await?;
            print_object(out, &v);
        }
        UserCommand::RevokeKey { key_id } => {
            client
                .request(Method::DELETE, &format!("/api/v1/api-keys/{key_id}"), None)
                .await?;
            if out == OutputFormat::Table {
                println!("revoked {key_id}");
            }
        }
        UserCommand::Settings(UserSettingsCommand::Get { user }) => {
            let user = user.unwrap_or_else(|| "me".into());
            let v = client
                .request(Method::GET, &format!("/api/v1/users/{user}/settings"), None)
                .await?;
            print_object(out, &v);
        }
        UserCommand::Settings(UserSettingsCommand::Set { user, token }) => {
            let user = user.unwrap_or_else(|| "me".into());
            let body = token_body(token)?;
            let v = client
                .request(
                    Method::PUT,
                    &format!("/api/v1/users/{user}/settings"),
                    Some(&body),
                )
                .await?;
            print_object(out, &v);
        }
    }
    Ok(())
}

/// `{"huggingface_token": ...}` from `--huggingface-token T|-` or `--clear-hf-token`.
fn token_body(flags: TokenFlags) -> Result<Value, Failure> {
    if flags.clear_hf_token {
        return Ok(json!({ "huggingface_token": "" }));
    }
    let token = read_secret_arg(flags.huggingface_token.unwrap_or_default())?;
    if token.is_empty() {
        return Err(usage(
            "--huggingface-token is empty; use --clear-hf-token to clear it",
        ));
    }
    Ok(json!({ "huggingface_token": token }))
}

/// Only the flags that were given, so an update changes nothing else.
fn model_fields(f: &ModelFlags) -> Result<Map<String, Value>, Failure> {
    let mut m = Map::new();
    if let Some(v) = &f.name {
        m.insert("name".into(), json!(v));
    }
    if let Some(v) = &f.model_type {
        m.insert("type".into(), json!(v));
    }
    if let Some(v) = &f.runtime {
        m.insert("runtime".into(), json!(v));
    }
    if let Some(v) = &f.memory {
        m.insert("memory".into(), json!(v));
    }
    if let Some(v) = f.context {
        m.insert("context_length".into(), json!(v));
    }
    if let Some(v) = &f.description {
        m.insert("description".into(), json!(v));
    }
    if let Some(v) = f.enabled {
        m.insert("enabled".into(), json!(v));
    }
    if let Some(v) = f.prewarm {
        m.insert("prewarm".into(), json!(v));
    }
    if let Some(v) = f.auto_pull {
        m.insert("auto_pull".into(), json!(v));
    }
    if let Some(v) = &f.huggingface_token {
        m.insert(
            "huggingface_token".into(),
            json!(read_secret_arg(v.clone())?),
        );
    }
    if let Some(v) = &f.runtime_args {
        let args: Vec<String> = serde_json::from_str(v).map_err(|e| {
            usage(format!(
                "--runtime-args must be a JSON array of strings: {e}"
            ))
        })?;
        m.insert("runtime_args".into(), json!(args));
    }
    Ok(m)
}

/// A model id in a URL path: `/` stays (ids like `org/name` are routed as such), anything
/// outside the unreserved set is percent-encoded.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `-` means: read the secret from standard input (first line, trimmed).
fn read_secret_arg(arg: String) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("cannot read the token from stdin: {e}")))?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

fn print_object(out: OutputFormat, v: &Value) {
    match out {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        OutputFormat::Table => output::object(v),
    }
}

fn print_list(out: OutputFormat, v: &Value, columns: &[&str]) {
    if out == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let rows = v
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| columns.iter().map(|c| output::cell(item.get(*c))).collect())
                .collect()
        })
        .unwrap_or_default();
    output::table(columns, rows);
}

async fn run_node(flags: NodeFlags, launch: crate::daemon::Launch) -> Result<(), Failure> {
    let file = match &flags.config {
        Some(path) => FileConfig::load(path).map_err(|e| usage(e.to_string()))?,
        None => FileConfig::default(),
    };
    let config = NodeConfig::resolve(
        file,
        Overrides {
            data_dir: flags.data_dir,
            node_id: flags.node_id,
            api_addr: flags.api_addr,
            peer_addr: flags.peer_addr,
            gpus: flags.gpus,
            vllm_command: flags.vllm_command,
            log_format: flags.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
        },
    )
    .map_err(|e| usage(e.to_string()))?;
    crate::logging::init(config.log_format);
    crate::daemon::run(config, launch, shutdown_signal())
        .await
        .map_err(|e| failed(format!("{e:#}")))
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
