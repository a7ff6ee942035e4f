//! `helix cluster ...` and the members (`helix node list|remove`), through the API.

use secrecy::ExposeSecret;

use super::args::{ClusterCommand, JoinTokenCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, table_row};
use crate::api::types::{
    JoinTokenInput, JoinTokenView, LeaveInput, LeftView, MemberView, NewJoinTokenView, RemovedView,
    StatusView,
};

table_row!(MemberView {
    id,
    api_addr,
    peer_addr,
    role,
    leader,
    reachable,
    last_contact_ms,
    lag,
    applied_index
});

table_row!(JoinTokenView {
    id,
    status,
    uses,
    max_uses,
    expires,
    created_by
});

pub async fn run(cmd: ClusterCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        ClusterCommand::Status => {
            let answer = client.get::<StatusView>("/api/v1/cluster/status").await?;
            if out == OutputFormat::Json {
                output::json(&answer.json);
                return Ok(());
            }
            let status = &answer.body;
            let quorum = &status.quorum;
            println!(
                "leader: {}  term: {}  commit index: {}  quorum: {} ({}/{} voters reachable, {} needed)",
                cell(&status.leader_id),
                cell(&status.term),
                cell(&status.commit_index),
                if quorum.healthy { "healthy" } else { "NOT healthy" },
                cell(&quorum.reachable_voters),
                cell(&quorum.voters),
                cell(&quorum.needed),
            );
            output::table(&status.members);
            if let Some(why) = &status.not_ready {
                println!("this node is NOT ready: {why}");
            }
            let autopilot = &status.autopilot;
            match &autopilot.last_action {
                Some(a) => println!(
                    "autopilot (dead after {} ms): last {} node {} at {}",
                    autopilot.dead_after_ms,
                    a.kind.trim_start_matches("autopilot_"),
                    cell(&a.node_id),
                    a.at
                ),
                None => println!(
                    "autopilot (dead after {} ms): no replacement yet",
                    autopilot.dead_after_ms
                ),
            }
        }
        ClusterCommand::JoinToken(cmd) => join_token(cmd, client, out).await?,
    }
    Ok(())
}

async fn join_token(
    cmd: JoinTokenCommand,
    client: &Client,
    out: OutputFormat,
) -> Result<(), Failure> {
    const PATH: &str = "/api/v1/cluster/join-tokens";
    match cmd {
        JoinTokenCommand::Create { ttl, uses } => {
            let input = JoinTokenInput {
                ttl: Some(ttl),
                uses,
            };
            let answer = client.post::<_, NewJoinTokenView>(PATH, &input).await?;
            match out {
                OutputFormat::Json => output::json(&answer.json),
                OutputFormat::Table => {
                    let view = &answer.body.view;
                    let uses = view
                        .max_uses
                        .map_or("any number of".to_string(), |n| n.to_string());
                    eprintln!(
                        "join token {} admits {uses} node(s) until {}; shown this once:",
                        view.id, view.expires
                    );
                    println!("{}", answer.body.token.expose_secret());
                }
            }
        }
        JoinTokenCommand::List => {
            let answer = client.get::<Vec<JoinTokenView>>(PATH).await?;
            output::list(out, &answer);
        }
        JoinTokenCommand::Revoke { id } => {
            let answer = client
                .delete::<JoinTokenView>(&format!("{PATH}/{id}"))
                .await?;
            output::object(out, &answer);
        }
    }
    Ok(())
}

pub async fn list_nodes(client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let answer = client.get::<Vec<MemberView>>("/api/v1/nodes").await?;
    output::list(out, &answer);
    Ok(())
}

pub async fn remove_node(id: u64, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let answer = client
        .delete::<RemovedView>(&format!("/api/v1/nodes/{id}"))
        .await?;
    output::object(out, &answer);
    Ok(())
}

/// `helix node leave [ID]`: the node the URL reaches leaves, then stops.
pub async fn leave_node(
    id: Option<u64>,
    client: &Client,
    out: OutputFormat,
) -> Result<(), Failure> {
    let answer = client
        .post::<_, LeftView>(crate::api::LEAVE_PATH, &LeaveInput { node_id: id })
        .await?;
    match out {
        OutputFormat::Json => output::json(&answer.json),
        OutputFormat::Table => {
            println!("node {} left the cluster and is stopping", answer.body.left)
        }
    }
    Ok(())
}
