//! The `propagation` scenario (helix only): how long a settings change takes to show on
//! every endpoint.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use super::args::{BenchArgs, Scenario, Target};
use super::http::{http_client, send, Failure};
use super::report::ProgressLine;
use super::stats::{unix_ms, Errors, Latency};

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

pub(super) async fn propagation_bench(
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
