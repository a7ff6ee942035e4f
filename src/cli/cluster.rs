//! `helix cluster ...` and the members (`helix node list|remove`), through the API.

use secrecy::ExposeSecret;

use super::args::{ClusterCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, table_row};
use crate::api::types::{JoinTokenView, MemberView, RemovedView, StatusView};

table_row!(MemberView {
    id,
    api_addr,
    peer_addr,
    role,
    leader,
    reachable,
    applied_index
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
        }
        ClusterCommand::JoinToken => {
            let answer = client
                .get::<JoinTokenView>("/api/v1/cluster/join-token")
                .await?;
            match out {
                OutputFormat::Json => println!("{}", answer.json),
                OutputFormat::Table => println!("{}", answer.body.join_token.expose_secret()),
            }
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
