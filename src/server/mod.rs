//! The HTTP plumbing both of a node's servers (the API and the peer protocol) share: our
//! own accept loop serving an axum router, the open-file limit it relies on, rate-limited
//! warnings, and reading the bearer credential of a request.
//!
//! A client that opens connections and never finishes a request must not use up the node's
//! file handles (sled then fails with EMFILE and the node dies). So each port caps its open
//! connections and refuses more at once, a request head must arrive within
//! `header_read_timeout`, a kept-alive connection with nothing in flight closes after
//! `idle_timeout`, and failing `accept()` calls back off instead of spinning.

mod activity;
mod connection;
mod fd;
mod refuse;
mod routes;
#[cfg(test)]
mod tests;
mod warn;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use futures::future::BoxFuture;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

pub use fd::{raise_fd_limit, FdLimit};
pub use routes::Routes;

/// The `Server` header of every answer of a node's API port: how a client tells helix
/// from whatever else answers at an address (the CLI fails over past anything else).
pub const SERVER_HEADER: &str = concat!("helix/", env!("CARGO_PKG_VERSION"));
pub use warn::WarnLimiter;

use connection::Port;

/// How long a server that is told to stop waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The pause after `accept()` fails for want of resources (EMFILE and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning of each kind per port this often.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// Refusals (503 answers) in progress at once per port; beyond, connections just close.
const MAX_REFUSALS: usize = 64;

/// What one port tolerates from its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// How long a request head may take from its first byte (a connection's first request:
    /// from when it was accepted, or its TLS handshake ended); also bounds a TLS handshake.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

/// The client certificate a TLS connection presented (leaf, DER), put in each request's
/// extensions.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Arc<CertificateDer<'static>>);

/// A protocol a port speaks besides HTTP/1.1 to TLS clients that negotiate it by ALPN: such
/// connections (already counted under the port's cap) are handed to `serve`, which must
/// apply the port's [`Limits`] itself.
#[derive(Clone)]
pub struct OtherProtocol {
    pub alpn: &'static [u8],
    pub serve: Arc<dyn Fn(TlsConnection) -> BoxFuture<'static, ()> + Send + Sync>,
}

/// A connection that negotiated an [`OtherProtocol`].
pub struct TlsConnection {
    pub stream: TlsStream<TcpStream>,
    pub remote: SocketAddr,
    pub certificate: Option<PeerCertificate>,
    pub limits: Limits,
    /// Turns true when the server stops.
    pub shutdown: watch::Receiver<bool>,
}

/// Serve `router` on `listener` until `shutdown` turns true, then stop accepting, finish
/// the requests in flight (for up to 5 s) and close idle connections.
///
/// `tls`: None = plain HTTP; Some = every connection does a TLS handshake first with the
/// CURRENT config in the watch (certificates get renewed while the server runs). The
/// handshake is bounded by `header_read_timeout` too.
///
/// Handlers find the client's address as `ConnectInfo<SocketAddr>` in the request's
/// extensions, and [`PeerCertificate`] when a TLS client presented one. `port_name` names
/// the port in refusals and logs.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<watch::Receiver<Arc<rustls::ServerConfig>>>,
    limits: Limits,
    port_name: &'static str,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, router, None, tls, limits, port_name, shutdown).await
}

/// [`serve`], handing TLS connections that negotiate `other` to it.
pub async fn serve_with(
    listener: TcpListener,
    router: axum::Router,
    other: Option<OtherProtocol>,
    tls: Option<watch::Receiver<Arc<rustls::ServerConfig>>>,
    limits: Limits,
    port_name: &'static str,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let refusal = refuse::response(port_name, limits.max_connections);
    let refused = WarnLimiter::new(WARN_EVERY);
    let accept_failed = WarnLimiter::new(WARN_EVERY);
    let port = Arc::new(Port {
        router,
        other,
        limits,
        name: port_name,
        too_slow: WarnLimiter::new(WARN_EVERY),
    });
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if let Some(suppressed) = accept_failed.check() {
                    tracing::warn!(port = port_name, error = %e, suppressed, "cannot accept connections; backing off");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Answers are small and awaited (Raft RPCs above all): Nagle's algorithm would hold
        // the second TLS record of an answer until the first is acknowledged.
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Some(suppressed) = refused.check() {
                tracing::warn!(
                    port = port_name,
                    %remote,
                    limit = limits.max_connections,
                    suppressed,
                    "refused a connection: the port holds as many as server.max_connections allows"
                );
            }
            // A TLS client could not read a plain answer: it is just closed.
            if tls.is_none() {
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(refuse::refuse(tcp, refusal.clone(), permit));
                }
            }
            continue;
        };
        let config = tls.as_ref().map(|current| current.borrow().clone());
        connections.spawn(connection::run(
            tcp,
            remote,
            config,
            port.clone(),
            permit,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            port = port_name,
            connections = connections.len(),
            "gave up waiting for requests in flight"
        );
        connections.shutdown().await;
    }
}

/// Errors that concern only the connection being accepted, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// The credential of `Authorization: Bearer <credential>`, if the header is there and
/// well-formed and the credential is not empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}
