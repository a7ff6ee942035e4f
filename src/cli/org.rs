//! `helix org ...`: organizations and their Hugging Face token.

use super::args::{OrgCommand, OrgSettingsCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, Row};
use super::secret::token_update;
use crate::api::types::{NewOrg, OrgView, TokenSettingsView};

impl Row for OrgView {
    const COLUMNS: &'static [&'static str] = &["id", "name", "huggingface_token_set", "created"];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.id),
            cell(&self.name),
            cell(&self.huggingface_token_set),
            cell(&self.created),
        ]
    }
}

pub async fn run(cmd: OrgCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        OrgCommand::Create { name } => {
            let answer = client
                .post::<_, OrgView>("/api/v1/orgs", &NewOrg { name })
                .await?;
            output::object(out, &answer);
        }
        OrgCommand::List => {
            let answer = client.get::<Vec<OrgView>>("/api/v1/orgs").await?;
            output::list(out, &answer);
        }
        OrgCommand::Settings(OrgSettingsCommand::Get { org }) => {
            let answer = client
                .get::<TokenSettingsView>(&format!("/api/v1/orgs/{org}/settings"))
                .await?;
            output::object(out, &answer);
        }
        OrgCommand::Settings(OrgSettingsCommand::Set { org, token }) => {
            let update = token_update(token.huggingface_token, token.clear_hf_token)?;
            let answer = client
                .put::<_, TokenSettingsView>(&format!("/api/v1/orgs/{org}/settings"), &update)
                .await?;
            output::object(out, &answer);
        }
    }
    Ok(())
}
