//! `helix system settings get|set`: the cluster-wide Hugging Face token.

use super::args::{OutputFormat, SettingsCommand, SystemCommand};
use super::client::Client;
use super::failure::Failure;
use super::output;
use super::secret::token_update;
use crate::api::types::TokenSettingsView;

const SETTINGS: &str = "/api/v1/system/settings";

pub async fn run(cmd: SystemCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let SystemCommand::Settings(cmd) = cmd;
    let answer = match cmd {
        SettingsCommand::Get => client.get::<TokenSettingsView>(SETTINGS).await?,
        SettingsCommand::Set {
            huggingface_token,
            clear_hf_token,
        } => {
            let update = token_update(huggingface_token, clear_hf_token)?;
            client.put(SETTINGS, &update).await?
        }
    };
    output::object(out, &answer);
    Ok(())
}
