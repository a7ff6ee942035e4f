//! The `helix` command line: `node start|join` runs a node; everything else talks HTTP to
//! `--url`. Exit codes: 0 success, 1 a request failed, 2 bad usage.
//!
//! `args` holds the flags, one module per command group carries them out, `client` sends
//! and reads the API's types (`crate::api::types`) through the `--url` list (`failover`
//! says when to move on), and `output` prints the answers; `failure` prints what failed
//! (as JSON under `-o json`).

mod args;
mod audit;
mod chat;
mod client;
mod cluster;
mod failover;
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
mod wait;

use std::path::PathBuf;

use clap::Parser;

use args::{Command, NodeCommand, OutputFormat};
use client::Client;
pub use failure::Failure;

#[derive(Parser, Debug)]
#[command(name = "helix", version, about = "Run LLMs on a fleet of GPU machines")]
pub struct Cli {
    /// API endpoints to talk to, comma separated: the next is tried when one cannot be
    /// reached, times out, answers 503 or is not helix.
    #[arg(
        long,
        env = "HELIX_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key (`Authorization: Bearer`); the first admin's is in the bootstrap node's
    /// DATA_DIR/admin.key.
    #[arg(long, env = "HELIX_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// The cluster CA's certificate (a node's DATA_DIR/ca.pem) to verify https:// API
    /// addresses with, instead of the system's trusted roots.
    #[arg(long, env = "HELIX_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// How to print answers: aligned tables, or JSON (errors too, as one line of JSON on
    /// standard error).
    #[arg(
        short = 'o',
        long,
        value_enum,
        env = "HELIX_OUTPUT",
        default_value_t = OutputFormat::Table,
        global = true
    )]
    output: OutputFormat,
    /// Reads answer from the node's own replica without asking the leader: works without
    /// a quorum, may be slightly behind.
    #[arg(long, global = true)]
    stale: bool,
    #[command(subcommand)]
    command: Command,
}

/// Parse the command line, run it, print a failure: the process's exit code.
pub async fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_usage(e),
    };
    let out = cli.output;
    match run(cli).await {
        Ok(()) => 0,
        Err(failure) => {
            failure.print(out);
            failure.code
        }
    }
}

/// A command line clap refused: its own message, or JSON under `-o json`.
fn bad_usage(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown || !json_asked(std::env::args()) {
        e.exit();
    }
    let rendered = e.to_string();
    let text = rendered
        .lines()
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ");
    failure::usage(text).print(OutputFormat::Json);
    2
}

/// Whether the (unparsable) command line or the environment asks for JSON output.
fn json_asked(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    let flagged = args
        .windows(2)
        .any(|w| (w[0] == "-o" || w[0] == "--output") && w[1] == "json")
        || args
            .iter()
            .any(|a| a == "-ojson" || a == "-o=json" || a == "--output=json");
    flagged || std::env::var("HELIX_OUTPUT").is_ok_and(|v| v == "json")
}

/// `helix version`: this CLI's, then the node's when one answers (its absence is not an
/// error: the CLI's version is what was asked first).
async fn version(client: &Client, out: OutputFormat) {
    let cli_version = env!("CARGO_PKG_VERSION");
    let node = client.get::<serde_json::Value>("/api/v1/version").await;
    match out {
        OutputFormat::Json => {
            let mut answer = serde_json::json!({ "cli": cli_version });
            match node {
                Ok(node) => answer["node"] = node.json["version"].clone(),
                Err(e) => answer["node_error"] = e.to_string().into(),
            }
            output::json(&answer);
        }
        OutputFormat::Table => {
            println!("helix {cli_version} (this command line)");
            match node {
                Ok(answer) => println!(
                    "helix {} (the node)",
                    answer.body["version"].as_str().unwrap_or("unknown")
                ),
                Err(e) => eprintln!("the node's version is unknown: {e}"),
            }
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::new(
        &cli.url,
        cli.api_key.clone(),
        cli.ca_cert.as_deref(),
        cli.stale,
    )?;
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
        } => chat::run(model, prompt, max_tokens, &client, out).await,
        Command::Version => {
            version(&client, out).await;
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "helix", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and every flag or argument says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path != " helix" {
                missing.push(format!("{path} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }
}
