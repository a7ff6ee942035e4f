//! The accept loop in-process: real sockets on 127.0.0.1, short timeouts, deadlines.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use axum::{Extension, Router};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::*;

#[test]
fn bearer_needs_the_scheme_and_a_value() {
    let with = |value: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    };
    assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
    assert_eq!(bearer(&with("abc")), None);
    assert_eq!(bearer(&with("Bearer  ")), None);
    assert_eq!(bearer(&HeaderMap::new()), None);
}

/// Generous: the machine may be loaded.
const DEADLINE: Duration = Duration::from_secs(10);

fn limits(max_connections: usize, header_read_ms: u64, idle_ms: u64) -> Limits {
    Limits {
        max_connections,
        header_read_timeout: Duration::from_millis(header_read_ms),
        idle_timeout: Duration::from_millis(idle_ms),
    }
}

/// `/slow` answers once the test adds a permit to `release`.
#[derive(Clone)]
struct Handlers {
    release: Arc<Semaphore>,
    slow_started: Arc<AtomicUsize>,
}

fn router(handlers: Handlers) -> Router {
    Router::new()
        .route(
            "/who",
            get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
        )
        .route(
            "/cert",
            get(|cert: Option<Extension<PeerCertificate>>| async move {
                cert.map_or("none".to_string(), |c| c.0 .0.len().to_string())
            }),
        )
        .route(
            "/slow",
            get(|State(h): State<Handlers>| async move {
                h.slow_started.fetch_add(1, Ordering::SeqCst);
                h.release.acquire().await.unwrap().forget();
                "done"
            }),
        )
        .with_state(handlers)
}

struct Server {
    addr: SocketAddr,
    handlers: Handlers,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(limits: Limits, tls: Option<watch::Receiver<Arc<ServerConfig>>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handlers = Handlers {
        release: Arc::new(Semaphore::new(0)),
        slow_started: Arc::new(AtomicUsize::new(0)),
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        router(handlers.clone()),
        tls,
        limits,
        "test",
        stopped,
    ));
    Server {
        addr,
        handlers,
        stop,
        task,
    }
}

/// Sends `GET path` and reads one response: `"STATUS BODY"`.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let exchange = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("a content-length")
                    .parse()
                    .unwrap();
                if body.len() >= length {
                    // "HTTP/1.1 200 OK": the status is the second word.
                    let status = head.split(' ').nth(1).unwrap_or_default();
                    return format!("{status} {body}");
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("a response in time")
}

/// Everything until the server closes (EOF or reset), and how long that took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection");
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn kept_alive_requests_see_the_callers_address() {
    let server = start(limits(8, 5_000, 5_000), None).await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(get_on(&mut c, "/who").await, format!("200 {me}"));
    assert_eq!(get_on(&mut c, "/who").await, format!("200 {me}"));
    assert_eq!(get_on(&mut c, "/cert").await, "200 none");
}

#[tokio::test]
async fn beyond_the_cap_plain_clients_get_503_until_a_place_frees() {
    let server = start(limits(2, 30_000, 30_000), None).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_on(&mut c, "/who").await.starts_with("200 "));
        held.push(c);
    }
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let (refusal, _) = until_closed(&mut extra).await;
    assert!(
        refusal.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refusal}"
    );
    assert!(
        refusal.contains("too many connections to this node's test port (limit 2)"),
        "{refusal}"
    );
    // The held connections still work; once one goes, a newcomer gets its place.
    assert!(get_on(&mut held[0], "/who").await.starts_with("200 "));
    held.pop();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        let (answer, _) = until_closed_or_answered(&mut c).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `GET /who` and returns the first bytes of the answer (a refusal, or the response)
/// and how long they took; nothing when the server only closed.
async fn until_closed_or_answered(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    if stream
        .write_all(b"GET /who HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .is_err()
    {
        return (String::new(), started.elapsed());
    }
    let mut buf = [0u8; 1024];
    let got = match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    };
    (got, started.elapsed())
}

#[tokio::test]
async fn slow_or_silent_request_heads_are_cut_off() {
    let server = start(limits(8, 300, 60_000), None).await;
    let connected = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /who HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let mut served = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut served, "/who").await.starts_with("200 "));
    for c in [&mut silent, &mut slow] {
        let (got, _) = until_closed(c).await;
        assert_eq!(got, "", "no answer to an unfinished head");
        let after = connected.elapsed();
        assert!(
            after >= Duration::from_millis(250),
            "closed after {after:?}"
        );
    }
    // The idle timeout (a minute) governs the connection that sent a whole request...
    assert!(get_on(&mut served, "/who").await.starts_with("200 "));
    // ...until it starts another head: then the header-read timeout does.
    served.write_all(b"GET /who HTTP/1.1\r\n").await.unwrap();
    let (got, after) = until_closed(&mut served).await;
    assert_eq!(got, "");
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn idle_connections_close_but_requests_in_flight_do_not() {
    let server = start(limits(8, 5_000, 300), None).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut idle, "/who").await.starts_with("200 "));
    let (_, after) = until_closed(&mut idle).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );

    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let answer = tokio::spawn(async move { get_on(&mut busy, "/slow").await });
    // Three idle timeouts with the request in flight.
    tokio::time::sleep(Duration::from_millis(900)).await;
    server.handlers.release.add_permits(1);
    assert_eq!(answer.await.unwrap(), "200 done");
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight_and_closes_the_rest() {
    let server = start(limits(8, 30_000, 30_000), None).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut idle, "/who").await.starts_with("200 "));
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let answer = tokio::spawn(async move { get_on(&mut busy, "/slow").await });
    let deadline = Instant::now() + DEADLINE;
    while server.handlers.slow_started.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the slow request never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.stop.send(true).unwrap();
    let (got, _) = until_closed(&mut idle).await;
    assert_eq!(got, "");
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!server.task.is_finished(), "a request is still in flight");
    server.handlers.release.add_permits(1);
    assert_eq!(answer.await.unwrap(), "200 done");
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("the server ends once the last request is answered")
        .unwrap();
}

/// A CA, and leaf certificates (DER, key) it signed.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    fn leaf(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(roots)
    }

    fn server_config(&self) -> (Arc<ServerConfig>, CertificateDer<'static>) {
        let (cert, key) = self.leaf("localhost");
        let verifier = WebPkiClientVerifier::builder(self.roots())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let config = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        (Arc::new(config), cert)
    }

    fn connector(
        &self,
        client_cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> TlsConnector {
        let builder = ClientConfig::builder().with_root_certificates(self.roots());
        let config = match client_cert {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsConnector::from(Arc::new(config))
    }
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("the handshake ends in time")
}

#[tokio::test]
async fn tls_hands_over_the_client_certificate_and_follows_renewals() {
    let pki = Pki::new();
    let (first, first_cert) = pki.server_config();
    let (configs, current) = watch::channel(first);
    let server = start(limits(2, 5_000, 30_000), Some(current)).await;

    let (client_cert, client_key) = pki.leaf("node-2");
    let with_cert = pki.connector(Some((client_cert.clone(), client_key)));
    let mut c1 = tls_connect(server.addr, &with_cert).await.unwrap();
    assert_eq!(c1.get_ref().1.peer_certificates().unwrap()[0], first_cert);
    let me = c1.get_ref().0.local_addr().unwrap();
    assert_eq!(get_on(&mut c1, "/who").await, format!("200 {me}"));
    assert_eq!(
        get_on(&mut c1, "/cert").await,
        format!("200 {}", client_cert.len())
    );
    let without = pki.connector(None);
    let mut c2 = tls_connect(server.addr, &without).await.unwrap();
    assert_eq!(get_on(&mut c2, "/cert").await, "200 none");

    // Beyond the cap a TLS client is closed without a word.
    assert!(tls_connect(server.addr, &without).await.is_err());

    // Renewed: new connections get the new certificate.
    drop((c1, c2));
    let (renewed, renewed_cert) = pki.server_config();
    configs.send(renewed).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut c3 = loop {
        if let Ok(c) = tls_connect(server.addr, &without).await {
            break c;
        }
        assert!(Instant::now() < deadline, "no place freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(c3.get_ref().1.peer_certificates().unwrap()[0], renewed_cert);
    assert_eq!(get_on(&mut c3, "/cert").await, "200 none");
}

#[tokio::test]
async fn a_slow_tls_handshake_is_cut_off() {
    let pki = Pki::new();
    let (config, _) = pki.server_config();
    let (_configs, current) = watch::channel(config);
    let server = start(limits(2, 300, 30_000), Some(current)).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let (_, after) = until_closed(&mut silent).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
}
