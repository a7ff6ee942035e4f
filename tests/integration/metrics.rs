//! `GET /metrics`, as Prometheus scrapes it: every node serves its figures in Prometheus' text
//! format, which a real parser reads whole, every family with its HELP and TYPE; requests are
//! counted by route template; no secret appears; and only an admin key reads it unless the
//! config makes it public.

use std::collections::BTreeMap;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use serde_json::json;

use crate::common::*;

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// Node `k`'s metrics, parsed strictly: a line the parser cannot read fails the test, and so
/// does a family without HELP text or TYPE.
fn scrape(client: &Client) -> Result<(Exposition, String), String> {
    let answer = client
        .try_send("GET", "/metrics", None)
        .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!("status {}: {}", answer.status, answer.text()));
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = answer.text();
    let parsed = parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not Prometheus' text format ({e:?}):\n{text}"));
    for (name, family) in &parsed.families {
        assert!(name.starts_with("helix_"), "{name} lacks the helix_ prefix");
        assert!(!family.help.trim().is_empty(), "{name} has no HELP");
        assert_ne!(
            family.family_type,
            PrometheusType::Unknown,
            "{name} has no TYPE"
        );
    }
    Ok((parsed, text))
}

/// Every sample of `family` as (labels, value); a histogram's value is its count.
fn samples(metrics: &Exposition, family: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let Some(f) = metrics.families.get(family) else {
        return Vec::new();
    };
    f.iter_samples()
        .map(|s| {
            let set = s.get_labelset().expect("labels");
            let labels = f
                .get_label_names()
                .iter()
                .map(|n| (n.clone(), set.get_label_value(n).unwrap_or("").to_string()))
                .collect();
            let value = match &s.value {
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                PrometheusValue::Summary(s) => s.count.unwrap_or(0) as f64,
            };
            (labels, value)
        })
        .collect()
}

/// The value of `family`'s sample whose labels include `labels`, summed if several match.
fn value(metrics: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(metrics, family)
        .into_iter()
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The families this release promises (docs/operations.md), present on every node once it
/// has run: those a node without GPUs or inference may not have yet are checked apart.
const ALWAYS: &[&str] = &[
    "helix_raft_term",
    "helix_raft_is_leader",
    "helix_raft_commit_index",
    "helix_raft_applied_index",
    "helix_raft_apply_lag_entries",
    "helix_raft_leader_changes_total",
    "helix_raft_proposals_total",
    "helix_raft_log_flush_duration_seconds",
    "helix_raft_snapshots_built_total",
    "helix_raft_snapshots_installed_total",
    "helix_api_requests_total",
    "helix_api_request_duration_seconds",
    "helix_runner_slots",
    "helix_runner_restarts_total",
    "helix_gateway_requests_in_flight",
    "helix_gateway_retries_total",
    "helix_gossip_members",
    "helix_gossip_dropped_datagrams_total",
];

#[test]
fn every_node_serves_its_figures_in_prometheus_format_without_a_secret() {
    // Node 1 has the GPU and runs the model; node 3 takes the inference request.
    let c = Cluster::builder()
        .node(NodeSpec::gpus("80GB"))
        .nodes(2)
        .start();
    let token = secret("metrics");
    c.set_system_token(2, &token);
    let model = "acme/metrics-chat";
    c.create_model(2, &model_json(model, "10GB", &[]));
    c.wait_running(1, model);
    let user = create_user(&c.client(1), json!({"name": "scraped"}));

    let got = c.client(2).get_ok(&format!("/api/v1/helix-models/{model}"));
    assert_eq!(got["id"], model, "{got}");
    let chat = json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 2,
    });
    let answer = c
        .caller(3, Some(&user.key), "scraped@node3")
        .post("/v1/chat/completions", &chat);
    // A plain user may not use an admin's model: the gateway counts it as rejected.
    assert_eq!(answer.status, 403, "{}", answer.text());
    let answer = c.client(3).post("/v1/chat/completions", &chat);
    assert_eq!(answer.status, 200, "{}", answer.text());

    for k in 1..=3 {
        c.client(k).get_ok("/api/v1/cluster/status");
    }

    // Leadership is a fact of the cluster: exactly one node says it leads (scraped again
    // should an election fall between two scrapes).
    let scraped = wait_for(WAIT, "one leader across the nodes' metrics", || {
        let all: Vec<(Exposition, String)> = (1..=3)
            .map(|k| scrape(&c.client(k)))
            .collect::<Result<_, _>>()?;
        let leaders: f64 = all
            .iter()
            .map(|(m, _)| value(m, "helix_raft_is_leader", &[]).unwrap_or(0.0))
            .sum();
        let alive = value(&all[0].0, "helix_gossip_members", &[("state", "alive")]);
        match (leaders, alive) {
            (1.0, Some(3.0)) => Ok(all),
            _ => Err(format!("{leaders} leaders, gossip alive {alive:?}")),
        }
    });

    for (k, (m, text)) in scraped.iter().enumerate() {
        let node = k + 1;
        for family in ALWAYS {
            assert!(
                m.families.contains_key(*family),
                "node{node} lacks {family}:\n{text}"
            );
        }
        let commit = value(m, "helix_raft_commit_index", &[]).unwrap();
        let applied = value(m, "helix_raft_applied_index", &[]).unwrap();
        assert!(
            commit > 0.0 && applied > 0.0,
            "node{node}: commit {commit}, applied {applied}"
        );
        assert!(value(m, "helix_raft_term", &[]).unwrap() >= 1.0);
        assert!(value(m, "helix_raft_leader_changes_total", &[]).unwrap() >= 1.0);
        assert!(value(m, "helix_raft_log_flush_duration_seconds", &[]).unwrap() >= 1.0);
        // Every route is labelled by its template, never by the path as sent.
        for (labels, _) in samples(m, "helix_api_requests_total") {
            let route = &labels["route"];
            assert!(
                route == "unmatched" || route.starts_with('/'),
                "node{node}: route {route:?}"
            );
            assert!(
                !route.contains("acme"),
                "node{node}: a raw path as route: {route}"
            );
        }
        // No secret in any label or value: the HF token, the admin key, a user's key.
        for secret in [token.as_str(), c.admin_key.as_str(), user.key.as_str()] {
            assert!(!text.contains(secret), "node{node}'s metrics hold a secret");
        }
        assert!(!text.contains(model), "node{node}'s metrics name a model");
    }

    let (node2, _) = &scraped[1];
    let route = [
        ("route", "/api/v1/helix-models/{*id}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert!(value(node2, "helix_api_requests_total", &route).unwrap_or(0.0) >= 1.0);
    assert!(value(node2, "helix_api_request_duration_seconds", &route[..2]).unwrap_or(0.0) >= 1.0);

    // The runner on node 1: one running slot, its launch timed, its GPU's memory.
    let (node1, text1) = &scraped[0];
    assert_eq!(
        value(node1, "helix_runner_slots", &[("state", "running")]),
        Some(1.0),
        "{text1}"
    );
    assert!(value(node1, "helix_runner_launch_to_ready_seconds", &[]).unwrap_or(0.0) >= 1.0);
    assert_eq!(
        value(node1, "helix_gpu_memory_total_bytes", &[("gpu", "0")]),
        Some(80e9),
        "{text1}"
    );

    // The gateway on node 3: one answered, one refused, and the first token timed.
    let (node3, text3) = &scraped[2];
    let outcome = |o| value(node3, "helix_gateway_requests_total", &[("outcome", o)]);
    assert_eq!(outcome("answered"), Some(1.0), "{text3}");
    assert_eq!(outcome("rejected"), Some(1.0), "{text3}");
    assert_eq!(
        value(node3, "helix_gateway_time_to_first_token_seconds", &[]),
        Some(1.0),
        "{text3}"
    );
    assert_eq!(
        value(node3, "helix_gateway_requests_in_flight", &[]),
        Some(0.0)
    );
    let inference = [
        ("route", "/v1/chat/completions"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(
        value(node3, "helix_api_requests_total", &inference),
        Some(1.0)
    );
    c.assert_no_leaks(&[&token]);
}

#[test]
fn metrics_need_an_admin_key_unless_public() {
    let c = Cluster::new(1);
    let no_key = c.caller(1, None, "anonymous").get("/metrics");
    assert_eq!(no_key.status, 401, "{}", no_key.text());
    assert!(
        no_key.error_message().contains("API key"),
        "{}",
        no_key.text()
    );
    let user = create_user(&c.client(1), json!({"name": "not-an-admin"}));
    let plain = c.caller(1, Some(&user.key), "user").get("/metrics");
    assert_eq!(plain.status, 403, "{}", plain.text());
    plain.error_message();
    let unknown = c
        .caller(1, Some("hx_not_a_key"), "stranger")
        .get("/metrics");
    assert_eq!(unknown.status, 401, "{}", unknown.text());
    scrape(&c.client(1)).expect("the admin scrapes");

    let open = Cluster::builder()
        .config("[metrics]\npublic = true")
        .nodes(1)
        .start();
    let (metrics, _) = scrape(&open.caller(1, None, "prometheus")).expect("public metrics");
    assert!(metrics.families.contains_key("helix_raft_is_leader"));
}
