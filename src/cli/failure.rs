//! How a command fails: a message for standard error and the exit code it deserves.

use super::client::ClientError;

/// A failure and the exit code it deserves: 1 a request failed, 2 bad usage.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// The command line itself is wrong (a flag, a file, a token on stdin): exit code 2.
pub fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// A request or a node failed: exit code 1.
pub fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::BadCaCert(message) | ClientError::BadUrl(message) => usage(message),
            e => failed(e.to_string()),
        }
    }
}
