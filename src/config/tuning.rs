//! The runner's, the API server's and the gateway's timing and limits, from the config
//! file's sections, each value checked (a bad one is refused naming its key).

use std::time::Duration;

use super::file::{FileGateway, FileRunner, FileServer};
use super::{
    invalid, ConfigError, GatewayTuning, RaftTuning, RunnerTuning, ServerTuning, MAX_STOP_GRACE_MS,
};

/// How often the runner looks whether to fence. Before it fences it asks the leader afresh,
/// for at most a leader lease (a node that was merely paused is in touch): the fence acts at
/// most this tick plus the lease after `fence_after`.
pub const FENCE_TICK: Duration = Duration::from_millis(250);

/// The runner's timing. The fence comes first, so the model never runs twice: a node cut off
/// from the quorum may hear from its old leader for up to the stall tolerance (a leader steps
/// down only then), fences its slots `fence_after` later (and at most [`FENCE_TICK`] plus a
/// leader lease more), and their processes are gone `stop_grace` after that; only then may
/// the leader call it lost. The defaults follow the Raft timing: the fence after twice the
/// stall tolerance, a node lost after 10 s or as much as the fence needs, if more.
pub(super) fn runner_tuning(u: FileRunner, raft: &RaftTuning) -> Result<RunnerTuning, ConfigError> {
    let tolerance = raft.reachable_within();
    let stop_grace = Duration::from_millis(u.stop_grace_ms.unwrap_or(5000));
    if stop_grace > Duration::from_millis(MAX_STOP_GRACE_MS) {
        return Err(invalid(
            "runner.stop_grace_ms",
            format!(
                "must be at most {MAX_STOP_GRACE_MS}: a node stops within 10 s of SIGTERM, \
                 its vLLM processes first"
            ),
        ));
    }
    let fence_after = u
        .fence_after_ms
        .map_or(tolerance * 2, Duration::from_millis);
    if fence_after < tolerance {
        return Err(invalid(
            "runner.fence_after_ms",
            format!(
                "must be at least the stall tolerance, 4 × raft.election_timeout_max_ms = {} ms: \
                 a node out of touch for less may only be waiting for an election or a slow disk",
                tolerance.as_millis()
            ),
        ));
    }
    let slack = FENCE_TICK + raft.leader_lease();
    let fenced_within = fence_after + tolerance + slack + stop_grace;
    let node_lost_after = u.node_lost_after_ms.map_or(
        fenced_within.max(Duration::from_secs(10)),
        Duration::from_millis,
    );
    if node_lost_after < fenced_within {
        return Err(invalid(
            "runner.node_lost_after_ms",
            format!(
                "must be at least runner.fence_after_ms ({}) + the stall tolerance (4 × \
                 raft.election_timeout_max_ms = {}) + the fence's slack (250 + \
                 raft.election_timeout_min_ms = {}) + \
                 runner.stop_grace_ms ({}) = {} ms: a node cut off must have stopped its slots \
                 (the fence) before the leader starts them elsewhere; lower \
                 runner.fence_after_ms or raise runner.node_lost_after_ms",
                fence_after.as_millis(),
                tolerance.as_millis(),
                slack.as_millis(),
                stop_grace.as_millis(),
                fenced_within.as_millis()
            ),
        ));
    }
    Ok(RunnerTuning {
        node_lost_after,
        fence_after,
        port_range: parse_port_range(u.port_range.as_deref().unwrap_or("20000-20999"))?,
        stop_grace,
    })
}

pub(super) fn server_tuning(s: FileServer) -> Result<ServerTuning, ConfigError> {
    if s.max_connections == Some(0) {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    let millis = |field: &'static str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(invalid(field, "must be at least 1 (milliseconds)")),
        value => Ok(Duration::from_millis(value.unwrap_or(default))),
    };
    Ok(ServerTuning {
        max_connections: s.max_connections,
        header_read_timeout: millis(
            "server.header_read_timeout_ms",
            s.header_read_timeout_ms,
            10_000,
        )?,
        idle_timeout: millis("server.idle_timeout_ms", s.idle_timeout_ms, 120_000)?,
        key_use_report: millis("server.key_use_report_ms", s.key_use_report_ms, 60_000)?,
    })
}

pub(super) fn gateway_tuning(g: FileGateway) -> Result<GatewayTuning, ConfigError> {
    let positive = |field: &'static str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(invalid(field, "must be at least 1")),
        value => Ok(value.unwrap_or(default)),
    };
    let max_body_bytes = g.max_body_bytes.unwrap_or(32 << 20);
    if max_body_bytes < 1024 {
        return Err(invalid("gateway.max_body_bytes", "must be at least 1024"));
    }
    Ok(GatewayTuning {
        connect_timeout: Duration::from_millis(positive(
            "gateway.connect_timeout_ms",
            g.connect_timeout_ms,
            10_000,
        )?),
        request_timeout: Duration::from_secs(positive(
            "gateway.request_timeout_s",
            g.request_timeout_s,
            1800,
        )?),
        max_body_bytes,
    })
}

fn parse_port_range(s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || invalid("runner.port_range", format!("{s:?} is not LOW-HIGH"));
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}
