//! A short run of `helix bench` against a one-node cluster, so the tool keeps working.
//! Not a performance test: nothing here depends on how fast the machine is.

use std::process::Command;

use serde_json::Value;

use crate::common::net::{alloc_ip, free_port};
use crate::common::{helix_bin, Cluster, MODELS};

/// Runs `helix bench ARGS --output json` against node 1 and returns the parsed report.
fn bench(cluster: &Cluster, args: &[&str]) -> Value {
    let url = format!("http://{}", cluster.node(1).api_addr);
    let output = Command::new(helix_bin())
        .arg("bench")
        .args([
            "--endpoints",
            &url,
            "--output",
            "json",
            "--max-seconds",
            "60",
        ])
        .args(args)
        .env("HELIX_API_KEY", &cluster.admin_key)
        .env_remove("HELIX_URL")
        .output()
        .expect("run helix bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "helix bench {args:?} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_latency(report: &Value, field: &str) {
    let l = &report[field];
    for key in ["samples", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(l[key].is_number(), "{field}.{key} missing in {report}");
    }
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(
        p("min") <= p("p50") && p("p50") <= p("p99") && p("p99") <= p("p999"),
        "{field} percentiles out of order: {l}"
    );
    assert!(p("p999") <= p("max"), "{field}: {l}");
}

#[test]
fn bench_writes_through_raft_and_reports_json() {
    let cluster = Cluster::new(1);

    // Distinct models, two clients, a fixed count.
    let report = bench(
        &cluster,
        &["--target", "helix", "--clients", "2", "--count", "50"],
    );
    assert_eq!(report["scenario"], "write");
    assert_eq!(report["target"], "helix");
    assert_eq!(report["clients"], 2);
    assert_eq!(report["requests"], 50, "{report}");
    let ok = report["ok"].as_u64().unwrap();
    let errors = report["errors"].as_u64().unwrap();
    assert_eq!(ok + errors, 50, "{report}");
    assert!(errors <= 2, "too many errors: {report}");
    assert!(report["throughput"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["elapsed_s"].is_number() && report["gaps"].is_array());
    assert!(report["error_kinds"].is_object(), "{report}");
    assert_latency(&report, "latency_ms");
    assert_eq!(report["latency_ms"]["samples"].as_u64(), Some(ok));

    // The models are really there, with the 100-byte description.
    let client = cluster.client(1);
    let models = client.get_ok(&format!("{MODELS}?stale=true"));
    let bench_models: Vec<&Value> = models
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"].as_str().unwrap_or("").starts_with("bench-"))
        .collect();
    assert_eq!(bench_models.len() as u64, ok, "{models}");
    assert_eq!(bench_models[0]["description"].as_str().unwrap().len(), 100);

    // Updates of a small key set, bounded by time.
    let report = bench(
        &cluster,
        &[
            "--mode",
            "update",
            "--keys",
            "3",
            "--clients",
            "3",
            "--duration",
            "1",
            "--prefix",
            "upd",
        ],
    );
    assert_eq!(report["mode"], "update");
    assert!(report["ok"].as_u64().unwrap() > 0, "{report}");
    assert!(report["errors"].as_u64().unwrap() <= 2, "{report}");
    assert!(report["elapsed_s"].as_f64().unwrap() < 30.0, "{report}");
    assert_latency(&report, "latency_ms");
    client.get_ok(&format!("{MODELS}/upd/k2"));

    // Settings propagation to every endpoint (here: the one node).
    let report = bench(&cluster, &["--scenario", "propagation", "--count", "4"]);
    assert_eq!(report["scenario"], "propagation");
    assert_eq!(report["changes"], 4, "{report}");
    assert_eq!(report["ok"], 4, "{report}");
    assert_latency(&report, "put_latency_ms");
    assert_latency(&report, "propagation_ms");
}

#[test]
fn bench_counts_errors_instead_of_failing() {
    // Nothing listens there: every request fails, the run still ends and reports them.
    let ip = alloc_ip();
    let port = free_port(ip);
    let output = Command::new(helix_bin())
        .args(["bench", "--target", "etcd", "--endpoints"])
        .arg(format!("http://{ip}:{port}"))
        .args([
            "--count",
            "5",
            "--output",
            "json",
            "--error-backoff-ms",
            "1",
        ])
        .env_remove("HELIX_URL")
        .output()
        .expect("run helix bench");
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["target"], "etcd");
    assert_eq!(report["requests"], 5, "{report}");
    assert_eq!(report["errors"], 5, "{report}");
    assert_eq!(report["ok"], 0, "{report}");
    assert_eq!(report["error_kinds"]["connect"], 5, "{report}");
    assert_eq!(report["latency_ms"]["samples"], 0, "{report}");
}

/// `--scenario floor` needs no cluster: it flushes in the directory given and pings itself
/// on loopback, and its floor is the fdatasync p50 plus two round trips' p50.
#[test]
fn bench_measures_the_floor_of_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(helix_bin())
        .args([
            "bench",
            "--scenario",
            "floor",
            "--count",
            "20",
            "--output",
            "json",
        ])
        .arg("--dir")
        .arg(dir.path())
        .env_remove("HELIX_API_KEY")
        .output()
        .expect("run helix bench");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_latency(&report, "fdatasync_ms");
    assert_latency(&report, "loopback_rtt_ms");
    assert_eq!(report["fdatasync_ms"]["samples"], 20, "{report}");
    let p50 = |field: &str| report[field]["p50"].as_f64().unwrap();
    let floor = report["floor_ms"].as_f64().unwrap();
    let expected = p50("fdatasync_ms") + 2.0 * p50("loopback_rtt_ms");
    assert!((floor - expected).abs() < 1e-9, "{report}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the probe file is gone"
    );
}
