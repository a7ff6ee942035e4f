//! Hugging Face token settings of the system, an organization or a user: shown masked,
//! changed from `--huggingface-token T|-` or `--clear-hf-token`.

use secrecy::{ExposeSecret, SecretString};

use super::args::{OutputFormat, TokenFlags};
use super::client::Client;
use super::failure::{usage, Failure};
use super::output;
use super::secret::read_secret_arg;
use crate::api::types::{TokenSettingsUpdate, TokenSettingsView};

/// The settings at `path` (e.g. `/api/v1/orgs/ORG/settings`).
pub async fn show(client: &Client, out: OutputFormat, path: &str) -> Result<(), Failure> {
    let answer = client.get::<TokenSettingsView>(path).await?;
    output::object(out, &answer);
    Ok(())
}

/// Set the token at `path` (`-` reads it from stdin), or clear it.
pub async fn change(
    client: &Client,
    out: OutputFormat,
    path: &str,
    flags: TokenFlags,
) -> Result<(), Failure> {
    let update = token_update(flags)?;
    let answer = client.put::<_, TokenSettingsView>(path, &update).await?;
    output::object(out, &answer);
    Ok(())
}

/// A settings update from `--huggingface-token T|-` or `--clear-hf-token`. An empty token
/// is refused: clearing is said out loud, not by an empty stdin.
fn token_update(flags: TokenFlags) -> Result<TokenSettingsUpdate, Failure> {
    let token = if flags.clear_hf_token {
        SecretString::default()
    } else {
        let token = read_secret_arg(flags.huggingface_token.unwrap_or_default())?;
        if token.expose_secret().is_empty() {
            return Err(usage(
                "--huggingface-token is empty; use --clear-hf-token to clear it",
            ));
        }
        token
    };
    Ok(TokenSettingsUpdate {
        huggingface_token: Some(token),
    })
}
