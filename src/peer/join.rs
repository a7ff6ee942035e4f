//! Joining, client side: a new node asks any member (by its API address, the one address an
//! operator gives it) to admit it. Before it sends its token it checks that the cluster is
//! the one the token names: over HTTPS the server's chain must carry the CA whose
//! fingerprint the token holds (no trust on first use); plain HTTP is allowed to loopback
//! addresses only, and the CA it serves must match the fingerprint before anything is sent.

use std::net::IpAddr;
use std::time::Duration;

use super::message::{JoinReply, JoinRequest};
use crate::crypto::JoinToken;
use crate::retry::{root_cause, Retry};

/// The path on a member's API port that takes join requests.
pub const JOIN_API_PATH: &str = "/api/v1/cluster/join";
/// The path on a member's API port that serves the cluster CA's certificate (PEM).
pub const CA_API_PATH: &str = "/api/v1/cluster/ca";

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
    #[error(
        "the cluster at {url} is not the one the join token is for: its CA has fingerprint \
         {found}, the token expects {expected}"
    )]
    WrongCluster {
        url: String,
        found: String,
        expected: String,
    },
    #[error("{0}")]
    BadUrl(String),
    #[error("could not join: {0}")]
    GaveUp(String),
}

/// Ask the cluster at `url` (any member's API address) to admit this node with `token`.
/// Retries while the answer is 503 or nobody answers, for up to a minute.
pub async fn request_join(
    url: &str,
    token: &JoinToken,
    request: &JoinRequest,
) -> Result<JoinReply, JoinError> {
    let base = url.trim_end_matches('/');
    let parsed =
        reqwest::Url::parse(base).map_err(|e| JoinError::BadUrl(format!("{url:?}: {e}")))?;
    let http = match parsed.scheme() {
        "https" => {
            let tls = crate::tls::pinned_client_config(&token.ca_fingerprint)
                .map_err(|e| JoinError::BadUrl(e.to_string()))?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .build()
        }
        "http" if is_loopback(&parsed) => reqwest::Client::builder().build(),
        "http" => {
            return Err(JoinError::BadUrl(format!(
                "refusing to send a join token over plain HTTP to {url}: use the member's \
                 https:// address (plain HTTP is for loopback addresses only)"
            )))
        }
        other => {
            return Err(JoinError::BadUrl(format!(
                "{url:?}: expected an http:// or https:// URL, not {other}://"
            )))
        }
    }
    .map_err(|e| JoinError::BadUrl(e.to_string()))?;
    let mut retry = Retry::new("join", JOIN_PATIENCE);
    loop {
        let retry_reason = match attempt(&http, base, parsed.scheme(), token, request).await {
            Ok(reply) => return Ok(reply),
            Err(Attempt::Retry(reason)) => reason,
            Err(Attempt::Fail(e)) => return Err(e),
        };
        if !retry.wait(&retry_reason).await {
            return Err(JoinError::GaveUp(retry_reason));
        }
    }
}

enum Attempt {
    Retry(String),
    Fail(JoinError),
}

async fn attempt(
    http: &reqwest::Client,
    base: &str,
    scheme: &str,
    token: &JoinToken,
    request: &JoinRequest,
) -> Result<JoinReply, Attempt> {
    if scheme == "http" {
        // No TLS to pin: check the CA the member serves before the token leaves this node.
        let ca_url = format!("{base}{CA_API_PATH}");
        let ca_pem = match http
            .get(&ca_url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => resp
                .text()
                .await
                .map_err(|e| Attempt::Retry(format!("{ca_url}: {e}")))?,
            Ok(resp) => {
                return Err(Attempt::Retry(format!(
                    "{ca_url} answered {}",
                    resp.status()
                )))
            }
            Err(e) => {
                return Err(Attempt::Retry(format!(
                    "cannot reach {ca_url}: {}",
                    root_cause(&e)
                )))
            }
        };
        check_ca(base, &ca_pem, token).map_err(Attempt::Fail)?;
    }
    let endpoint = format!("{base}{JOIN_API_PATH}");
    let sent = http
        .post(&endpoint)
        .json(request)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => resp,
        // A certificate that does not chain to the pinned CA fails here, every time.
        Err(e) if e.is_connect() && is_certificate_error(&e) => {
            return Err(Attempt::Fail(JoinError::WrongCluster {
                url: base.into(),
                found: "(a certificate that does not chain to it)".into(),
                expected: token.ca_fingerprint.clone(),
            }))
        }
        Err(e) => {
            return Err(Attempt::Retry(format!(
                "cannot reach {endpoint}: {}",
                root_cause(&e)
            )))
        }
    };
    if resp.status().is_success() {
        let reply = resp.json::<JoinReply>().await.map_err(|e| {
            Attempt::Retry(format!(
                "{endpoint} answered something else than a join reply: {e}"
            ))
        })?;
        check_ca(base, &reply.ca_pem, token).map_err(Attempt::Fail)?;
        return Ok(reply);
    }
    if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(Attempt::Retry(format!("{endpoint} answered 503")));
    }
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(text);
    Err(Attempt::Fail(JoinError::Refused {
        url: base.into(),
        status,
        message,
    }))
}

fn check_ca(url: &str, ca_pem: &str, token: &JoinToken) -> Result<(), JoinError> {
    let found = crate::tls::fingerprint_of_pem(ca_pem)
        .unwrap_or_else(|e| format!("(no readable certificate: {e})"));
    if found == token.ca_fingerprint {
        Ok(())
    } else {
        Err(JoinError::WrongCluster {
            url: url.into(),
            found,
            expected: token.ca_fingerprint.clone(),
        })
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Whether a connect error came from certificate verification (walks the source chain).
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("certificate") || text.contains("fingerprint") {
            return true;
        }
        source = err.source();
    }
    false
}
