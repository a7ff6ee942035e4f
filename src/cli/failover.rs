//! When the CLI moves on to the next `--url`, and how it says why: an endpoint that cannot
//! be reached, times out, answers 503 (no leader, no quorum, too many connections) or is
//! not helix at all is skipped; any other answer of helix is final.

use reqwest::header::{HeaderMap, CONTENT_TYPE, SERVER};
use reqwest::Method;

/// Why an endpoint was passed over, as one line: `http://10.0.0.1:8080: connection refused`.
#[derive(Debug, Clone)]
pub struct Skip {
    pub url: String,
    pub reason: String,
    /// The HTTP status it answered, if it answered.
    pub status: Option<u16>,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

/// Whether a request that failed in flight may go to the next endpoint: one that never
/// connected was not carried out; a timed-out read or idempotent write does no harm twice;
/// a POST that timed out may have been carried out, so it is reported, not repeated.
pub fn may_retry(method: &Method, e: &reqwest::Error) -> bool {
    e.is_connect() || *method != Method::POST
}

/// The cause of a failed request in a few words: "connection refused", "timed out", not
/// reqwest's chain of wrappers.
pub fn why(e: &reqwest::Error) -> String {
    let chain = causes(e);
    let lower = chain.to_lowercase();
    if e.is_timeout() {
        return if e.is_connect() {
            "timed out connecting".into()
        } else {
            "timed out waiting for the answer".into()
        };
    }
    let known = [
        ("connection refused", "connection refused"),
        ("connection reset", "connection reset"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
        ("failed to lookup address", "unknown host"),
        ("dns error", "unknown host"),
        ("certificate", "TLS certificate not trusted"),
        (
            "invalidcontenttype",
            "not a TLS server (is the URL http://?)",
        ),
        ("corrupt message", "not a TLS server (is the URL http://?)"),
    ];
    if let Some((_, said)) = known.iter().find(|(needle, _)| lower.contains(needle)) {
        return said.to_string();
    }
    // The innermost cause says the most; the outer ones repeat the URL.
    crate::retry::root_cause(e)
}

/// Whether an answer comes from helix: its `Server: helix/<version>` header (or, where a
/// proxy dropped that header, a JSON answer: the caller checks its shape).
pub fn says_helix(headers: &HeaderMap) -> bool {
    headers
        .get(SERVER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("helix/"))
}

/// Whether an answer is JSON, by its content type.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The first bytes of a foreign answer, to show what answered instead of helix.
pub fn glimpse(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let short: String = line.chars().take(60).collect();
    if short.len() < line.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// An error with its causes.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_answer_is_shown_briefly() {
        assert_eq!(glimpse("hello\nworld"), "\"hello\"");
        let long = "x".repeat(100);
        assert_eq!(glimpse(&long), format!("\"{}\"...", "x".repeat(60)));
    }

    #[tokio::test]
    async fn a_refused_connection_is_said_in_two_words() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert_eq!(why(&e), "connection refused");
        assert!(may_retry(&Method::POST, &e));
    }
}
