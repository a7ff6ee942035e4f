//! The framed protocol, client side: a [`Link`] is one long-lived mutual-TLS connection to a
//! peer that carries Raft's messages, many in flight at once, each answer matched to its
//! request by id. Requests that are ready together go out in one write.
//!
//! A link is opened at once and connects in the background; requests wait in its queue
//! meanwhile. It is given up (and the next request opens another) when the connection
//! fails or closes, or when answers are owed and nothing at all has come back for
//! [`SILENT_LIMIT`] (a partition: the TCP connection may never fail by itself). A request
//! that times out does not cost the connection, unlike an HTTP/1.1 request.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::frame::{self, Frame, Kind};

/// Connecting, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Owed answers and nothing heard for this long: the connection is presumed dead.
pub(super) const SILENT_LIMIT: Duration = Duration::from_secs(1);
/// A begun answer frame must keep coming within this, and a write must finish within it.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests gathered into one write.
const WRITE_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum LinkFailure {
    /// No connection could be made: the request was not delivered.
    #[error("{0}")]
    Unreachable(String),
    /// The connection broke after the request may have been delivered.
    #[error("{0}")]
    Broken(String),
    #[error("no answer in time")]
    Timeout,
    #[error("a request of {0} bytes is over the limit of {max} bytes", max = frame::MAX_PAYLOAD)]
    TooLarge(usize),
}

struct Request {
    id: u64,
    kind: Kind,
    payload: Vec<u8>,
}

pub(super) struct Link {
    requests: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Shared(Mutex<State>);

#[derive(Default)]
struct State {
    waiting: HashMap<u64, oneshot::Sender<Frame>>,
    /// Why the connection is gone, once it is.
    closed: Option<LinkFailure>,
    /// Since when answers are owed with nothing heard.
    owed_since: Option<Instant>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self, why: LinkFailure) {
        let mut state = self.state();
        state.closed.get_or_insert(why);
        // Dropping the senders wakes every waiting request.
        state.waiting.clear();
    }

    fn deliver(&self, answer: Frame) {
        let mut state = self.state();
        if let Some(waiting) = state.waiting.remove(&answer.id) {
            let _ = waiting.send(answer);
        }
        // An answer to a request given up on still shows the connection lives.
        state.owed_since = (!state.waiting.is_empty()).then(Instant::now);
    }

    fn failure(&self) -> LinkFailure {
        self.state()
            .closed
            .clone()
            .unwrap_or_else(|| LinkFailure::Broken("the link closed".into()))
    }
}

/// Takes a request's place off the waiting list when its caller stops waiting.
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.state().waiting.remove(&self.id);
    }
}

impl Link {
    /// A link to the peer at `addr` (host:port); `tls` decides whom it accepts.
    pub fn open(addr: &str, tls: Arc<rustls::ClientConfig>) -> Link {
        let (requests, queue) = mpsc::unbounded_channel();
        let shared = Arc::<Shared>::default();
        tokio::spawn(run(addr.to_owned(), tls, queue, shared.clone()));
        Link {
            requests,
            shared,
            next_id: AtomicU64::new(1),
        }
    }

    /// Whether requests should go on a new link instead: this one's connection is gone, or
    /// it owes answers and has heard nothing for [`SILENT_LIMIT`].
    pub fn is_dead(&self) -> bool {
        let state = self.shared.state();
        state.closed.is_some()
            || state
                .owed_since
                .is_some_and(|since| since.elapsed() >= SILENT_LIMIT)
    }

    /// Send a request and wait up to `ttl` for its answer.
    pub async fn call(
        &self,
        kind: Kind,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Frame, LinkFailure> {
        if payload.len() > frame::MAX_PAYLOAD {
            return Err(LinkFailure::TooLarge(payload.len()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answered, answer) = oneshot::channel();
        {
            let mut state = self.shared.state();
            if let Some(why) = &state.closed {
                return Err(why.clone());
            }
            state.waiting.insert(id, answered);
            state.owed_since.get_or_insert_with(Instant::now);
        }
        let _waiting = Waiting {
            shared: &self.shared,
            id,
        };
        if self.requests.send(Request { id, kind, payload }).is_err() {
            return Err(self.shared.failure());
        }
        match tokio::time::timeout(ttl, answer).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(self.shared.failure()),
            Err(_) => Err(LinkFailure::Timeout),
        }
    }
}

/// The link's connection: connect, then write requests and read answers until either
/// side fails or every handle on the link is gone.
async fn run(
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    mut queue: mpsc::UnboundedReceiver<Request>,
    shared: Arc<Shared>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect(&addr, tls)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(why)) => return shared.close(LinkFailure::Unreachable(why)),
        Err(_) => {
            return shared.close(LinkFailure::Unreachable(format!(
                "no connection within {} ms",
                CONNECT_TIMEOUT.as_millis()
            )))
        }
    };
    let (mut reader, writer) = tokio::io::split(stream);
    let reading = async {
        loop {
            match frame::read(&mut reader, None, STALL_TIMEOUT).await {
                Ok(answer) => shared.deliver(answer),
                Err(e) => return e.to_string(),
            }
        }
    };
    let writing = async {
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
        while let Some(first) = queue.recv().await {
            let batch = async {
                let mut next = Some(first);
                while let Some(r) = next {
                    let head = frame::header(r.id, r.kind, r.payload.len());
                    writer.write_all(&head).await?;
                    writer.write_all(&r.payload).await?;
                    next = queue.try_recv().ok();
                }
                writer.flush().await
            };
            tokio::time::timeout(STALL_TIMEOUT, batch)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the peer reads nothing"))??;
        }
        // Nobody holds the link any more.
        writer.shutdown().await
    };
    let why = tokio::select! {
        why = reading => why,
        written = writing => match written {
            Ok(()) => "the link was given up".to_string(),
            Err(e) => e.to_string(),
        },
    };
    shared.close(LinkFailure::Broken(why));
}

async fn connect(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    // Whatever name we give, the server is checked against the node we expect.
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{addr}: {e}"))?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    match stream.get_ref().1.alpn_protocol() {
        Some(alpn) if alpn == frame::ALPN => Ok(stream),
        _ => Err("the peer does not speak the framed protocol".into()),
    }
}
