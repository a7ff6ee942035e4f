//! What the nodes logged about stalls during a run: a Raft core that answered no probe for
//! longer than the election lease, and flushes the disk took long over. Issue 5's bench saw a
//! leader whose core answered nothing for about 1.3 s with no slow flush logged; the suite
//! counts both kinds so a run shows whether such a stall happened and what went with it.

use crate::common::Cluster;

const CORE_BUSY: &str = "the Raft core was busy for longer than the election lease";
const SLOW_FLUSH: &str = "slow disk: a flush of the Raft log took long";

/// Stalls of one kind: how many, and the longest (from the log line's `took_ms`).
#[derive(Debug, Clone, Default)]
pub struct StallKind {
    pub count: usize,
    pub longest_ms: u64,
    /// The line of the longest, for the report.
    pub longest_line: String,
}

#[derive(Debug, Clone, Default)]
pub struct Stalls {
    pub core_busy: StallKind,
    pub slow_flush: StallKind,
    /// Core stalls during which the same node logged a slow flush: the flush explains them.
    pub core_busy_with_slow_flush: usize,
}

/// A stall as one log line tells it: when it ended (seconds into the day) and how long.
struct Logged {
    end_s: f64,
    took_ms: u64,
}

impl Stalls {
    /// Reads every node's log.
    pub fn logged(c: &Cluster) -> Stalls {
        let mut stalls = Stalls::default();
        for k in 1..=c.nodes.len() {
            let (mut cores, mut flushes) = (Vec::new(), Vec::new());
            for line in c.log(k).lines() {
                let (kind, seen) = if line.contains(CORE_BUSY) {
                    (&mut stalls.core_busy, &mut cores)
                } else if line.contains(SLOW_FLUSH) {
                    (&mut stalls.slow_flush, &mut flushes)
                } else {
                    continue;
                };
                let took = took_ms(line).unwrap_or(0);
                kind.count += 1;
                if took >= kind.longest_ms {
                    kind.longest_ms = took;
                    kind.longest_line = format!("node{k}: {line}");
                }
                if let Some(end_s) = seconds_of_day(line) {
                    seen.push(Logged {
                        end_s,
                        took_ms: took,
                    });
                }
            }
            stalls.core_busy_with_slow_flush += cores
                .iter()
                .filter(|core| flushes.iter().any(|flush| overlap(core, flush)))
                .count();
        }
        stalls
    }
}

/// The two stalls shared some time (give or take the 50 ms a probe may lag).
fn overlap(a: &Logged, b: &Logged) -> bool {
    let start = |s: &Logged| s.end_s - s.took_ms as f64 / 1000.0;
    start(a) <= b.end_s + 0.05 && start(b) <= a.end_s + 0.05
}

/// The time of day of a log line's RFC 3339 stamp (`...T11:47:40.858724Z`), in seconds.
fn seconds_of_day(line: &str) -> Option<f64> {
    let at = line.find('T')? + 1;
    let stamp = line.get(at..)?.split('Z').next()?;
    let mut parts = stamp.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The `took_ms=N` field of a log line.
fn took_ms(line: &str) -> Option<u64> {
    let rest = &line[line.find("took_ms=")? + "took_ms=".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_core_stall_and_a_flush_logged_together_overlap_and_apart_do_not() {
    let core = "[node 5] 2026-12-01T11:47:40.858724Z  WARN helix::cluster::election: the Raft \
                core was busy for longer than the election lease took_ms=1904";
    let flush = "[node 5] 2026-12-01T11:47:40.858100Z  WARN helix::raft::store: slow disk: a \
                 flush of the Raft log took long took_ms=1904 waiting=1";
    let later = "[node 5] 2026-12-01T11:47:45.000000Z  WARN helix::raft::store: slow disk: a \
                 flush of the Raft log took long took_ms=120 waiting=1";
    let logged = |line: &str| Logged {
        end_s: seconds_of_day(line).unwrap(),
        took_ms: took_ms(line).unwrap(),
    };
    assert!((seconds_of_day(core).unwrap() - 42460.858724).abs() < 1e-6);
    assert!(overlap(&logged(core), &logged(flush)));
    assert!(!overlap(&logged(core), &logged(later)));
}
