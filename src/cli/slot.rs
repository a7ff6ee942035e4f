//! `helix slot list`: model instances, what runs where.

use super::args::{OutputFormat, SlotCommand};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, Row};
use crate::api::types::SlotView;

impl Row for SlotView {
    const COLUMNS: &'static [&'static str] = &[
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
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.id),
            cell(&self.model_id),
            cell(&self.node_id),
            cell(&self.gpu_indices),
            cell(&self.state),
            cell(&self.port),
            cell(&self.hf_token_source),
            cell(&self.restarts),
            cell(&self.last_error),
            cell(&self.pending_reason),
        ]
    }
}

pub async fn run(cmd: SlotCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let SlotCommand::List = cmd;
    let answer = client.get::<Vec<SlotView>>("/api/v1/slots").await?;
    output::list(out, &answer);
    Ok(())
}
