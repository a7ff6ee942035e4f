//! `helix user ...`: users, their API keys and their Hugging Face token.

use super::args::{KeyCommand, OutputFormat, UserCommand, UserSettingsCommand};
use super::client::Client;
use super::failure::Failure;
use super::output::{self, table_row};
use super::settings;
use crate::api::types::{ApiKeyView, IssuedKeyView, KeyInput, NewUserView, UserInput, UserView};
use crate::state::OrgRole;

table_row!(UserView {
    id,
    name,
    admin,
    organization_id,
    org_role,
    huggingface_token_set,
    disabled
});

table_row!(ApiKeyView {
    id,
    name,
    created,
    last_used
});

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
        UserCommand::Keys { user } => {
            let path = user_path(user.as_deref(), "api-keys");
            let answer = client.get::<Vec<ApiKeyView>>(&path).await?;
            output::list(out, &answer);
        }
        UserCommand::Key(cmd) => key(cmd, client, out).await?,
        UserCommand::Disable { user } => {
            client
                .post_empty::<()>(&user_path(Some(&user), "disable"))
                .await?;
            output::done(out, "disabled", &user);
        }
        UserCommand::Enable { user } => {
            client
                .post_empty::<()>(&user_path(Some(&user), "enable"))
                .await?;
            output::done(out, "enabled", &user);
        }
        UserCommand::Settings(UserSettingsCommand::Get { user }) => {
            settings::show(client, out, &user_path(user.as_deref(), "settings")).await?;
        }
        UserCommand::Settings(UserSettingsCommand::Set { user, token }) => {
            let path = user_path(user.as_deref(), "settings");
            settings::change(client, out, &path, token).await?;
        }
    }
    Ok(())
}

async fn key(cmd: KeyCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        KeyCommand::Issue { user, name } => {
            let path = user_path(user.as_deref(), "api-keys");
            let answer = client
                .post::<_, IssuedKeyView>(&path, &KeyInput { name })
                .await?;
            output::object(out, &answer);
        }
        KeyCommand::Rotate { key_id } => {
            let path = format!("/api/v1/api-keys/{key_id}/rotate");
            let answer = client.post_empty::<IssuedKeyView>(&path).await?;
            output::object(out, &answer);
        }
        KeyCommand::Revoke { key_id } => {
            client
                .delete::<()>(&format!("/api/v1/api-keys/{key_id}"))
                .await?;
            output::done(out, "revoked", &key_id);
        }
    }
    Ok(())
}

/// `/api/v1/users/USER/{what}`; no user means the caller.
fn user_path(user: Option<&str>, what: &str) -> String {
    format!("/api/v1/users/{}/{what}", user.unwrap_or("me"))
}
