//! The `write` scenario: N clients writing through Raft, each one request at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::args::{BenchArgs, Scenario, Target, WriteMode};
use super::http::{http_client, send};
use super::report::ProgressLine;
use super::stats::{find_gaps, unix_ms, Errors, Gap, Latency};
use super::target::Writes;

#[derive(Debug, Serialize)]
pub struct WriteReport {
    pub scenario: Scenario,
    pub target: Target,
    pub mode: WriteMode,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub value_size: usize,
    pub started_unix_ms: u64,
    pub elapsed_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    /// Successful writes per second.
    pub throughput: f64,
    /// Latency of successful writes.
    pub latency_ms: Latency,
    pub gaps_over_ms: u64,
    pub gaps: Vec<Gap>,
    /// When the last successful write was answered (none: no success at all).
    pub last_success_unix_ms: Option<u64>,
}

struct Shared {
    writes: Writes,
    endpoints: Vec<String>,
    prefix: String,
    value_size: usize,
    keys: u64,
    clients: usize,
    error_backoff: Duration,
    /// Requests left to send, for count-bounded runs.
    remaining: Option<AtomicU64>,
    deadline: Instant,
    t0: Instant,
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

#[derive(Default)]
struct ClientResult {
    requests: u64,
    latencies_us: Vec<u64>,
    /// Completion times of successful writes, µs since `t0`.
    done_us: Vec<u64>,
    errors: Errors,
}

impl Shared {
    fn value(&self, client: usize, seq: u64) -> String {
        let mut v = format!("bench value {} client {client} seq {seq} ", self.prefix);
        while v.len() < self.value_size {
            v.push_str("0123456789abcdefghijklmnopqrstuvwxyz");
        }
        v.truncate(self.value_size);
        v
    }

    fn key(&self, client: usize, seq: u64) -> String {
        match self.writes.mode {
            WriteMode::Create => format!("{}/c{client}-{seq}", self.prefix),
            WriteMode::Update => {
                let k = (seq * self.clients as u64 + client as u64) % self.keys;
                format!("{}/k{k}", self.prefix)
            }
        }
    }

    /// Take one request from the budget; false when the run is over.
    fn take_one(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

async fn client_loop(shared: Arc<Shared>, client: usize) -> ClientResult {
    let endpoint = shared.endpoints[client % shared.endpoints.len()].clone();
    let mut result = ClientResult::default();
    let mut seq = 0u64;
    while shared.take_one() {
        let key = shared.key(client, seq);
        let value = shared.value(client, seq);
        seq += 1;
        let request = shared.writes.request(&endpoint, &key, &value, false);
        let start = Instant::now();
        let sent = send(&endpoint, request, false).await;
        let end = Instant::now();
        result.requests += 1;
        match sent {
            Ok(_) => {
                result
                    .latencies_us
                    .push(end.duration_since(start).as_micros() as u64);
                result
                    .done_us
                    .push(end.duration_since(shared.t0).as_micros() as u64);
                shared.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(f) => {
                result.errors.add(f.kind, f.message);
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let pause = shared
                    .error_backoff
                    .min(shared.deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
    }
    result
}

/// `--mode update`: create the keys first (untimed), spread over the clients.
async fn setup_keys(shared: &Arc<Shared>) -> Errors {
    let mut tasks = Vec::new();
    for client in 0..shared.clients.min(shared.keys as usize) {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let endpoint = shared.endpoints[client % shared.endpoints.len()].clone();
            let mut errors = Errors::default();
            let mut k = client as u64;
            while k < shared.keys && Instant::now() < shared.deadline {
                let key = format!("{}/k{k}", shared.prefix);
                let value = shared.value(client, 0);
                let request = shared.writes.request(&endpoint, &key, &value, true);
                if let Err(f) = send(&endpoint, request, true).await {
                    errors.add(format!("setup {}", f.kind), f.message);
                }
                k += shared.clients as u64;
            }
            errors
        }));
    }
    let mut errors = Errors::default();
    for t in tasks {
        if let Ok(e) = t.await {
            errors.merge(e);
        }
    }
    errors
}

pub(super) async fn write_bench(
    args: &BenchArgs,
    endpoints: Vec<String>,
    api_key: Option<&str>,
) -> Result<WriteReport, String> {
    let duration = match (args.duration, args.count) {
        (Some(d), _) => Duration::from_secs_f64(d),
        (None, Some(_)) => Duration::from_secs(args.max_seconds),
        (None, None) => Duration::from_secs(10),
    }
    .min(Duration::from_secs(args.max_seconds));
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench-{}", crate::crypto::random_id()));
    let http = http_client(args)?;
    let make = |t0: Instant, run_for: Duration, remaining: Option<u64>| Shared {
        writes: Writes {
            http: http.clone(),
            target: args.target,
            mode: args.mode,
            api_key: api_key.map(str::to_owned),
        },
        endpoints: endpoints.clone(),
        prefix: prefix.clone(),
        value_size: args.value_size,
        keys: args.keys,
        clients: args.clients,
        error_backoff: Duration::from_millis(args.error_backoff_ms),
        remaining: remaining.map(AtomicU64::new),
        deadline: t0 + run_for,
        t0,
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let mut errors = Errors::default();
    if args.mode == WriteMode::Update && !args.skip_setup {
        let setup = Arc::new(make(
            Instant::now(),
            Duration::from_secs(args.max_seconds),
            None,
        ));
        errors = setup_keys(&setup).await;
    }
    let started = SystemTime::now();
    let t0 = Instant::now();
    let shared = Arc::new(make(t0, duration, args.count));

    let progress = Progress::start(shared.clone(), duration, args.count);
    let tasks: Vec<_> = (0..args.clients)
        .map(|c| tokio::spawn(client_loop(shared.clone(), c)))
        .collect();
    let mut latencies = Vec::new();
    let mut done = Vec::new();
    let mut requests = 0;
    for t in tasks {
        match t.await {
            Ok(r) => {
                requests += r.requests;
                latencies.extend(r.latencies_us);
                done.extend(r.done_us);
                errors.merge(r.errors);
            }
            Err(e) => errors.add("client task".into(), e.to_string()),
        }
    }
    let elapsed = t0.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    progress.finish().await;

    let ok = latencies.len() as u64;
    let t0_unix_us = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    let last_success_unix_ms = done.iter().max().map(|us| (t0_unix_us + us) / 1000);
    Ok(WriteReport {
        scenario: Scenario::Write,
        target: args.target,
        mode: args.mode,
        endpoints,
        clients: args.clients,
        value_size: args.value_size,
        started_unix_ms: unix_ms(started),
        elapsed_s: elapsed.as_secs_f64(),
        requests,
        ok,
        errors: errors.total(),
        error_kinds: errors.kinds,
        error_samples: errors.samples,
        throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: Latency::from_micros(latencies),
        gaps_over_ms: args.gaps_over_ms,
        gaps: find_gaps(done, args.gaps_over_ms * 1000, t0_unix_us),
        last_success_unix_ms,
    })
}

/// A progress bar for the write scenario, redrawn every 200 ms by its own task.
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl Progress {
    fn start(shared: Arc<Shared>, duration: Duration, count: Option<u64>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let line = ProgressLine::new();
        if !line.tty {
            return Progress { task: None, done };
        }
        let stop = done.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            // Bounded by the run itself: `done` is set when the clients have finished.
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let elapsed = shared.t0.elapsed();
                let ok = shared.ok.load(Ordering::Relaxed);
                let failed = shared.failed.load(Ordering::Relaxed);
                let fraction = match count {
                    Some(n) if n > 0 => (ok + failed) as f64 / n as f64,
                    _ => elapsed.as_secs_f64() / duration.as_secs_f64().max(1e-9),
                }
                .clamp(0.0, 1.0);
                let width = 30;
                let filled = (fraction * width as f64).round() as usize;
                line.show(&format!(
                    "[{}{}] {:>5.1}s  {} ok  {} errors  {:.0} writes/s",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    elapsed.as_secs_f64(),
                    ok,
                    failed,
                    ok as f64 / elapsed.as_secs_f64().max(1e-9),
                ));
            }
            line.clear();
        });
        Progress {
            task: Some(task),
            done,
        }
    }

    async fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
}
