//! `helix operator keyring list|rotate` and `helix operator compact`.

use super::args::{KeyringCommand, OutputFormat};
use super::client::{Answer, Client};
use super::failure::Failure;
use super::output::{self, table_row};
use crate::api::types::{CompactionView, DataKeyView, KeyringView};

const KEYRING_PATH: &str = "/api/v1/operator/keyring";

table_row!(DataKeyView {
    id,
    created,
    age_seconds as "age_s",
    secrets,
    current
});

pub async fn run(cmd: KeyringCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let answer = match cmd {
        KeyringCommand::List => client.get::<KeyringView>(KEYRING_PATH).await?,
        KeyringCommand::Rotate => {
            let answer = client
                .post_empty::<KeyringView>(&format!("{KEYRING_PATH}/rotate"))
                .await?;
            eprintln!(
                "rotated: every token is sealed with data key {}; older keys are destroyed \
                 (their log entries go at the next compaction: `helix operator compact`)",
                answer.body.current
            );
            answer
        }
    };
    show(out, &answer);
    Ok(())
}

fn show(out: OutputFormat, answer: &Answer<KeyringView>) {
    if out == OutputFormat::Json {
        return output::json(&answer.json);
    }
    let keyring = &answer.body;
    println!("seal key: {}", keyring.seal_key_id);
    let node = &keyring.this_node;
    match &node.problem {
        None => println!(
            "this node: seal key {} ({}) opens the keyring",
            node.id, node.source
        ),
        Some(problem) => println!("this node: {problem}"),
    }
    if keyring.legacy_secrets > 0 {
        println!(
            "{} token(s) still sealed with the cluster key from before keyrings: run \
             `helix operator keyring rotate`",
            keyring.legacy_secrets
        );
    }
    output::table(&keyring.keys);
}

pub async fn compact(client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let answer = client
        .post_empty::<CompactionView>("/api/v1/operator/compact")
        .await?;
    match out {
        OutputFormat::Json => output::json(&answer.json),
        OutputFormat::Table => println!(
            "every node compacts its Raft log through index {} at least as it applies the \
             request; this node's is purged through {}",
            answer.body.purges_through_at_least,
            answer
                .body
                .this_node_purged_through
                .map_or("nothing yet".to_string(), |i| i.to_string())
        ),
    }
    Ok(())
}
