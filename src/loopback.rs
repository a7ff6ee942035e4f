//! Requests to this node's own vLLM processes, which listen on 127.0.0.1 only: the gateway
//! sends a local replica's requests here, and the peer server those another node routed to a
//! replica here. Answers are passed on as they come, never buffered.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// The paths a replica is asked on: vLLM's OpenAI routes that helix passes through.
pub const INFERENCE_PATHS: &[&str] = &["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// How long connecting to a replica may take, and a whole answer (a long prompt's time to
/// first token and a long answer included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub overall: Duration,
}

/// A pool of connections to this node's replicas, kept alive between requests. Cheap to
/// clone. No proxy: one from the environment must never see these.
#[derive(Clone)]
pub struct Loopback {
    client: reqwest::Client,
    overall: Duration,
}

impl Loopback {
    pub fn new(timeouts: UpstreamTimeouts) -> Loopback {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client");
        Loopback {
            client,
            overall: timeouts.overall,
        }
    }

    /// The replica's Prometheus text from `/metrics`, within `timeout`.
    pub async fn metrics(&self, port: u16, timeout: Duration) -> Result<String, reqwest::Error> {
        self.client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .timeout(timeout)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// POST `body` (JSON) to `path` of the replica listening on 127.0.0.1:`port`. Resolves
    /// when the answer's head arrives; its body follows as the replica writes it.
    pub async fn send(
        &self,
        port: u16,
        path: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(self.overall)
            .body(body)
            .send()
            .await
    }
}

/// An upstream answer as ours: its status, content type and body, streamed.
pub fn pass_on(answer: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}
