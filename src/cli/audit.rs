//! `helix audit list`: changes of secrets and permissions.

use super::args::{AuditCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, Row};
use crate::api::types::AuditView;

impl Row for AuditView {
    const COLUMNS: &'static [&'static str] =
        &["seq", "at", "actor_user_id", "kind", "level", "target"];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.seq),
            cell(&self.at),
            cell(&self.actor_user_id),
            cell(&self.kind),
            cell(&self.level),
            cell(&self.target),
        ]
    }
}

pub async fn run(cmd: AuditCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let AuditCommand::List = cmd;
    let answer = client.get::<Vec<AuditView>>("/api/v1/audit").await?;
    output::list(out, &answer);
    Ok(())
}
