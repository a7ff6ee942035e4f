//! `helix slot list`: model instances, what runs where. `helix slot logs`: a slot's vLLM
//! log, from whichever node runs it.

use std::io::Write;
use std::time::Duration;

use super::args::{OutputFormat, SlotCommand};
use super::client::{path_segment, Client, ClientError};
use super::failure::Failure;
use super::output::{self, table_row};
use crate::api::types::{SlotLogView, SlotView};

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

table_row!(SlotView {
    id,
    model_id,
    node_id,
    gpu_indices,
    state,
    port,
    hf_token_source,
    restarts,
    last_error,
    pending_reason
});

pub async fn run(cmd: SlotCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        SlotCommand::List => {
            let answer = client.get::<Vec<SlotView>>("/api/v1/slots").await?;
            output::list(out, &answer);
        }
        SlotCommand::Logs { slot, follow, tail } => {
            let path = format!("/api/v1/slots/{}/logs", path_segment(&slot));
            let first = match tail {
                Some(n) => format!("{path}?tail={n}"),
                None => path.clone(),
            };
            let answer = client.get::<SlotLogView>(&first).await?;
            if !follow {
                match out {
                    OutputFormat::Json => output::json(&answer.json),
                    OutputFormat::Table => show(&answer.body.text),
                }
                return Ok(());
            }
            let mut chunk = answer;
            let ctrl_c = tokio::signal::ctrl_c();
            tokio::pin!(ctrl_c);
            loop {
                // Under -o json, one JSON object per line (JSON Lines), each with its offsets.
                match out {
                    OutputFormat::Json if !chunk.body.text.is_empty() => {
                        println!("{}", chunk.json)
                    }
                    OutputFormat::Json => {}
                    OutputFormat::Table => show(&chunk.body.text),
                }
                let next = format!("{path}?offset={}", chunk.body.end);
                tokio::select! {
                    _ = &mut ctrl_c => return Ok(()),
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                loop {
                    match client.get::<SlotLogView>(&next).await {
                        Ok(answer) => {
                            chunk = answer;
                            break;
                        }
                        // Refused (no such slot any more, no right to it): that is final.
                        Err(e @ ClientError::Server { status, .. }) if status < 500 => {
                            return Err(e.into())
                        }
                        // The node that runs it may be restarting: keep trying.
                        Err(e) => eprintln!("{e}; trying again"),
                    }
                    tokio::select! {
                        _ = &mut ctrl_c => return Ok(()),
                        _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                    }
                }
            }
        }
    }
    Ok(())
}

fn show(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
