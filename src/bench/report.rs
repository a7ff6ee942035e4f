//! What the user sees: the progress line on stderr and the report as a table.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// One status line on stderr, redrawn in place; silent unless stderr is a terminal.
pub(super) struct ProgressLine {
    pub(super) tty: bool,
}

impl ProgressLine {
    pub(super) fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub(super) fn show(&self, line: &str) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    pub(super) fn clear(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

pub(super) fn print_table(report: &Value) {
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
    if report["scenario"] == "floor" {
        println!(
            "floor of a replicated write on this machine ({})",
            s(&report["dir"])
        );
        println!("fdatasync of a 4 KiB append ms  {}", lat("fdatasync_ms"));
        println!("loopback round trip ms          {}", lat("loopback_rtt_ms"));
        println!(
            "floor (fdatasync p50 + 2 round trips p50): {:.3} ms",
            report["floor_ms"].as_f64().unwrap_or(0.0)
        );
        return;
    }
    // An inference report: one endpoint, a latency, and for streams the first chunk.
    if report["stream"].is_boolean() {
        println!(
            "endpoint {}  model {}  clients {}  stream {}",
            s(&report["endpoint"]),
            s(&report["model"]),
            report["clients"],
            report["stream"]
        );
        println!(
            "requests {}  failed {}  {:.1} req/s",
            report["requests"],
            report["failed"],
            report["requests_per_second"].as_f64().unwrap_or(0.0)
        );
        println!("latency ms      {}", lat("latency_ms"));
        if report["first_chunk_ms"].is_object() {
            println!("first chunk ms  {}", lat("first_chunk_ms"));
        }
        return;
    }
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
