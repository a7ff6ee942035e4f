//! `helix bench`: a load generator for a helix cluster, or for an etcd cluster through its
//! v3 HTTP/JSON gateway, with the same client, the same value size and the same report.
//!
//! N clients run concurrently, each sending one request at a time over a pooled keep-alive
//! connection to its endpoint (client `i` uses endpoint `i % endpoints`). A run stops after
//! `--count` requests or `--duration` seconds, and always within `--max-seconds`. Failed
//! requests are counted by kind and reported, never fatal.
//!
//! Scenarios:
//! - `write`: every request is a write that goes through Raft. On helix, `create` posts a new
//!   model with a distinct id (`POST /api/v1/helix-models`) and `update` changes the
//!   description of one of `--keys` models (`PUT /api/v1/helix-models/{id}`, created first,
//!   untimed). On etcd, both put a key (`POST /v3/kv/put`): distinct keys, or `--keys` keys.
//!   The report includes every gap between two consecutive successful writes (over all
//!   clients) longer than `--gaps-over-ms`, in wall-clock time, so a script that kills a
//!   leader can read the write-unavailability window around the kill.
//! - `propagation` (helix only): toggles the cluster-wide Hugging Face token through the
//!   first endpoint and measures the time from the PUT returning to every endpoint reporting
//!   the new value on `GET /api/v1/system/config`. It refuses to run when a token is already
//!   set in the cluster, unless `--allow-token-overwrite`: it is meant for benchmark clusters.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};

/// Error samples kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to load: a helix cluster or an etcd cluster (v3 HTTP/JSON gateway).
    #[arg(long, value_enum, default_value_t = Target::Helix)]
    pub target: Target,
    #[arg(long, value_enum, default_value_t = Scenario::Write)]
    pub scenario: Scenario,
    /// Endpoints, comma separated (`http://127.0.0.1:8080,...`); default: `--url`.
    /// For etcd, its client URLs (`http://127.0.0.1:2379`).
    #[arg(long)]
    pub endpoints: Option<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Run this many seconds (default 10 when --count is not given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Send this many requests in all (for `propagation`: this many changes).
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes in each written value (the model description, or the etcd value).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// `create`: a new model (distinct key) per write; `update`: rewrite one of --keys.
    #[arg(long, value_enum, default_value_t = WriteMode::Create)]
    pub mode: WriteMode,
    /// How many models/keys `--mode update` cycles through.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// `--mode update`: the keys exist already (an earlier run with the same --prefix).
    #[arg(long)]
    pub skip_setup: bool,
    /// Per-request timeout.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Pause after a failed request before the client tries again.
    #[arg(long, default_value_t = 5)]
    pub error_backoff_ms: u64,
    /// Report gaps between consecutive successful writes longer than this.
    #[arg(long, default_value_t = 100)]
    pub gaps_over_ms: u64,
    /// Prefix of model ids / keys (default: `bench-` and a random tag).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Hard limit on the run's length, whatever --count says.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// `propagation`: run even if the cluster already has a Hugging Face token (it is lost).
    #[arg(long)]
    pub allow_token_overwrite: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Helix,
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Write,
    Propagation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Create,
    Update,
}

/// Runs `helix bench` and prints its report (a table, or JSON with `json`).
/// `default_urls` is the CLI's `--url`, used when `--endpoints` is not given.
pub async fn run(
    args: BenchArgs,
    default_urls: &str,
    api_key: Option<&str>,
    json: bool,
) -> Result<(), String> {
    let endpoints = parse_endpoints(args.endpoints.as_deref().unwrap_or(default_urls))?;
    if args.clients == 0 || args.clients > 10_000 {
        return Err("--clients must be between 1 and 10000".into());
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err("--duration must be a positive number of seconds".into());
    }
    if args.mode == WriteMode::Update && args.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    if args.target == Target::Helix && api_key.is_none() {
        return Err("helix needs an admin API key: --api-key or HELIX_API_KEY".into());
    }
    let report = match args.scenario {
        Scenario::Write => serde_json::to_value(write_bench(&args, endpoints, api_key).await?),
        Scenario::Propagation => {
            if args.target != Target::Helix {
                return Err("--scenario propagation is for --target helix".into());
            }
            let key = api_key.unwrap_or_default();
            serde_json::to_value(propagation_bench(&args, endpoints, key).await?)
        }
    }
    .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_table(&report);
    }
    Ok(())
}

fn parse_endpoints(list: &str) -> Result<Vec<String>, String> {
    let endpoints: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let u = u.trim_end_matches('/');
            if u.starts_with("http://") || u.starts_with("https://") {
                u.to_string()
            } else {
                format!("http://{u}")
            }
        })
        .collect();
    if endpoints.is_empty() {
        return Err("no endpoint given (--endpoints URL[,URL...])".into());
    }
    Ok(endpoints)
}

fn http_client(args: &BenchArgs) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(4))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(args.timeout_ms.min(2000)))
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// From durations in microseconds (any order).
    pub fn from_micros(mut us: Vec<u64>) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let pick = |q: f64| {
            let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
            us[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = us.iter().map(|&v| v as u128).sum();
        Latency {
            samples: us.len() as u64,
            min: us[0] as f64 / 1000.0,
            mean: (sum as f64 / us.len() as f64) / 1000.0,
            p50: pick(0.50),
            p90: pick(0.90),
            p99: pick(0.99),
            p999: pick(0.999),
            max: us[us.len() - 1] as f64 / 1000.0,
        }
    }
}

/// A stretch of time with no successful write: from the last success before it to the first
/// after it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub from_unix_ms: u64,
    pub to_unix_ms: u64,
    pub ms: f64,
}

/// Gaps longer than `over_us` between consecutive completion offsets (µs since `t0`).
pub fn find_gaps(mut done_us: Vec<u64>, over_us: u64, t0_unix_us: u64) -> Vec<Gap> {
    done_us.sort_unstable();
    done_us
        .windows(2)
        .filter(|w| w[1] - w[0] > over_us)
        .map(|w| Gap {
            from_unix_ms: (t0_unix_us + w[0]) / 1000,
            to_unix_ms: (t0_unix_us + w[1]) / 1000,
            ms: (w[1] - w[0]) as f64 / 1000.0,
        })
        .collect()
}

#[derive(Default)]
struct Errors {
    kinds: BTreeMap<String, u64>,
    samples: Vec<String>,
}

impl Errors {
    fn add(&mut self, kind: String, message: String) {
        *self.kinds.entry(kind).or_default() += 1;
        if self.samples.len() < MAX_ERROR_SAMPLES {
            self.samples.push(message);
        }
    }

    fn merge(&mut self, other: Errors) {
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        for s in other.samples {
            if self.samples.len() < MAX_ERROR_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    fn total(&self) -> u64 {
        self.kinds.values().sum()
    }
}

/// Why a request failed: a short kind for counting (`http 503`, `timeout`, `connect`) and a
/// message for the samples.
struct Failure {
    kind: String,
    message: String,
}

fn transport_failure(endpoint: &str, e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    Failure {
        kind: kind.into(),
        message: format!("{endpoint}: {e}"),
    }
}

/// Send a request, read the whole answer (so the connection goes back to the pool), and
/// accept any 2xx (and 409 when `conflict_ok`).
async fn send(
    endpoint: &str,
    request: reqwest::RequestBuilder,
    conflict_ok: bool,
) -> Result<bytes::Bytes, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_failure(endpoint, e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_failure(endpoint, e))?;
    if status.is_success() || (conflict_ok && status == reqwest::StatusCode::CONFLICT) {
        return Ok(body);
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.chars().take(200).collect();
    Err(Failure {
        kind: format!("http {}", status.as_u16()),
        message: format!("{endpoint}: {status}: {text}"),
    })
}

// ---------------------------------------------------------------------------------------------
// The write scenario

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
    http: reqwest::Client,
    target: Target,
    mode: WriteMode,
    endpoints: Vec<String>,
    api_key: Option<String>,
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
        match self.mode {
            WriteMode::Create => format!("{}/c{client}-{seq}", self.prefix),
            WriteMode::Update => {
                let k = (seq * self.clients as u64 + client as u64) % self.keys;
                format!("{}/k{k}", self.prefix)
            }
        }
    }

    /// One write of `key`. `create` forces a creation (setup of `--mode update`).
    fn request(
        &self,
        endpoint: &str,
        key: &str,
        value: &str,
        create: bool,
    ) -> reqwest::RequestBuilder {
        match self.target {
            Target::Etcd => self
                .http
                .post(format!("{endpoint}/v3/kv/put"))
                .json(&json!({ "key": base64(key.as_bytes()), "value": base64(value.as_bytes()) })),
            Target::Helix => {
                let req = if create || self.mode == WriteMode::Create {
                    self.http
                        .post(format!("{endpoint}/api/v1/helix-models"))
                        .json(&json!({ "id": key, "name": "bench", "description": value }))
                } else {
                    self.http
                        .put(format!("{endpoint}/api/v1/helix-models/{key}"))
                        .json(&json!({ "description": value }))
                };
                req.bearer_auth(self.api_key.as_deref().unwrap_or_default())
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
        let request = shared.request(&endpoint, &key, &value, false);
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
                let request = shared.request(&endpoint, &key, &value, true);
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

async fn write_bench(
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
        http: http.clone(),
        target: args.target,
        mode: args.mode,
        endpoints: endpoints.clone(),
        api_key: api_key.map(str::to_owned),
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

// ---------------------------------------------------------------------------------------------
// The propagation scenario

#[derive(Debug, Serialize)]
pub struct PropagationReport {
    pub scenario: Scenario,
    pub target: Target,
    pub endpoints: Vec<String>,
    pub started_unix_ms: u64,
    pub elapsed_s: f64,
    /// Settings changes attempted.
    pub changes: u64,
    /// Changes seen on every endpoint.
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    /// The settings PUT itself (it answers once the receiving node has applied it).
    pub put_latency_ms: Latency,
    /// From the PUT returning to the last endpoint reporting the new value.
    pub propagation_ms: Latency,
}

/// `huggingface_token_set` as `endpoint` reports it on `/api/v1/system/config`.
async fn token_set_on(http: &reqwest::Client, endpoint: &str, key: &str) -> Result<bool, Failure> {
    let body = send(
        endpoint,
        http.get(format!("{endpoint}/api/v1/system/config"))
            .bearer_auth(key),
        false,
    )
    .await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| Failure {
        kind: "bad answer".into(),
        message: format!("{endpoint}: {e}"),
    })?;
    v.get("huggingface_token_set")
        .and_then(Value::as_bool)
        .ok_or_else(|| Failure {
            kind: "bad answer".into(),
            message: format!("{endpoint}: no huggingface_token_set in {v}"),
        })
}

/// Poll `endpoint` until it reports `want`; the instant it was first seen, or the failure.
async fn poll_until(
    http: &reqwest::Client,
    endpoint: &str,
    key: &str,
    want: bool,
    deadline: Instant,
) -> Result<Instant, Failure> {
    loop {
        match token_set_on(http, endpoint, key).await {
            Ok(v) if v == want => return Ok(Instant::now()),
            Ok(_) => {}
            Err(f) if Instant::now() >= deadline => return Err(f),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
        if Instant::now() >= deadline {
            return Err(Failure {
                kind: "not propagated".into(),
                message: format!("{endpoint}: still not showing the change at the deadline"),
            });
        }
    }
}

async fn propagation_bench(
    args: &BenchArgs,
    endpoints: Vec<String>,
    key: &str,
) -> Result<PropagationReport, String> {
    let http = http_client(args)?;
    let writer = endpoints[0].clone();
    let settings = send(
        &writer,
        http.get(format!("{writer}/api/v1/system/settings"))
            .bearer_auth(key),
        false,
    )
    .await
    .map_err(|f| format!("cannot read the system settings: {}", f.message))?;
    let settings: Value = serde_json::from_slice(&settings).map_err(|e| e.to_string())?;
    if settings["huggingface_token_source"] == "database" && !args.allow_token_overwrite {
        return Err(
            "this cluster has a Hugging Face token set, and the propagation benchmark \
                    would replace it; run it on a benchmark cluster, or pass \
                    --allow-token-overwrite"
                .into(),
        );
    }
    let changes = args.count.unwrap_or(200);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let run_deadline = t0 + Duration::from_secs(args.max_seconds);
    let per_change = Duration::from_millis(args.timeout_ms);
    let mut want = !token_set_on(&http, &writer, key)
        .await
        .map_err(|f| f.message)?;
    let mut errors = Errors::default();
    let (mut puts, mut spreads) = (Vec::new(), Vec::new());
    let mut attempted = 0;
    let progress = ProgressLine::new();
    for i in 0..changes {
        if Instant::now() >= run_deadline {
            break;
        }
        attempted += 1;
        let token = if want {
            format!("hf_bench_{i:06}")
        } else {
            String::new()
        };
        let put = http
            .put(format!("{writer}/api/v1/system/settings"))
            .bearer_auth(key)
            .json(&json!({ "huggingface_token": token }));
        let start = Instant::now();
        let sent = send(&writer, put, false).await;
        let returned = Instant::now();
        if let Err(f) = sent {
            errors.add(f.kind, f.message);
            tokio::time::sleep(Duration::from_millis(args.error_backoff_ms)).await;
            // The change may or may not have been applied: read where we stand.
            if let Ok(now_set) = token_set_on(&http, &writer, key).await {
                want = !now_set;
            }
            continue;
        }
        puts.push(returned.duration_since(start).as_micros() as u64);
        let deadline = (returned + per_change).min(run_deadline.max(returned));
        let seen = futures::future::join_all(
            endpoints
                .iter()
                .map(|ep| poll_until(&http, ep, key, want, deadline)),
        )
        .await;
        let mut last = returned;
        let mut complete = true;
        for s in seen {
            match s {
                Ok(at) => last = last.max(at),
                Err(f) => {
                    complete = false;
                    errors.add(f.kind, f.message);
                }
            }
        }
        if complete {
            spreads.push(last.duration_since(returned).as_micros() as u64);
        }
        want = !want;
        progress.show(&format!(
            "propagation {}/{changes}  errors {}",
            i + 1,
            errors.total()
        ));
    }
    progress.clear();
    Ok(PropagationReport {
        scenario: Scenario::Propagation,
        target: Target::Helix,
        endpoints,
        started_unix_ms: unix_ms(started),
        elapsed_s: t0.elapsed().as_secs_f64(),
        changes: attempted,
        ok: spreads.len() as u64,
        errors: errors.total(),
        error_kinds: errors.kinds,
        error_samples: errors.samples,
        put_latency_ms: Latency::from_micros(puts),
        propagation_ms: Latency::from_micros(spreads),
    })
}

// ---------------------------------------------------------------------------------------------
// Progress and output

/// One status line on stderr, redrawn in place; silent unless stderr is a terminal.
struct ProgressLine {
    tty: bool,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, line: &str) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    fn clear(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
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

fn print_table(report: &Value) {
    let lat = |name: &str| -> String {
        let l = &report[name];
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}  ({} samples)",
            l["p50"].as_f64().unwrap_or(0.0),
            l["p90"].as_f64().unwrap_or(0.0),
            l["p99"].as_f64().unwrap_or(0.0),
            l["p999"].as_f64().unwrap_or(0.0),
            l["max"].as_f64().unwrap_or(0.0),
            l["mean"].as_f64().unwrap_or(0.0),
            l["samples"].as_u64().unwrap_or(0),
        )
    };
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!(
        "target {}  scenario {}  endpoints {}",
        s(&report["target"]),
        s(&report["scenario"]),
        report["endpoints"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    );
    if report["scenario"] == "propagation" {
        println!(
            "changes {}  propagated {}  errors {}  in {:.1} s",
            report["changes"],
            report["ok"],
            report["errors"],
            report["elapsed_s"].as_f64().unwrap_or(0.0)
        );
        println!("settings PUT   ms: {}", lat("put_latency_ms"));
        println!("to every node  ms: {}", lat("propagation_ms"));
    } else {
        println!(
            "mode {}  clients {}  value {} bytes  {:.1} s",
            s(&report["mode"]),
            report["clients"],
            report["value_size"],
            report["elapsed_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "requests {}  ok {}  errors {}",
            report["requests"], report["ok"], report["errors"]
        );
        println!(
            "throughput {:.0} writes/s",
            report["throughput"].as_f64().unwrap_or(0.0)
        );
        println!("latency ms: {}", lat("latency_ms"));
        if let Some(gaps) = report["gaps"].as_array().filter(|g| !g.is_empty()) {
            println!(
                "gaps with no successful write over {} ms: {}",
                report["gaps_over_ms"],
                gaps.iter()
                    .map(|g| format!("{:.0} ms", g["ms"].as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(kinds) = report["error_kinds"].as_object().filter(|k| !k.is_empty()) {
        println!(
            "errors by kind: {}",
            kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for sample in report["error_samples"].as_array().into_iter().flatten() {
            println!("  e.g. {}", s(sample));
        }
    }
}

/// Standard base64 with padding (etcd's gateway takes keys and values so).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::from_micros((1..=1000).rev().map(|v| v * 1000).collect());
        assert_eq!(l.samples, 1000);
        assert_eq!(l.min, 1.0);
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p90, 900.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
        assert_eq!(l.mean, 500.5);
        assert_eq!(Latency::from_micros(vec![]), Latency::default());
        let one = Latency::from_micros(vec![2500]);
        assert_eq!((one.p50, one.p999, one.max), (2.5, 2.5, 2.5));
    }

    #[test]
    fn gaps_are_found_between_sorted_completions() {
        let gaps = find_gaps(
            vec![5_000, 1_000, 2_000, 400_000, 401_000],
            100_000,
            1_000_000_000,
        );
        assert_eq!(
            gaps,
            vec![Gap {
                from_unix_ms: 1_000_005,
                to_unix_ms: 1_000_400,
                ms: 395.0
            }]
        );
        assert!(find_gaps(vec![], 1, 0).is_empty());
    }

    #[test]
    fn endpoints_get_a_scheme_and_lose_trailing_slashes() {
        assert_eq!(
            parse_endpoints("127.0.0.1:1, http://127.0.0.2:2/,").unwrap(),
            vec!["http://127.0.0.1:1", "http://127.0.0.2:2"]
        );
        assert!(parse_endpoints(" , ").is_err());
    }
}
