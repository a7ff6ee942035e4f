//! Tokens given on the command line: `-` reads one from standard input, so it stays out of
//! the shell history and the process list.

use std::io::Read;

use secrecy::SecretString;

use super::failure::{usage, Failure};

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
