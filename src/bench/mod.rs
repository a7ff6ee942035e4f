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
//!
//! - `inference`: chat requests to an OpenAI-compatible endpoint (`--model`, `--stream`,
//!   `--max-tokens`): a helix gateway with its key, or a vLLM directly without one.
//! - `floor`: no cluster; this machine's fdatasync of a 4 KiB append (in `--dir`) and
//!   loopback round trip, and the floor they make for a replicated write.
//!
//! Files: `args` (the command line), `write`, `propagation`, `inference` and `floor` (one per
//! scenario, each with
//! its report), `target` (what a write is on helix and on etcd), `http` (the shared client
//! and how failures are counted), `stats` (latency percentiles, gaps, error tally, times),
//! `report` (progress line, table).

mod args;
mod floor;
mod http;
mod inference;
mod propagation;
mod report;
mod stats;
mod target;
mod write;

pub use args::{BenchArgs, Scenario, Target, WriteMode};

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
    let needs_key = matches!(args.scenario, Scenario::Write | Scenario::Propagation);
    if args.target == Target::Helix && api_key.is_none() && needs_key {
        return Err("helix needs an admin API key: --api-key or HELIX_API_KEY".into());
    }
    let report = match args.scenario {
        Scenario::Write => {
            serde_json::to_value(write::write_bench(&args, endpoints, api_key).await?)
        }
        Scenario::Propagation => {
            if args.target != Target::Helix {
                return Err("--scenario propagation is for --target helix".into());
            }
            let key = api_key.unwrap_or_default();
            serde_json::to_value(propagation::propagation_bench(&args, endpoints, key).await?)
        }
        // A vLLM called directly takes no key: the comparison runs without one.
        Scenario::Inference => {
            serde_json::to_value(inference::inference_bench(&args, &endpoints[0], api_key).await?)
        }
        // Blocking IO on purpose: what is timed is the system call, not the runtime.
        Scenario::Floor => {
            let report = tokio::task::spawn_blocking(move || floor::floor_bench(&args))
                .await
                .map_err(|e| e.to_string())??;
            serde_json::to_value(report)
        }
    }
    .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        report::print_table(&report);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_and_lose_trailing_slashes() {
        assert_eq!(
            parse_endpoints("127.0.0.1:1, http://127.0.0.2:2/,").unwrap(),
            vec!["http://127.0.0.1:1", "http://127.0.0.2:2"]
        );
        assert!(parse_endpoints(" , ").is_err());
    }
}
