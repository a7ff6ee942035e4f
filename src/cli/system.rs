//! `helix system settings get|set`: the cluster-wide Hugging Face token.

use super::args::{OutputFormat, SettingsCommand, SystemCommand, TokenFlags};
use super::client::Client;
use super::failure::Failure;
use super::settings;

const SETTINGS: &str = "/api/v1/system/settings";

pub async fn run(cmd: SystemCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let SystemCommand::Settings(cmd) = cmd;
    match cmd {
        SettingsCommand::Get => settings::show(client, out, SETTINGS).await,
        SettingsCommand::Set {
            huggingface_token,
            clear_hf_token,
        } => {
            // The same flags as org and user settings, with their own help text.
            let flags = TokenFlags {
                huggingface_token,
                clear_hf_token,
            };
            settings::change(client, out, SETTINGS, flags).await
        }
    }
}
