//! `helix audit list`: changes of secrets and permissions.

use super::args::{AuditCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, table_row};
use crate::api::types::AuditView;

table_row!(AuditView {
    seq,
    at,
    actor_user_id,
    kind,
    level,
    target
});

pub async fn run(cmd: AuditCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let AuditCommand::List = cmd;
    let answer = client.get::<Vec<AuditView>>("/api/v1/audit").await?;
    output::list(out, &answer);
    Ok(())
}
