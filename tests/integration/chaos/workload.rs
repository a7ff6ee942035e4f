//! The chaos workload: clients that write and read the keys and record every operation in a
//! [`History`]. A key is a helix model: a write `PUT`s a description unique to that write, a
//! read `GET`s it back, linearizable by default or `?stale=true`. Each client is a thread that
//! loops over random keys and, in turn, over the nodes, so writes go through followers and
//! leader alike.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking;
use serde_json::{json, Value};

use super::history::{History, Op, OpKind, Outcome, INITIAL_VALUE};

const MODELS: &str = "/api/v1/helix-models";

/// How many clients of each kind, on how many keys, and how fast.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Keys are the models `{key_prefix}-0` .. `{key_prefix}-{keys - 1}`, given the initial
    /// value at start (created, or reset if they exist).
    pub keys: usize,
    pub key_prefix: String,
    pub writers: usize,
    /// Clients of linearizable reads (read index through the leader).
    pub readers: usize,
    /// Clients of `?stale=true` reads: recorded, not checked.
    pub stale_readers: usize,
    /// A request without an answer by then is a timeout (a write's outcome is then unknown).
    pub request_timeout: Duration,
    /// A client's pause after an operation that did not succeed.
    pub pause_after_error: Duration,
    /// A client's pause after a successful operation (zero: none).
    pub pause_between_ops: Duration,
    /// A client stops after this many operations, if it was not stopped before.
    pub max_ops_per_client: Option<usize>,
    /// The cluster CA (PEM) when the API speaks TLS (any address but loopback).
    pub tls_ca: Option<Vec<u8>>,
}

impl Default for WorkloadSpec {
    fn default() -> WorkloadSpec {
        WorkloadSpec {
            keys: 4,
            key_prefix: "chaos".into(),
            writers: 3,
            readers: 2,
            stale_readers: 1,
            request_timeout: Duration::from_secs(4),
            pause_after_error: Duration::from_millis(100),
            pause_between_ops: Duration::ZERO,
            max_ops_per_client: None,
            tls_ca: None,
        }
    }
}

/// Sends the workload's requests and records them.
struct Recorder {
    http: blocking::Client,
    /// `http`, or `https` when the client trusts the cluster CA.
    scheme: &'static str,
    endpoints: Vec<String>,
    admin_key: String,
    t0: Instant,
}

impl Recorder {
    fn op(&self, process: usize, node: usize, key: &str, kind: OpKind) -> Op {
        let endpoint = &self.endpoints[node];
        let url = format!("{}://{endpoint}{MODELS}/{key}", self.scheme);
        let request = match &kind {
            OpKind::Write { value } => self.http.put(url).json(&json!({ "description": value })),
            OpKind::Read { stale: true } => self.http.get(format!("{url}?stale=true")),
            OpKind::Read { stale: false } => self.http.get(url),
        };
        let invoke = self.t0.elapsed();
        let response = request.bearer_auth(&self.admin_key).send();
        let outcome = match &kind {
            OpKind::Write { .. } => write_outcome(response),
            OpKind::Read { .. } => read_outcome(response),
        };
        Op {
            process,
            node,
            key: key.to_string(),
            kind,
            invoke,
            complete: self.t0.elapsed(),
            outcome,
        }
    }

    /// Gives `key` the initial value through any node that answers: creates its model, or
    /// resets the description of one that exists (an earlier try that timed out, or an
    /// earlier workload with the same keys).
    fn create(&self, key: &str) {
        let deadline = Instant::now() + crate::common::WAIT;
        let model =
            json!({ "id": key, "memory": "1GB", "name": "chaos", "description": INITIAL_VALUE });
        let mut exists = false;
        let mut last = String::new();
        for endpoint in self.endpoints.iter().cycle() {
            if Instant::now() > deadline {
                panic!("test setup: could not create model {key}: {last}");
            }
            let request = if exists {
                let url = format!("{}://{endpoint}{MODELS}/{key}", self.scheme);
                self.http
                    .put(url)
                    .json(&json!({ "description": INITIAL_VALUE }))
            } else {
                self.http
                    .post(format!("{}://{endpoint}{MODELS}", self.scheme))
                    .json(&model)
            };
            match request.bearer_auth(&self.admin_key).send() {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().as_u16() == 409 => exists = true,
                Ok(r) => last = format!("{endpoint}: {}", status_and_error(r)),
                Err(e) => last = format!("{endpoint}: {}", error_chain(&e)),
            }
            // Pacing the tries while the cluster settles.
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One request per connection: no pooled connection to a killed or cut-off node. With
/// `tls_ca`, HTTPS trusting only that CA.
fn http_client(timeout: Duration, tls_ca: Option<&[u8]>) -> blocking::Client {
    let mut builder = blocking::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(1)));
    if let Some(ca) = tls_ca {
        let ca = reqwest::Certificate::from_pem(ca).expect("the cluster CA is PEM");
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca);
    }
    builder.build().expect("build the HTTP client")
}

/// Connection refused (or never made) means nothing was sent: the write certainly did not
/// happen. Any later failure, or a 5xx, leaves it unknown.
fn write_outcome(response: reqwest::Result<blocking::Response>) -> Outcome {
    match response {
        Err(e) if e.is_connect() => Outcome::Fail(error_chain(&e)),
        Err(e) => Outcome::Unknown(error_chain(&e)),
        Ok(r) if r.status().is_success() => Outcome::Ok(None),
        Ok(r) if r.status().is_client_error() => Outcome::Fail(status_and_error(r)),
        Ok(r) => Outcome::Unknown(status_and_error(r)),
    }
}

/// A read that found the model saw its description; one that found no model saw nothing;
/// anything else is a failure (a read has no effect).
fn read_outcome(response: reqwest::Result<blocking::Response>) -> Outcome {
    let r = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(error_chain(&e)),
    };
    match r.status().as_u16() {
        200 => match r.json::<Value>() {
            Ok(model) => match model["description"].as_str() {
                Some(description) => Outcome::Ok(Some(description.to_string())),
                None => Outcome::Fail(format!("no description in {model}")),
            },
            Err(e) => Outcome::Fail(error_chain(&e)),
        },
        404 => Outcome::Ok(None),
        _ => Outcome::Fail(status_and_error(r)),
    }
}

fn status_and_error(r: blocking::Response) -> String {
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(body);
    format!("{status}: {message}")
}

/// reqwest's message names the URL; the cause is further down the chain.
fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    message
}

#[derive(Clone, Copy)]
enum Role {
    Writer,
    Reader,
    StaleReader,
}

/// Running clients. [`Workload::stop`] or [`Workload::finish`] ends them and hands back the
/// history.
pub struct Workload {
    recorder: Arc<Recorder>,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
    acked_writes: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Vec<Op>>>,
}

impl Workload {
    /// Creates the keys' models (through any node, with a deadline) and starts the clients.
    /// `endpoints` are the nodes' API addresses (`ip:port`); an op's `node` indexes them.
    pub fn start(endpoints: Vec<String>, admin_key: String, spec: WorkloadSpec) -> Workload {
        assert!(
            !endpoints.is_empty() && spec.keys > 0,
            "test setup: a workload needs an endpoint and a key"
        );
        let recorder = Arc::new(Recorder {
            http: http_client(spec.request_timeout, spec.tls_ca.as_deref()),
            scheme: if spec.tls_ca.is_some() {
                "https"
            } else {
                "http"
            },
            endpoints,
            admin_key,
            t0: Instant::now(),
        });
        let keys: Vec<String> = (0..spec.keys)
            .map(|i| format!("{}-{i}", spec.key_prefix))
            .collect();
        for key in &keys {
            recorder.create(key);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked_writes = Arc::new(AtomicUsize::new(0));
        let roles = std::iter::repeat_n(Role::Writer, spec.writers)
            .chain(std::iter::repeat_n(Role::Reader, spec.readers))
            .chain(std::iter::repeat_n(Role::StaleReader, spec.stale_readers));
        let clients = roles
            .enumerate()
            .map(|(process, role)| {
                let worker = Worker {
                    process,
                    role,
                    recorder: recorder.clone(),
                    keys: keys.clone(),
                    spec: spec.clone(),
                    stop: stop.clone(),
                    acked_writes: acked_writes.clone(),
                };
                thread::Builder::new()
                    .name(format!("chaos-p{process}"))
                    .spawn(move || worker.run())
                    .expect("spawn a workload client")
            })
            .collect();
        Workload {
            recorder,
            keys,
            stop,
            acked_writes,
            clients,
        }
    }

    /// Now, on the history's clock: to mark when a fault began and ended.
    pub fn now(&self) -> Duration {
        self.recorder.t0.elapsed()
    }

    /// Writes acknowledged so far: to wait for progress rather than for time.
    pub fn acked_writes(&self) -> usize {
        self.acked_writes.load(Ordering::Relaxed)
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Stops every client (each finishes its request in flight) and returns the history.
    pub fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        let ops = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().expect("a workload client panicked"))
            .collect();
        History::new(ops)
    }

    /// Stops the clients, then reads every key once more, linearizably, through the nodes in
    /// turn until a read succeeds or `within` has passed. Every try is recorded (as the
    /// process after the last client): the last read of each key shows whether an
    /// acknowledged write was lost.
    pub fn finish(self, within: Duration) -> History {
        let (recorder, keys) = (self.recorder.clone(), self.keys.clone());
        let mut ops = self.stop().ops;
        let process = ops.iter().map(|op| op.process + 1).max().unwrap_or(0);
        let deadline = Instant::now() + within;
        let nodes = recorder.endpoints.len();
        let mut tries = 0;
        for key in &keys {
            loop {
                let op = recorder.op(process, tries % nodes, key, OpKind::Read { stale: false });
                tries += 1;
                let done = op.is_ok();
                ops.push(op);
                if done || Instant::now() > deadline {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        History::new(ops)
    }
}

/// One client's thread.
struct Worker {
    process: usize,
    role: Role,
    recorder: Arc<Recorder>,
    keys: Vec<String>,
    spec: WorkloadSpec,
    stop: Arc<AtomicBool>,
    acked_writes: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self) -> Vec<Op> {
        let mut rng = rand::thread_rng();
        let nodes = self.recorder.endpoints.len();
        let mut ops = Vec::new();
        let limit = self.spec.max_ops_per_client.unwrap_or(usize::MAX);
        while !self.stop.load(Ordering::Relaxed) && ops.len() < limit {
            let i = ops.len();
            let key = &self.keys[rng.gen_range(0..self.keys.len())];
            // Each client starts on a different node and moves on after every operation.
            let node = (self.process + i) % nodes;
            let kind = match self.role {
                Role::Writer => OpKind::Write {
                    value: format!("p{}-w{i}", self.process),
                },
                Role::Reader => OpKind::Read { stale: false },
                Role::StaleReader => OpKind::Read { stale: true },
            };
            let op = self.recorder.op(self.process, node, key, kind);
            let pause = if op.is_ok() {
                if op.is_write() {
                    self.acked_writes.fetch_add(1, Ordering::Relaxed);
                }
                self.spec.pause_between_ops
            } else {
                self.spec.pause_after_error
            };
            ops.push(op);
            // Pacing, not waiting on state: it keeps a failing node from being hammered.
            if !pause.is_zero() {
                thread::sleep(pause);
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write as _};
    use std::net::TcpListener;

    use super::*;
    use crate::common::WAIT;

    /// A server for one connection that reads the request and answers `response`, or
    /// (`None`) holds the connection unanswered until the client gives up.
    fn serve_once(response: Option<String>) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Up to the end of the headers and the body they announce.
            while !request_complete(&request) {
                match conn.read(&mut buf).unwrap() {
                    0 => return,
                    n => request.extend_from_slice(&buf[..n]),
                }
            }
            match response {
                Some(response) => conn.write_all(response.as_bytes()).unwrap(),
                // Returns once the client closes the connection.
                None => while conn.read(&mut buf).is_ok_and(|n| n > 0) {},
            }
        });
        (addr, server)
    }

    fn request_complete(request: &[u8]) -> bool {
        let text = String::from_utf8_lossy(request);
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        request.len() >= end + 4 + length
    }

    fn answer(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// The outcome of one operation of `kind` against a server answering `response`.
    fn outcome_against(response: Option<String>, kind: OpKind) -> Outcome {
        // Long enough for any answer on a loaded machine; the unanswered case waits it out.
        let timeout = match &response {
            Some(_) => WAIT,
            None => Duration::from_secs(1),
        };
        let (addr, server) = serve_once(response);
        let recorder = Recorder {
            http: http_client(timeout, None),
            scheme: "http",
            endpoints: vec![addr],
            admin_key: "k".into(),
            t0: Instant::now(),
        };
        let op = recorder.op(0, 0, "m", kind);
        server.join().unwrap();
        assert!(op.invoke <= op.complete, "{op}");
        op.outcome
    }

    fn kind_write() -> OpKind {
        OpKind::Write { value: "v".into() }
    }

    const READ: OpKind = OpKind::Read { stale: false };

    #[test]
    fn a_write_is_unknown_unless_refused_or_never_sent() {
        let is_unknown = |o: Outcome| matches!(o, Outcome::Unknown(_));
        let is_fail = |o: Outcome| matches!(o, Outcome::Fail(_));
        assert_eq!(
            outcome_against(Some(answer("200 OK", "{}")), kind_write()),
            Outcome::Ok(None)
        );
        let refused = answer("400 Bad Request", r#"{"error":"description: too long"}"#);
        assert_eq!(
            outcome_against(Some(refused), kind_write()),
            Outcome::Fail("400: description: too long".into())
        );
        let unavailable = answer("503 Service Unavailable", r#"{"error":"no leader"}"#);
        assert_eq!(
            outcome_against(Some(unavailable), kind_write()),
            Outcome::Unknown("503: no leader".into())
        );
        assert!(is_unknown(outcome_against(None, kind_write())));
        // Nothing listens: the write was never sent.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let recorder = Recorder {
            http: http_client(WAIT, None),
            scheme: "http",
            endpoints: vec![closed.to_string()],
            admin_key: "k".into(),
            t0: Instant::now(),
        };
        assert!(is_fail(recorder.op(0, 0, "m", kind_write()).outcome));
    }

    #[test]
    fn a_read_sees_the_description_or_no_model_and_otherwise_fails() {
        let model = answer("200 OK", r#"{"id":"m","description":"p1-w2"}"#);
        assert_eq!(
            outcome_against(Some(model), READ),
            Outcome::Ok(Some("p1-w2".into()))
        );
        let gone = answer("404 Not Found", r#"{"error":"model \"m\" not found"}"#);
        assert_eq!(outcome_against(Some(gone), READ), Outcome::Ok(None));
        let unavailable = answer("503 Service Unavailable", r#"{"error":"no leader"}"#);
        assert_eq!(
            outcome_against(Some(unavailable), READ),
            Outcome::Fail("503: no leader".into())
        );
        assert!(matches!(outcome_against(None, READ), Outcome::Fail(_)));
    }
}
