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
}

impl Stalls {
    /// Reads every node's log.
    pub fn logged(c: &Cluster) -> Stalls {
        let mut stalls = Stalls::default();
        for k in 1..=c.nodes.len() {
            for line in c.log(k).lines() {
                let kind = if line.contains(CORE_BUSY) {
                    &mut stalls.core_busy
                } else if line.contains(SLOW_FLUSH) {
                    &mut stalls.slow_flush
                } else {
                    continue;
                };
                let took = took_ms(line).unwrap_or(0);
                kind.count += 1;
                if took >= kind.longest_ms {
                    kind.longest_ms = took;
                    kind.longest_line = format!("node{k}: {line}");
                }
            }
        }
        stalls
    }
}

/// The `took_ms=N` field of a log line.
fn took_ms(line: &str) -> Option<u64> {
    let rest = &line[line.find("took_ms=")? + "took_ms=".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
