//! The HTTP client both scenarios share, and how a request's failure is classified.

use std::time::Duration;

use super::args::BenchArgs;

pub(super) fn http_client(args: &BenchArgs) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(4))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(args.timeout_ms.min(2000)))
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Why a request failed: a short kind for counting (`http 503`, `timeout`, `connect`) and a
/// message for the samples.
pub(super) struct Failure {
    pub(super) kind: String,
    pub(super) message: String,
}

fn transport_failure(endpoint: &str, e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    Failure {
        kind: kind.into(),
        message: format!("{endpoint}: {e}"),
    }
}

/// Send a request, read the whole answer (so the connection goes back to the pool), and
/// accept any 2xx (and 409 when `conflict_ok`).
pub(super) async fn send(
    endpoint: &str,
    request: reqwest::RequestBuilder,
    conflict_ok: bool,
) -> Result<bytes::Bytes, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_failure(endpoint, e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_failure(endpoint, e))?;
    if status.is_success() || (conflict_ok && status == reqwest::StatusCode::CONFLICT) {
        return Ok(body);
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.chars().take(200).collect();
    Err(Failure {
        kind: format!("http {}", status.as_u16()),
        message: format!("{endpoint}: {status}: {text}"),
    })
}
