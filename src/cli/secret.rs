//! Tokens given on the command line: `-` reads one from standard input, so it stays out of
//! the shell history and the process list.

use std::io::Read;

use secrecy::{ExposeSecret, SecretString};

use super::failure::{usage, Failure};
use crate::api::types::TokenSettingsUpdate;

/// `-` means: read the secret from standard input (first line, trimmed).
pub fn read_secret_arg(arg: String) -> Result<SecretString, Failure> {
    if arg != "-" {
        return Ok(SecretString::from(arg));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("cannot read the token from stdin: {e}")))?;
    Ok(SecretString::from(
        text.lines().next().unwrap_or("").trim().to_string(),
    ))
}

/// A settings update from `--huggingface-token T|-` or `--clear-hf-token`. An empty token
/// is refused: clearing is said out loud, not by an empty stdin.
pub fn token_update(token: Option<String>, clear: bool) -> Result<TokenSettingsUpdate, Failure> {
    let token = if clear {
        SecretString::default()
    } else {
        let token = read_secret_arg(token.unwrap_or_default())?;
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
