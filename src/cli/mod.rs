//! The `helix` command line: `node start|join` runs a node; everything else talks HTTP to
//! `--url`. Exit codes: 0 success, 1 a request failed, 2 bad usage.
//!
//! `args` holds the flags, one module per command group carries them out, `client` sends
//! and reads the API's types (`crate::api::types`), and `output` prints the answers.

mod args;
mod audit;
mod chat;
mod client;
mod cluster;
mod failure;
mod keyring;
mod model;
mod node;
mod operator;
mod org;
mod output;
mod secret;
mod settings;
mod slot;
mod system;
mod user;

use std::path::PathBuf;

use clap::Parser;

use args::{Command, NodeCommand, OutputFormat};
use client::Client;
pub use failure::Failure;

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
    /// The cluster CA's certificate (a node's DATA_DIR/ca.pem) to verify https:// API
    /// addresses with, instead of the system's trusted roots.
    #[arg(long, env = "HELIX_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

/// `helix version`: this CLI's, then the node's when one answers (its absence is not an
/// error: the CLI's version is what was asked first).
async fn version(client: &Client) {
    println!("helix {} (this command line)", env!("CARGO_PKG_VERSION"));
    match client.get::<serde_json::Value>("/api/v1/version").await {
        Ok(answer) => println!(
            "helix {} (the node)",
            answer.body["version"].as_str().unwrap_or("unknown")
        ),
        Err(e) => eprintln!("the node's version is unknown: {e}"),
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::new(&cli.url, cli.api_key.clone(), cli.ca_cert.as_deref())?;
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
        Command::Node(NodeCommand::Start(flags)) => node::start(flags).await,
        Command::Node(NodeCommand::Join { url, token, flags }) => {
            node::join(url, token, flags).await
        }
        Command::Node(NodeCommand::List) => cluster::list_nodes(&client, out).await,
        Command::Node(NodeCommand::Remove { id }) => cluster::remove_node(id, &client, out).await,
        Command::Node(NodeCommand::Leave { id }) => cluster::leave_node(id, &client, out).await,
        Command::Cluster(cmd) => cluster::run(cmd, &client, out).await,
        Command::System(cmd) => system::run(cmd, &client, out).await,
        Command::Model(cmd) => model::run(cmd, &client, out).await,
        Command::Slot(cmd) => slot::run(cmd, &client, out).await,
        Command::Bench(args) => crate::bench::run(
            args,
            &cli.url,
            cli.api_key.as_deref(),
            out == OutputFormat::Json,
        )
        .await
        .map_err(failure::failed),
        Command::Org(cmd) => org::run(cmd, &client, out).await,
        Command::User(cmd) => user::run(cmd, &client, out).await,
        Command::Audit(cmd) => audit::run(cmd, &client, out).await,
        Command::Operator(cmd) => operator::run(cmd, &client, out).await,
        Command::Chat {
            model,
            prompt,
            max_tokens,
        } => chat::run(model, prompt, max_tokens, &client).await,
        Command::Version => {
            version(&client).await;
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "helix", &mut std::io::stdout());
            Ok(())
        }
    }
}
