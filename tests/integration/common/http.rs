//! The HTTP client the tests talk to nodes with: `reqwest`'s blocking client, one request
//! per connection (no pooled connection outlives a killed or restarted node), no proxy, no
//! redirects. Every response body can be recorded in a [`Transcript`] for the leak checks.
//! [`Client::send_oversized`] is the exception, for bodies the server refuses unread.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use reqwest::blocking;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

/// Per-request timeout.
const REQ_TIMEOUT: Duration = Duration::from_secs(10);

fn shared_client() -> &'static blocking::Client {
    static CLIENT: OnceLock<blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .build()
            .expect("build the HTTP client")
    })
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The `error` message of an error response, panicking if there is none.
    pub fn error_message(&self) -> String {
        match self.json().get("error").and_then(|e| e.as_str()) {
            Some(s) if !s.trim().is_empty() => s.to_string(),
            _ => panic!(
                "status {}: expected {{\"error\": \"...\"}}, got {}",
                self.status,
                self.text()
            ),
        }
    }
}

/// No response: the connection failed or the answer did not come in time.
#[derive(Debug)]
pub struct HttpError {
    pub timed_out: bool,
    message: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What produced a response, and its body.
pub type Seen = (String, Vec<u8>);

/// Every response body the test received, with what produced it.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<Seen>>>);

impl Transcript {
    pub fn record(&self, what: String, body: Vec<u8>) {
        self.0.lock().unwrap().push((what, body));
    }

    pub fn entries(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// A client for one node's API (or peer) address, as one caller.
#[derive(Clone)]
pub struct Client {
    pub addr: String,
    /// Who calls, for failure messages.
    pub who: String,
    /// The `Authorization` header value sent as is.
    authorization: Option<String>,
    timeout: Duration,
    transcript: Option<Transcript>,
    /// HTTPS through this client (which trusts the cluster's CA) instead of plain HTTP.
    tls: Option<blocking::Client>,
}

/// A client like the shared one that speaks HTTPS to an API whose certificate comes from
/// the cluster CA in `ca_pem`.
pub fn tls_client(ca_pem: &[u8]) -> blocking::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("the cluster CA is PEM");
    blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .expect("build the HTTPS client")
}

impl Client {
    /// A caller without a key.
    pub fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_string(),
            who: "anonymous".into(),
            authorization: None,
            timeout: REQ_TIMEOUT,
            transcript: None,
            tls: None,
        }
    }

    /// The same caller over HTTPS through `client` (see [`tls_client`]).
    pub fn over_tls(self, client: &blocking::Client) -> Client {
        Client {
            tls: Some(client.clone()),
            ..self
        }
    }

    /// The same caller presenting `Authorization: Bearer <key>`.
    pub fn key(self, key: &str) -> Client {
        self.authorization(&format!("Bearer {key}"))
    }

    /// The same caller presenting `value` as its `Authorization` header, verbatim.
    pub fn authorization(self, value: &str) -> Client {
        Client {
            authorization: Some(value.to_string()),
            ..self
        }
    }

    pub fn who(self, who: &str) -> Client {
        Client {
            who: who.to_string(),
            ..self
        }
    }

    pub fn timeout(self, timeout: Duration) -> Client {
        Client { timeout, ..self }
    }

    /// Records every response body in `transcript`.
    pub fn recording(self, transcript: &Transcript) -> Client {
        Client {
            transcript: Some(transcript.clone()),
            ..self
        }
    }

    /// One request; a body is sent with `content_type`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Resp, HttpError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}{path}", self.addr);
        let what = format!("{method} {url} as {}", self.who);
        let failed = |e: reqwest::Error| {
            // reqwest's message names the URL; the cause is further down the chain.
            let mut message = format!("{what}: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message.push_str(&format!(": {c}"));
                cause = c.source();
            }
            HttpError {
                timed_out: e.is_timeout(),
                message,
            }
        };
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self
            .tls
            .as_ref()
            .unwrap_or_else(|| shared_client())
            .request(method, url)
            .timeout(self.timeout);
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes.to_vec());
        }
        let resp = req.send().map_err(failed)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().map_err(failed)?.to_vec();
        Ok(self.received(&what, status, headers, body))
    }

    fn received(&self, what: &str, status: u16, headers: HeaderMap, body: Vec<u8>) -> Resp {
        if let Some(t) = &self.transcript {
            t.record(format!("{what} -> {status}"), body.clone());
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A JSON request whose body is far over the server's limit. The server answers 413
    /// after reading only a part and closes the connection; reqwest (hyper's dispatcher)
    /// then fails on its next body write whenever that write comes before it has read the
    /// answer waiting in the socket (now and then, on a loaded machine). So this goes
    /// through hyper directly, over a socket that counts writes after the peer closed as
    /// done: the body "ends" and the answer is read, as a client that reads while it
    /// writes would see it.
    pub fn send_oversized(&self, method: &str, path: &str, body: Vec<u8>) -> Resp {
        let what = format!(
            "{method} http://{}{path} as {} (oversized)",
            self.addr, self.who
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let io = TokioIo::new(KeepReadingAfterPeerClosed {
                tcp,
                peer_closed: false,
            });
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.addr)
                .header(CONTENT_TYPE, "application/json");
            if let Some(a) = &self.authorization {
                req = req.header(AUTHORIZATION, a);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| format!("request: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("read body: {e}"))?
                .to_bytes();
            Ok::<_, String>((parts.status.as_u16(), parts.headers, body.to_vec()))
        };
        let (status, headers, body) = runtime
            .block_on(async { tokio::time::timeout(self.timeout, exchange).await })
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.received(&what, status, headers, body)
    }

    /// A request with an optional JSON body, panicking when no response comes.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.send_raw(method, path, bytes.as_deref())
    }

    /// A request whose body (any bytes) is declared as JSON.
    pub fn send_raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        self.try_send(method, path, body.map(|b| ("application/json", b)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None)
    }

    /// Sends the request and asserts its status; returns the JSON body (`null` when empty).
    pub fn expect(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        let r = self.send(method, path, body);
        assert_eq!(
            r.status,
            status,
            "{method} {path} as {}: expected {status}, got {}: {}",
            self.who,
            r.status,
            r.text()
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    pub fn get_ok(&self, path: &str) -> Value {
        self.expect("GET", path, None, 200)
    }

    /// GET that may fail while the cluster settles: the JSON on 200, else what happened.
    pub fn poll_json(&self, path: &str) -> Result<Value, String> {
        let r = self
            .try_send("GET", path, None)
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!(
                "GET {path} on {}: status {}: {}",
                self.addr,
                r.status,
                r.text()
            ));
        }
        serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET {path} on {}: bad JSON ({e}): {}", self.addr, r.text()))
    }
}

/// A TCP stream on which writes after the peer closed (EPIPE, ECONNRESET) count as done, so
/// that what the peer sent before it closed can still be read.
struct KeepReadingAfterPeerClosed {
    tcp: tokio::net::TcpStream,
    peer_closed: bool,
}

impl tokio::io::AsyncRead for KeepReadingAfterPeerClosed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for KeepReadingAfterPeerClosed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.peer_closed {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.tcp).poll_write(cx, buf) {
            Poll::Ready(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                self.peer_closed = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
