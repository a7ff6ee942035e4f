//! The chaos workload and its record. Every key is a helix model (a register): a write
//! `PUT`s a description unique to that write, a read `GET`s it back, linearizable by default
//! or `?stale=true`. Each client is a thread that loops over random keys and, in turn, over
//! the nodes, so writes go through followers and leader alike. Every operation is recorded
//! with its invoke and complete times on one monotonic clock (since the workload's start) and
//! its outcome: done, certainly not done, or maybe done.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking;
use serde_json::{json, Value};

/// What every key holds once created, before any write.
pub const INITIAL_VALUE: &str = "init";

const MODELS: &str = "/api/v1/helix-models";

/// How many clients of each kind, on how many keys, and how fast.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Keys are the models `{key_prefix}-0` .. `{key_prefix}-{keys - 1}`, created at start.
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Sets the key's description to `value`, unique to this write.
    Write {
        value: String,
    },
    Read {
        stale: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done. A read carries the description it saw, `None` when the model was not found;
    /// a write carries `None`.
    Ok(Option<String>),
    /// Certainly without effect (refused with a 4xx, or the connection never opened); why.
    Fail(String),
    /// A write that may or may not have taken effect (timeout, reset, 5xx); why.
    Unknown(String),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that ran it.
    pub process: usize,
    /// Index into the workload's endpoints: the node it was sent to.
    pub node: usize,
    pub key: String,
    pub kind: OpKind,
    /// Since the workload's start, on the monotonic clock.
    pub invoke: Duration,
    pub complete: Duration,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_write(&self) -> bool {
        matches!(self.kind, OpKind::Write { .. })
    }

    /// A linearizable read, the kind the checker checks.
    pub fn is_linearizable_read(&self) -> bool {
        self.kind == OpKind::Read { stale: false }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// The value a write wrote.
    pub fn written(&self) -> Option<&str> {
        match &self.kind {
            OpKind::Write { value } => Some(value),
            OpKind::Read { .. } => None,
        }
    }

    /// What a successful read saw: `Some(None)` when the model was not found.
    pub fn seen(&self) -> Option<Option<&str>> {
        match (&self.kind, &self.outcome) {
            (OpKind::Read { .. }, Outcome::Ok(seen)) => Some(seen.as_deref()),
            _ => None,
        }
    }

    /// One line of the JSON-lines record.
    pub fn to_json(&self) -> Value {
        let mut line = json!({
            "process": self.process,
            "node": self.node,
            "key": self.key,
            "invoke_s": self.invoke.as_secs_f64(),
            "complete_s": self.complete.as_secs_f64(),
        });
        match &self.kind {
            OpKind::Write { value } => {
                line["kind"] = json!("write");
                line["value"] = json!(value);
            }
            OpKind::Read { stale } => {
                line["kind"] = json!(if *stale { "stale_read" } else { "read" })
            }
        }
        match &self.outcome {
            Outcome::Ok(seen) => {
                line["outcome"] = json!("ok");
                if !self.is_write() {
                    line["seen"] = json!(seen);
                }
            }
            Outcome::Fail(why) => {
                line["outcome"] = json!("fail");
                line["reason"] = json!(why);
            }
            Outcome::Unknown(why) => {
                line["outcome"] = json!("unknown");
                line["reason"] = json!(why);
            }
        }
        line
    }
}

/// `p3 write "p3-w17" on chaos-1 via node 2, 1.234-1.240 s: ok`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            OpKind::Write { value } => format!("write {value:?}"),
            OpKind::Read { stale: false } => "read".into(),
            OpKind::Read { stale: true } => "stale read".into(),
        };
        write!(
            f,
            "p{} {what} on {} via node {}, {:.3}-{:.3} s: ",
            self.process,
            self.key,
            self.node,
            self.invoke.as_secs_f64(),
            self.complete.as_secs_f64()
        )?;
        match &self.outcome {
            Outcome::Ok(_) if self.is_write() => f.write_str("ok"),
            Outcome::Ok(Some(seen)) => write!(f, "saw {seen:?}"),
            Outcome::Ok(None) => f.write_str("not found"),
            Outcome::Fail(why) => write!(f, "failed ({why})"),
            Outcome::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Successes, certain failures and unknown outcomes of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok(_) => self.ok += 1,
            Outcome::Fail(_) => self.fail += 1,
            Outcome::Unknown(_) => self.unknown += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} unknown",
            self.ok, self.fail, self.unknown
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub writes: Tally,
    pub reads: Tally,
    pub stale_reads: Tally,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes: {}; reads: {}; stale reads: {}",
            self.writes, self.reads, self.stale_reads
        )
    }
}

/// Every operation of a run, in invoke order.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(mut ops: Vec<Op>) -> History {
        ops.sort_by_key(|op| (op.invoke, op.complete, op.process));
        History { ops }
    }

    pub fn keys(&self) -> BTreeSet<&str> {
        self.ops.iter().map(|op| op.key.as_str()).collect()
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for op in &self.ops {
            let tally = match op.kind {
                OpKind::Write { .. } => &mut counts.writes,
                OpKind::Read { stale: false } => &mut counts.reads,
                OpKind::Read { stale: true } => &mut counts.stale_reads,
            };
            tally.add(&op.outcome);
        }
        counts
    }

    /// The longest stretch of `from..to` in which no write was acknowledged (by the
    /// completion times of successful writes): the write unavailability in that window.
    pub fn longest_write_gap(&self, from: Duration, to: Duration) -> Duration {
        let mut acks: Vec<Duration> = self
            .ops
            .iter()
            .filter(|op| op.is_write() && op.is_ok())
            .map(|op| op.complete)
            .filter(|t| (from..=to).contains(t))
            .collect();
        acks.sort();
        let mut longest = Duration::ZERO;
        let mut last = from;
        for t in acks.into_iter().chain([to]) {
            longest = longest.max(t.saturating_sub(last));
            last = t;
        }
        longest
    }

    /// Writes the history as JSON lines, one operation a line, in invoke order.
    pub fn write_jsonl(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::new(fs::File::create(path)?);
        for op in &self.ops {
            writeln!(out, "{}", op.to_json())?;
        }
        out.flush()
    }
}

/// Sends the workload's requests and records them.
struct Recorder {
    http: blocking::Client,
    /// `http`, or `https` with the cluster CA.
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

    /// Creates every key's model with the initial value, through any node that answers.
    fn create(&self, key: &str) {
        let deadline = Instant::now() + crate::common::WAIT;
        let body =
            json!({ "id": key, "memory": "1GB", "name": "chaos", "description": INITIAL_VALUE });
        let mut last = String::new();
        for endpoint in self.endpoints.iter().cycle() {
            if Instant::now() > deadline {
                panic!("test setup: could not create model {key}: {last}");
            }
            let response = self
                .http
                .post(format!("{}://{endpoint}{MODELS}", self.scheme))
                .bearer_auth(&self.admin_key)
                .json(&body)
                .send();
            match response {
                // 409: an earlier try that timed out did create it.
                Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => return,
                Ok(r) => last = format!("{endpoint}: status {}", r.status()),
                Err(e) => last = format!("{endpoint}: {}", error_chain(&e)),
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
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
        // One request per connection: no pooled connection to a killed or cut-off node.
        let mut http = blocking::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .timeout(spec.request_timeout)
            .connect_timeout(spec.request_timeout.min(Duration::from_secs(1)));
        if let Some(ca) = &spec.tls_ca {
            let ca = reqwest::Certificate::from_pem(ca).expect("the cluster CA is PEM");
            http = http.tls_built_in_root_certs(false).add_root_certificate(ca);
        }
        let recorder = Arc::new(Recorder {
            http: http.build().expect("build the HTTP client"),
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
                let client = Client {
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
                    .spawn(move || client.run())
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

/// One client thread.
struct Client {
    process: usize,
    role: Role,
    recorder: Arc<Recorder>,
    keys: Vec<String>,
    spec: WorkloadSpec,
    stop: Arc<AtomicBool>,
    acked_writes: Arc<AtomicUsize>,
}

impl Client {
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
    use super::*;
    use crate::chaos::linearizability::check;
    use crate::common::{wait_for, Cluster, WAIT};

    fn op(invoke_ms: u64, complete_ms: u64, kind: OpKind, outcome: Outcome) -> Op {
        Op {
            process: 0,
            node: 0,
            key: "k".into(),
            kind,
            invoke: Duration::from_millis(invoke_ms),
            complete: Duration::from_millis(complete_ms),
            outcome,
        }
    }

    fn write(invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        let value = format!("w{invoke_ms}");
        op(invoke_ms, complete_ms, OpKind::Write { value }, outcome)
    }

    #[test]
    fn the_longest_write_gap_counts_from_the_window_edges_between_acknowledgements() {
        let history = History::new(vec![
            write(0, 100, Outcome::Ok(None)),
            write(100, 300, Outcome::Ok(None)),
            // Neither a failed nor an unknown write ends a gap.
            write(300, 900, Outcome::Unknown("timeout".into())),
            write(900, 950, Outcome::Fail("400".into())),
            write(950, 1000, Outcome::Ok(None)),
        ]);
        let ms = Duration::from_millis;
        assert_eq!(history.longest_write_gap(ms(0), ms(1100)), ms(700));
        assert_eq!(history.longest_write_gap(ms(0), ms(250)), ms(150));
        assert_eq!(history.longest_write_gap(ms(1000), ms(1500)), ms(500));
    }

    #[test]
    fn counts_and_json_lines_tell_every_outcome_apart() {
        let read = |stale, outcome| op(5, 6, OpKind::Read { stale }, outcome);
        let history = History::new(vec![
            write(0, 1, Outcome::Ok(None)),
            write(1, 2, Outcome::Unknown("timeout".into())),
            read(false, Outcome::Ok(Some("w0".into()))),
            read(false, Outcome::Fail("503: no leader".into())),
            read(true, Outcome::Ok(None)),
        ]);
        let counts = history.counts();
        assert_eq!(
            counts.to_string(),
            "writes: 1 ok, 0 failed, 1 unknown; reads: 1 ok, 1 failed, 0 unknown; \
             stale reads: 1 ok, 0 failed, 0 unknown"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        history.write_jsonl(&path).unwrap();
        let lines: Vec<Value> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["kind"], "write");
        assert_eq!(lines[0]["value"], "w0");
        assert_eq!(lines[1]["outcome"], "unknown");
        assert_eq!(lines[1]["reason"], "timeout");
        let seen: Vec<&Value> = lines[2..].iter().map(|l| &l["seen"]).collect();
        assert_eq!(seen, [&json!("w0"), &Value::Null, &Value::Null]);
        assert_eq!(lines[4]["kind"], "stale_read");
    }

    #[test]
    fn records_a_linearizable_history_on_a_healthy_cluster() {
        let c = Cluster::new(3);
        let endpoints = c.nodes.iter().map(|n| n.api_addr.clone()).collect();
        let spec = WorkloadSpec {
            // Paced, so that six clients leave room on a loaded 2-core machine.
            pause_between_ops: Duration::from_millis(10),
            ..WorkloadSpec::default()
        };
        let workload = Workload::start(endpoints, c.admin_key.clone(), spec);
        wait_for(WAIT, "the clients have 300 writes acknowledged", || {
            let acked = workload.acked_writes();
            if acked >= 300 {
                Ok(())
            } else {
                Err(format!("{acked} so far"))
            }
        });
        let (end, keys) = (workload.now(), workload.keys().to_vec());
        let history = workload.finish(WAIT);
        let counts = history.counts();
        let verdict = check(&history);
        let gap = history.longest_write_gap(Duration::ZERO, end);
        let report = format!("{counts}\nlongest write gap: {gap:?}\n{verdict}");
        assert!(
            verdict.linearizable() && verdict.lost_acks() == 0,
            "{report}"
        );
        println!("{report}");
        // Healthy: every node answers, no write is left in doubt.
        assert!(counts.writes.ok >= 300, "{counts}");
        assert_eq!(
            (counts.writes.fail, counts.writes.unknown),
            (0, 0),
            "{counts}"
        );
        assert!(
            counts.reads.ok >= 20 && counts.stale_reads.ok >= 10,
            "{counts}"
        );
        // The final reads: every key read back after the clients stopped.
        assert_eq!(history.keys().len(), keys.len());
        for key in keys {
            let last = history.ops.iter().rfind(|op| op.key == key).unwrap();
            assert!(last.is_linearizable_read() && last.is_ok(), "{last}");
        }
        let nodes: BTreeSet<usize> = history.ops.iter().map(|op| op.node).collect();
        assert_eq!(nodes.len(), 3, "writes and reads go through every node");
    }
}
