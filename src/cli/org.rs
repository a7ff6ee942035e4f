//! `helix org ...`: organizations and their Hugging Face token.

use super::args::{OrgCommand, OrgSettingsCommand, OutputFormat};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, table_row};
use super::settings;
use crate::api::types::{NewOrg, OrgView};

table_row!(OrgView {
    id,
    name,
    huggingface_token_set,
    created
});

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
            settings::show(client, out, &settings_path(&org)).await?;
        }
        OrgCommand::Settings(OrgSettingsCommand::Set { org, token }) => {
            let path = settings_path(&org);
            settings::change(client, out, &path, token).await?;
        }
    }
    Ok(())
}

fn settings_path(org: &str) -> String {
    format!("/api/v1/orgs/{org}/settings")
}
