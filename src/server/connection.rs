//! One accepted connection: the TLS handshake if any, then HTTP/1 until the client leaves,
//! a timeout closes it (see [`Activity`]) or the server shuts down; or, when the handshake
//! negotiated the port's other protocol, that protocol's own serving.

use std::convert::Infallible;
use std::future::pending;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{sleep_until, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::activity::{Activity, InFlightBody, Wait, Watched};
use super::{Limits, OtherProtocol, PeerCertificate, TlsConnection, WarnLimiter};

/// What every connection of one port shares.
pub(super) struct Port {
    pub router: Router,
    pub other: Option<OtherProtocol>,
    pub limits: Limits,
    pub name: &'static str,
    /// Clients cut off for a slow request head or TLS handshake.
    pub too_slow: WarnLimiter,
}

impl Port {
    fn too_slow(&self, remote: SocketAddr, what: &str) {
        if let Some(suppressed) = self.too_slow.check() {
            tracing::warn!(
                port = self.name,
                %remote,
                timeout_ms = self.limits.header_read_timeout.as_millis() as u64,
                suppressed,
                "closed a connection that did not finish its {what} within the header-read timeout"
            );
        }
    }
}

/// Serve one connection. `_permit` holds its place under the port's cap until it closes.
pub(super) async fn run(
    tcp: TcpStream,
    remote: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    port: Arc<Port>,
    _permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    let Some(config) = tls else {
        return serve_http(tcp, remote, None, &port, shutdown).await;
    };
    let handshake = TlsAcceptor::from(config).accept(tcp);
    match tokio::time::timeout(port.limits.header_read_timeout, handshake).await {
        Ok(Ok(stream)) => {
            let certificate = peer_certificate(&stream);
            let negotiated = stream.get_ref().1.alpn_protocol();
            match &port.other {
                Some(other) if negotiated == Some(other.alpn) => {
                    (other.serve)(TlsConnection {
                        stream,
                        remote,
                        certificate,
                        limits: port.limits,
                        shutdown,
                    })
                    .await
                }
                _ => serve_http(stream, remote, certificate, &port, shutdown).await,
            }
        }
        Ok(Err(e)) => {
            tracing::debug!(port = port.name, %remote, error = %e, "TLS handshake failed")
        }
        Err(_) => port.too_slow(remote, "TLS handshake"),
    }
}

fn peer_certificate(stream: &TlsStream<TcpStream>) -> Option<PeerCertificate> {
    let (_, session) = stream.get_ref();
    let leaf = session.peer_certificates()?.first()?;
    Some(PeerCertificate(Arc::new(leaf.clone().into_owned())))
}

async fn serve_http<S>(
    stream: S,
    remote: SocketAddr,
    certificate: Option<PeerCertificate>,
    port: &Port,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(port.limits);
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let router = port.router.clone();
    let requests = activity.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let in_flight = requests.begin();
        // Handlers read the caller's address (and certificate) from the extensions.
        request.extensions_mut().insert(ConnectInfo(remote));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| InFlightBody {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let mut conn = pin!(http1::Builder::new()
        // Timed by `activity` instead: see its module.
        .header_read_timeout(None)
        .serve_connection(io, service));
    let mut stopping = false;
    loop {
        let deadline = activity.deadline();
        if let Some((at, why)) = deadline {
            if at <= Instant::now() {
                match why {
                    Wait::Head => port.too_slow(remote, "request head"),
                    Wait::Idle => {
                        tracing::debug!(port = port.name, %remote, "closed an idle connection")
                    }
                }
                return;
            }
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(port = port.name, %remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = activity.changed() => {}
            _ = until(deadline.map(|(at, _)| at)) => {}
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if !activity.in_flight() {
                    return;
                }
                // Answer the request in flight, then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}
