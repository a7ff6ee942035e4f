//! Joining, client side: a new node asks any member (by its API address, the one address
//! an operator gives it) for an id and then to be added. The member forwards to the leader.

use std::time::Duration;

use super::message::{JoinReply, JoinRequest};

/// The path on a member's API port that takes join requests.
pub const JOIN_API_PATH: &str = "/api/v1/cluster/join";

/// How long a joining node keeps asking while the cluster has no leader or is unreachable.
const JOIN_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("join refused by {url} ({status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("could not join: {0}")]
    GaveUp(String),
}

/// Ask the cluster at `url` (any member's API address) to join, proving `credential`.
/// Retries while the answer is 503 or nobody answers, for up to a minute.
pub async fn request_join(
    url: &str,
    credential: &str,
    request: &JoinRequest,
) -> Result<JoinReply, JoinError> {
    let http = reqwest::Client::new();
    let endpoint = format!("{}{JOIN_API_PATH}", url.trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    loop {
        let sent = http
            .post(&endpoint)
            .bearer_auth(credential)
            .json(request)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let retry_reason = match sent {
            Ok(resp) if resp.status().is_success() => match resp.json::<JoinReply>().await {
                Ok(reply) => return Ok(reply),
                Err(e) => format!("{endpoint} answered something else than a join reply: {e}"),
            },
            Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                format!("{endpoint} answered 503")
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or(text);
                return Err(JoinError::Refused {
                    url: url.to_string(),
                    status,
                    message,
                });
            }
            Err(e) => format!("cannot reach {endpoint}: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(JoinError::GaveUp(retry_reason));
        }
        tracing::warn!(reason = %retry_reason, "join not done yet, retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
