//! `helix user ...`: users, their API keys and their Hugging Face token. A user argument
//! left out means the caller (`me`).

use super::args::{OutputFormat, UserCommand, UserSettingsCommand};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, cell, Row};
use super::secret::token_update;
use crate::api::types::{IssuedKeyView, NewUserView, TokenSettingsView, UserInput, UserView};
use crate::state::OrgRole;

impl Row for UserView {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "admin",
        "organization_id",
        "org_role",
        "huggingface_token_set",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.id),
            cell(&self.name),
            cell(&self.admin),
            cell(&self.organization_id),
            cell(&self.org_role),
            cell(&self.huggingface_token_set),
        ]
    }
}

pub async fn run(cmd: UserCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        UserCommand::Create {
            name,
            admin,
            org,
            owner,
        } => {
            let input = UserInput {
                name,
                admin,
                org_role: org.as_ref().map(|_| match owner {
                    true => OrgRole::Owner,
                    false => OrgRole::Member,
                }),
                organization_id: org,
            };
            let answer = client
                .post::<_, NewUserView>("/api/v1/users", &input)
                .await?;
            output::object(out, &answer);
        }
        UserCommand::List => {
            let answer = client.get::<Vec<UserView>>("/api/v1/users").await?;
            output::list(out, &answer);
        }
        UserCommand::IssueKey { user } => {
            let user = user.as_deref().unwrap_or("me");
            let answer = client
                .post_empty::<IssuedKeyView>(&format!("/api/v1/users/{user}/api-keys"))
                .await?;
            output::object(out, &answer);
        }
        UserCommand::RevokeKey { key_id } => {
            client
                .delete::<()>(&format!("/api/v1/api-keys/{key_id}"))
                .await?;
            if out == OutputFormat::Table {
                println!("revoked {key_id}");
            }
        }
        UserCommand::Settings(UserSettingsCommand::Get { user }) => {
            let user = user.as_deref().unwrap_or("me");
            let answer = client
                .get::<TokenSettingsView>(&format!("/api/v1/users/{user}/settings"))
                .await?;
            output::object(out, &answer);
        }
        UserCommand::Settings(UserSettingsCommand::Set { user, token }) => {
            let user = user.as_deref().unwrap_or("me");
            let update = token_update(token.huggingface_token, token.clear_hf_token)?;
            let answer = client
                .put::<_, TokenSettingsView>(&format!("/api/v1/users/{user}/settings"), &update)
                .await?;
            output::object(out, &answer);
        }
    }
    Ok(())
}
