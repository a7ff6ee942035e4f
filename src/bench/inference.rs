//! `helix bench --scenario inference`: chat requests to one OpenAI-compatible endpoint (a
//! helix gateway, or a vLLM directly, for comparison with the same client), each client with
//! one request in flight. Non-streaming requests are timed whole; with `--stream`, the time
//! to the first chunk and to the end of the answer are timed apart.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::args::BenchArgs;
use super::stats::Latency;

#[derive(Debug, Serialize)]
pub struct InferenceReport {
    pub endpoint: String,
    pub model: String,
    pub clients: usize,
    pub stream: bool,
    pub seconds: f64,
    pub requests: u64,
    pub failed: u64,
    pub requests_per_second: f64,
    /// Whole request (non-streaming), or whole stream.
    pub latency_ms: Latency,
    /// Streams only: from sending to the first chunk of the answer.
    pub first_chunk_ms: Option<Latency>,
}

struct Sample {
    total_us: u64,
    first_us: Option<u64>,
}

pub async fn inference_bench(
    args: &BenchArgs,
    endpoint: &str,
    api_key: Option<&str>,
) -> Result<InferenceReport, String> {
    let model = args
        .model
        .clone()
        .ok_or("--scenario inference needs --model")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .tcp_nodelay(true)
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| e.to_string())?;
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello from the benchmark"}],
        "max_tokens": args.max_tokens,
        "stream": args.stream,
    })
    .to_string();
    let url = format!("{endpoint}/v1/chat/completions");
    let duration = Duration::from_secs_f64(args.duration.unwrap_or(10.0))
        .min(Duration::from_secs(args.max_seconds));
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        let key = api_key.map(str::to_owned);
        let count = args.count.map(|c| c.div_ceil(args.clients as u64));
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failed = 0u64;
            while Instant::now() < deadline && count.is_none_or(|c| (samples.len() as u64) < c) {
                match one(&http, &url, &body, key.as_deref()).await {
                    Ok(sample) => samples.push(sample),
                    Err(_) => failed += 1,
                }
            }
            (samples, failed)
        }));
    }
    let mut samples = Vec::new();
    let mut failed = 0;
    for client in clients {
        let (s, f) = client.await.map_err(|e| e.to_string())?;
        samples.extend(s);
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let first: Vec<u64> = samples.iter().filter_map(|s| s.first_us).collect();
    Ok(InferenceReport {
        endpoint: endpoint.to_string(),
        model,
        clients: args.clients,
        stream: args.stream,
        seconds,
        requests: samples.len() as u64,
        failed,
        requests_per_second: samples.len() as f64 / seconds,
        latency_ms: Latency::from_micros(samples.iter().map(|s| s.total_us).collect()),
        first_chunk_ms: args.stream.then(|| Latency::from_micros(first)),
    })
}

async fn one(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    key: Option<&str>,
) -> Result<Sample, String> {
    let sent = Instant::now();
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let mut answer = request.send().await.map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("status {}", answer.status()));
    }
    let mut first_us = None;
    while let Some(_chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        first_us.get_or_insert(sent.elapsed().as_micros() as u64);
    }
    Ok(Sample {
        total_us: sent.elapsed().as_micros() as u64,
        first_us,
    })
}
