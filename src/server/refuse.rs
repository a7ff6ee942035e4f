//! Refusing a connection beyond a port's cap: plain HTTP clients get a 503 that names the
//! problem; it costs a file handle for at most a second, and only a few at a time.

use std::time::Duration;

use axum::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// The longest a refusal may hold its connection.
const REFUSE_WITHIN: Duration = Duration::from_secs(1);
/// At most this much of the client's request is read (and dropped) before closing.
const DRAIN_AT_MOST: usize = 64 * 1024;

/// The whole `503` response for a port whose `limit` is reached.
pub(super) fn response(port_name: &str, limit: usize) -> Bytes {
    let body = serde_json::json!({
        "error": format!("too many connections to this node's {port_name} port (limit {limit})")
    })
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nserver: {}\r\n\
         content-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        super::SERVER_HEADER,
        body.len()
    ))
}

/// Write `response`, end our side, and read what the client sent until it closes: closing a
/// socket with unread input sends a reset, which can destroy the answer before the client
/// reads it. `_permit` bounds how many refusals run at once.
pub(super) async fn refuse(mut tcp: TcpStream, response: Bytes, _permit: OwnedSemaphorePermit) {
    let exchange = async {
        tcp.write_all(&response).await?;
        tcp.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN_AT_MOST {
            match tcp.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    // A client that neither reads nor closes just loses the answer.
    let _ = tokio::time::timeout(REFUSE_WITHIN, exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_complete_http_naming_port_and_limit() {
        let r = response("api", 64);
        let text = std::str::from_utf8(&r).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["error"],
            "too many connections to this node's api port (limit 64)"
        );
    }
}
