//! `helix slot list`: model instances, what runs where.

use super::args::{OutputFormat, SlotCommand};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, table_row};
use crate::api::types::SlotView;

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
    let SlotCommand::List = cmd;
    let answer = client.get::<Vec<SlotView>>("/api/v1/slots").await?;
    output::list(out, &answer);
    Ok(())
}
