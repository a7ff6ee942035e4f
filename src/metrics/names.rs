//! Every metric helix exports: its name, kind, labels and help text, in one table, so the
//! names follow Prometheus' rules (checked by [`lint`]) and every family has its HELP.

/// What a family is, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    /// Label names, fixed per family. None carries a secret or a model name.
    pub labels: &'static [&'static str],
    /// For a family with one label: its values, each shown from the start (at zero).
    pub values: &'static [&'static str],
    pub help: &'static str,
}

// Raft.
pub const RAFT_TERM: &str = "helix_raft_term";
pub const RAFT_IS_LEADER: &str = "helix_raft_is_leader";
pub const RAFT_COMMIT_INDEX: &str = "helix_raft_commit_index";
pub const RAFT_APPLIED_INDEX: &str = "helix_raft_applied_index";
pub const RAFT_LAST_LOG_INDEX: &str = "helix_raft_last_log_index";
pub const RAFT_APPLY_LAG: &str = "helix_raft_apply_lag_entries";
pub const RAFT_LEADER_CHANGES: &str = "helix_raft_leader_changes_total";
pub const RAFT_PROPOSALS: &str = "helix_raft_proposals_total";
pub const RAFT_LOG_FLUSH: &str = "helix_raft_log_flush_duration_seconds";
pub const RAFT_SNAPSHOTS_BUILT: &str = "helix_raft_snapshots_built_total";
pub const RAFT_SNAPSHOTS_INSTALLED: &str = "helix_raft_snapshots_installed_total";
// The admin API and the gateway's routes, by route template.
pub const API_REQUESTS: &str = "helix_api_requests_total";
pub const API_REQUEST_DURATION: &str = "helix_api_request_duration_seconds";
// The runner.
pub const RUNNER_SLOTS: &str = "helix_runner_slots";
pub const RUNNER_RESTARTS: &str = "helix_runner_restarts_total";
pub const RUNNER_LAUNCH_TO_READY: &str = "helix_runner_launch_to_ready_seconds";
pub const GPU_MEMORY_TOTAL: &str = "helix_gpu_memory_total_bytes";
pub const GPU_MEMORY_USED: &str = "helix_gpu_memory_used_bytes";
pub const SCHEDULER_PLANS: &str = "helix_scheduler_plans_total";
pub const SCHEDULER_PLAN_DURATION: &str = "helix_scheduler_plan_duration_seconds";
// The OpenAI-compatible gateway.
pub const GATEWAY_REQUESTS: &str = "helix_gateway_requests_total";
pub const GATEWAY_TTFT: &str = "helix_gateway_time_to_first_token_seconds";
pub const GATEWAY_IN_FLIGHT: &str = "helix_gateway_requests_in_flight";
pub const GATEWAY_UPSTREAM_ERRORS: &str = "helix_gateway_upstream_errors_total";
pub const GATEWAY_RETRIES: &str = "helix_gateway_retries_total";
// Gossip.
pub const GOSSIP_MEMBERS: &str = "helix_gossip_members";
pub const GOSSIP_DROPPED: &str = "helix_gossip_dropped_datagrams_total";

use Kind::{Counter, Gauge, Histogram};

pub const FAMILIES: &[Family] = &[
    Family {
        name: RAFT_TERM,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "The Raft term this node is in.",
    },
    Family {
        name: RAFT_IS_LEADER,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "1 while this node is the Raft leader, else 0.",
    },
    Family {
        name: RAFT_COMMIT_INDEX,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "The highest log index this node knows committed.",
    },
    Family {
        name: RAFT_APPLIED_INDEX,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "The highest log index this node has applied to its state.",
    },
    Family {
        name: RAFT_LAST_LOG_INDEX,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "The last index in this node's Raft log.",
    },
    Family {
        name: RAFT_APPLY_LAG,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "Entries committed but not applied yet on this node.",
    },
    Family {
        name: RAFT_LEADER_CHANGES,
        kind: Counter,
        labels: &[],
        values: &[],
        help:
            "Leaders this node has seen elected (a new term or a new leader), the first included.",
    },
    Family {
        name: RAFT_PROPOSALS,
        kind: Counter,
        labels: &["outcome"],
        values: &["committed", "failed"],
        help: "Proposals this node made as leader, by outcome (committed, failed).",
    },
    Family {
        name: RAFT_LOG_FLUSH,
        kind: Histogram,
        labels: &[],
        values: &[],
        help: "How long one group flush of the Raft log to disk took (one write and fdatasync).",
    },
    Family {
        name: RAFT_SNAPSHOTS_BUILT,
        kind: Counter,
        labels: &[],
        values: &[],
        help: "Snapshots of the state this node built.",
    },
    Family {
        name: RAFT_SNAPSHOTS_INSTALLED,
        kind: Counter,
        labels: &[],
        values: &[],
        help: "Snapshots this node installed from the leader.",
    },
    Family {
        name: API_REQUESTS,
        kind: Counter,
        labels: &["route", "method", "status"],
        values: &[],
        help: "HTTP requests answered on the API port, by route template, method and status.",
    },
    Family {
        name: API_REQUEST_DURATION,
        kind: Histogram,
        labels: &["route", "method"],
        values: &[],
        help: "Time to the response head of HTTP requests on the API port, by route template.",
    },
    Family {
        name: RUNNER_SLOTS,
        kind: Gauge,
        labels: &["state"],
        values: &["pending", "starting", "running", "failed", "stopped"],
        help: "Slots placed on this node, by state.",
    },
    Family {
        name: RUNNER_RESTARTS,
        kind: Counter,
        labels: &[],
        values: &[],
        help: "vLLM processes on this node that exited and were restarted.",
    },
    Family {
        name: RUNNER_LAUNCH_TO_READY,
        kind: Histogram,
        labels: &[],
        values: &[],
        help: "Time from launching a vLLM process to its health check passing.",
    },
    Family {
        name: SCHEDULER_PLANS,
        kind: Counter,
        labels: &[],
        values: &[],
        help: "Placement plans this node made as leader (only when models, nodes, slots or the reachable members changed).",
    },
    Family {
        name: SCHEDULER_PLAN_DURATION,
        kind: Histogram,
        labels: &[],
        values: &[],
        help: "Time one placement plan took, reading the applied state.",
    },
    Family {
        name: GPU_MEMORY_TOTAL,
        kind: Gauge,
        labels: &["gpu"],
        values: &[],
        help: "Memory of each GPU of this node (NVML, or as declared).",
    },
    Family {
        name: GPU_MEMORY_USED,
        kind: Gauge,
        labels: &["gpu"],
        values: &[],
        help: "Memory in use on each GPU of this node, as NVML reports it.",
    },
    Family {
        name: GATEWAY_REQUESTS,
        kind: Counter,
        labels: &["outcome"],
        values: &["answered", "rejected", "unavailable", "error"],
        help: "Inference requests to this gateway, by outcome (answered, rejected, unavailable, error).",
    },
    Family {
        name: GATEWAY_TTFT,
        kind: Histogram,
        labels: &[],
        values: &[],
        help: "Time from an inference request's arrival to the first byte of its answer.",
    },
    Family {
        name: GATEWAY_IN_FLIGHT,
        kind: Gauge,
        labels: &[],
        values: &[],
        help: "Inference requests this gateway has in flight to replicas.",
    },
    Family {
        name: GATEWAY_UPSTREAM_ERRORS,
        kind: Counter,
        labels: &["kind"],
        values: &["unreachable", "status", "stream"],
        help: "Replicas that failed a request, by kind (unreachable, status, stream).",
    },
    Family {
        name: GATEWAY_RETRIES,
        kind: Counter,
        labels: &[],
        values: &[],
        help: "Inference requests sent to another replica after one failed.",
    },
    Family {
        name: GOSSIP_MEMBERS,
        kind: Gauge,
        labels: &["state"],
        values: &["alive", "down"],
        help: "Nodes gossip sees, by state (alive, down); alive counts this node.",
    },
    Family {
        name: GOSSIP_DROPPED,
        kind: Counter,
        labels: &["reason"],
        values: &["unauthenticated", "stale", "replayed", "malformed"],
        help: "Gossip datagrams dropped, by reason (unauthenticated, stale, replayed, malformed).",
    },
];

/// Why `family` breaks Prometheus' naming rules, if it does: a `helix_` prefix, snake case,
/// counters and only counters ending in `_total`, histograms named in a base unit, no
/// scaled units, and help text.
pub fn lint(family: &Family) -> Result<(), String> {
    let name = family.name;
    let fail = |why: &str| Err(format!("{name}: {why}"));
    if !name.starts_with("helix_") {
        return fail("must start with helix_");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.contains("__")
        || name.ends_with('_')
    {
        return fail("must be snake case ([a-z0-9_], no empty words)");
    }
    let words: Vec<&str> = name.split('_').collect();
    for scaled in [
        "ms",
        "milliseconds",
        "us",
        "ns",
        "minutes",
        "hours",
        "kb",
        "mb",
        "gb",
    ] {
        if words.contains(&scaled) {
            return fail("must use base units (seconds, bytes)");
        }
    }
    let counter_like = name.ends_with("_total");
    match family.kind {
        Kind::Counter if !counter_like => return fail("a counter must end in _total"),
        Kind::Gauge | Kind::Histogram if counter_like => {
            return fail("only counters end in _total")
        }
        Kind::Histogram if !(name.ends_with("_seconds") || name.ends_with("_bytes")) => {
            return fail("a histogram must name its unit (_seconds, _bytes)")
        }
        _ => {}
    }
    if family.help.trim().is_empty() {
        return fail("needs help text");
    }
    if !family.values.is_empty() && family.labels.len() != 1 {
        return fail("label values are listed for families with one label only");
    }
    for label in family.labels {
        if label.is_empty()
            || label.starts_with("__")
            || !label.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            return fail("labels must be snake case");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_follows_the_naming_rules() {
        for family in FAMILIES {
            lint(family).unwrap();
        }
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "a name is listed twice");
    }

    #[test]
    fn the_lint_refuses_what_prometheus_advises_against() {
        let family = |name, kind| Family {
            name,
            kind,
            labels: &[],
            values: &[],
            help: "Something.",
        };
        let refused = [
            family("raft_term", Kind::Gauge),
            family("helix_Raft_term", Kind::Gauge),
            family("helix_requests", Kind::Counter),
            family("helix_requests_total", Kind::Gauge),
            family("helix_flush_duration", Kind::Histogram),
            family("helix_flush_duration_ms", Kind::Histogram),
            family("helix_gpu_memory_mb", Kind::Gauge),
            family("helix__x_total", Kind::Counter),
        ];
        for f in refused {
            assert!(lint(&f).is_err(), "{} passed", f.name);
        }
        let no_help = Family {
            help: " ",
            ..family("helix_x_total", Kind::Counter)
        };
        assert!(lint(&no_help).is_err());
        let bad_label = Family {
            labels: &["Route"],
            ..family("helix_x_total", Kind::Counter)
        };
        assert!(lint(&bad_label).is_err());
        assert!(lint(&family("helix_flush_duration_seconds", Kind::Histogram)).is_ok());
    }

    /// The Grafana dashboard in docs/ queries exactly the families exported, all of them.
    #[test]
    fn the_dashboard_uses_the_exported_names() {
        let dashboard = include_str!("../../docs/grafana-dashboard.json");
        let mut used = std::collections::BTreeSet::new();
        for (at, _) in dashboard.match_indices("helix_") {
            let name: String = dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let family = FAMILIES.iter().find(|f| {
                f.name == name
                    || (f.kind == Kind::Histogram
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suffix| name == format!("{}{suffix}", f.name)))
            });
            let family = family.unwrap_or_else(|| panic!("the dashboard queries {name}"));
            used.insert(family.name);
        }
        for family in FAMILIES {
            assert!(used.contains(family.name), "no panel shows {}", family.name);
        }
    }
}
