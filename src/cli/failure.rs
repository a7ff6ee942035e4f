//! How a command fails: a message for standard error and the exit code it deserves.

use serde_json::json;

use super::args::OutputFormat;
use super::client::ClientError;

/// A failure and the exit code it deserves: 1 a request failed, 2 bad usage.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    /// The HTTP status a node answered with, when one did.
    pub status: Option<u16>,
}

/// The command line itself is wrong (a flag, a file, a token on stdin): exit code 2.
pub fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
        status: None,
    }
}

/// A request or a node failed: exit code 1.
pub fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
        status: None,
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::BadCaCert(message) | ClientError::BadUrl(message) => usage(message),
            e => Failure {
                status: e.status(),
                ..failed(e.to_string())
            },
        }
    }
}

impl Failure {
    /// On standard error: `error: MESSAGE`, or under `-o json` one line of JSON,
    /// `{"error": "...", "status": 404}` (`status` only when a node answered one).
    pub fn print(&self, out: OutputFormat) {
        match out {
            OutputFormat::Table => eprintln!("error: {}", self.message),
            OutputFormat::Json => {
                let mut error = json!({ "error": self.message });
                if let Some(status) = self.status {
                    error["status"] = json!(status);
                }
                eprintln!("{error}");
            }
        }
    }
}
