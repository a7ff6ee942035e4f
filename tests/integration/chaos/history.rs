//! The record of a chaos run: every operation on the keys (helix models used as registers)
//! with its invoke and complete times on one monotonic clock, since the workload's start, and
//! its outcome: done, certainly not done, or maybe done. Counts, write unavailability and a
//! JSON-lines file for the report.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// What every key holds once created, before any write.
pub const INITIAL_VALUE: &str = "init";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Sets the key's description to `value`, unique to this write.
    Write {
        value: String,
    },
    Read {
        stale: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done. A read carries the description it saw, `None` when the model was not found;
    /// a write carries `None`.
    Ok(Option<String>),
    /// Certainly without effect (refused with a 4xx, or the connection never opened); why.
    Fail(String),
    /// A write that may or may not have taken effect (timeout, reset, 5xx); why.
    Unknown(String),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that ran it.
    pub process: usize,
    /// Index into the workload's endpoints: the node it was sent to.
    pub node: usize,
    pub key: String,
    pub kind: OpKind,
    /// Since the workload's start, on the monotonic clock.
    pub invoke: Duration,
    pub complete: Duration,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_write(&self) -> bool {
        matches!(self.kind, OpKind::Write { .. })
    }

    /// A linearizable read, the kind the checker checks.
    pub fn is_linearizable_read(&self) -> bool {
        self.kind == OpKind::Read { stale: false }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// The value a write wrote.
    pub fn written(&self) -> Option<&str> {
        match &self.kind {
            OpKind::Write { value } => Some(value),
            OpKind::Read { .. } => None,
        }
    }

    /// What a successful read saw: `Some(None)` when the model was not found.
    pub fn seen(&self) -> Option<Option<&str>> {
        match (&self.kind, &self.outcome) {
            (OpKind::Read { .. }, Outcome::Ok(seen)) => Some(seen.as_deref()),
            _ => None,
        }
    }

    /// One line of the JSON-lines record.
    pub fn to_json(&self) -> Value {
        let mut line = json!({
            "process": self.process,
            "node": self.node,
            "key": self.key,
            "invoke_s": self.invoke.as_secs_f64(),
            "complete_s": self.complete.as_secs_f64(),
        });
        match &self.kind {
            OpKind::Write { value } => {
                line["kind"] = json!("write");
                line["value"] = json!(value);
            }
            OpKind::Read { stale } => {
                line["kind"] = json!(if *stale { "stale_read" } else { "read" })
            }
        }
        match &self.outcome {
            Outcome::Ok(seen) => {
                line["outcome"] = json!("ok");
                if !self.is_write() {
                    line["seen"] = json!(seen);
                }
            }
            Outcome::Fail(why) => {
                line["outcome"] = json!("fail");
                line["reason"] = json!(why);
            }
            Outcome::Unknown(why) => {
                line["outcome"] = json!("unknown");
                line["reason"] = json!(why);
            }
        }
        line
    }
}

/// `p3 write "p3-w17" on chaos-1 via node 2, 1.234-1.240 s: ok`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            OpKind::Write { value } => format!("write {value:?}"),
            OpKind::Read { stale: false } => "read".into(),
            OpKind::Read { stale: true } => "stale read".into(),
        };
        write!(
            f,
            "p{} {what} on {} via node {}, {:.3}-{:.3} s: ",
            self.process,
            self.key,
            self.node,
            self.invoke.as_secs_f64(),
            self.complete.as_secs_f64()
        )?;
        match &self.outcome {
            Outcome::Ok(_) if self.is_write() => f.write_str("ok"),
            Outcome::Ok(Some(seen)) => write!(f, "saw {seen:?}"),
            Outcome::Ok(None) => f.write_str("not found"),
            Outcome::Fail(why) => write!(f, "failed ({why})"),
            Outcome::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Successes, certain failures and unknown outcomes of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok(_) => self.ok += 1,
            Outcome::Fail(_) => self.fail += 1,
            Outcome::Unknown(_) => self.unknown += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} unknown",
            self.ok, self.fail, self.unknown
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub writes: Tally,
    pub reads: Tally,
    pub stale_reads: Tally,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes: {}; reads: {}; stale reads: {}",
            self.writes, self.reads, self.stale_reads
        )
    }
}

/// Every operation of a run, in invoke order.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(mut ops: Vec<Op>) -> History {
        ops.sort_by_key(|op| (op.invoke, op.complete, op.process));
        History { ops }
    }

    pub fn keys(&self) -> BTreeSet<&str> {
        self.ops.iter().map(|op| op.key.as_str()).collect()
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for op in &self.ops {
            let tally = match op.kind {
                OpKind::Write { .. } => &mut counts.writes,
                OpKind::Read { stale: false } => &mut counts.reads,
                OpKind::Read { stale: true } => &mut counts.stale_reads,
            };
            tally.add(&op.outcome);
        }
        counts
    }

    /// The longest stretch of `from..to` in which no write was acknowledged (by the
    /// completion times of successful writes): the write unavailability in that window.
    pub fn longest_write_gap(&self, from: Duration, to: Duration) -> Duration {
        let mut acks: Vec<Duration> = self
            .ops
            .iter()
            .filter(|op| op.is_write() && op.is_ok())
            .map(|op| op.complete)
            .filter(|t| (from..=to).contains(t))
            .collect();
        acks.sort();
        let mut longest = Duration::ZERO;
        let mut last = from;
        for t in acks.into_iter().chain([to]) {
            longest = longest.max(t.saturating_sub(last));
            last = t;
        }
        longest
    }

    /// Writes the history as JSON lines, one operation a line, in invoke order.
    pub fn write_jsonl(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::new(fs::File::create(path)?);
        for op in &self.ops {
            writeln!(out, "{}", op.to_json())?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoke_ms: u64, complete_ms: u64, kind: OpKind, outcome: Outcome) -> Op {
        Op {
            process: 0,
            node: 0,
            key: "k".into(),
            kind,
            invoke: Duration::from_millis(invoke_ms),
            complete: Duration::from_millis(complete_ms),
            outcome,
        }
    }

    fn write(invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        let value = format!("w{invoke_ms}");
        op(invoke_ms, complete_ms, OpKind::Write { value }, outcome)
    }

    #[test]
    fn the_longest_write_gap_counts_from_the_window_edges_between_acknowledgements() {
        let history = History::new(vec![
            write(0, 100, Outcome::Ok(None)),
            write(100, 300, Outcome::Ok(None)),
            // Neither a failed nor an unknown write ends a gap.
            write(300, 900, Outcome::Unknown("timeout".into())),
            write(900, 950, Outcome::Fail("400".into())),
            write(950, 1000, Outcome::Ok(None)),
        ]);
        let ms = Duration::from_millis;
        assert_eq!(history.longest_write_gap(ms(0), ms(1100)), ms(700));
        assert_eq!(history.longest_write_gap(ms(0), ms(250)), ms(150));
        assert_eq!(history.longest_write_gap(ms(1000), ms(1500)), ms(500));
    }

    #[test]
    fn counts_and_json_lines_tell_every_outcome_apart() {
        let read = |stale, outcome| op(5, 6, OpKind::Read { stale }, outcome);
        let history = History::new(vec![
            write(0, 1, Outcome::Ok(None)),
            write(1, 2, Outcome::Unknown("timeout".into())),
            read(false, Outcome::Ok(Some("w0".into()))),
            read(false, Outcome::Fail("503: no leader".into())),
            read(true, Outcome::Ok(None)),
        ]);
        let counts = history.counts();
        assert_eq!(
            counts.to_string(),
            "writes: 1 ok, 0 failed, 1 unknown; reads: 1 ok, 1 failed, 0 unknown; \
             stale reads: 1 ok, 0 failed, 0 unknown"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        history.write_jsonl(&path).unwrap();
        let lines: Vec<Value> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["kind"], "write");
        assert_eq!(lines[0]["value"], "w0");
        assert_eq!(lines[1]["outcome"], "unknown");
        assert_eq!(lines[1]["reason"], "timeout");
        let seen: Vec<&Value> = lines[2..].iter().map(|l| &l["seen"]).collect();
        assert_eq!(seen, [&json!("w0"), &Value::Null, &Value::Null]);
        assert_eq!(lines[4]["kind"], "stale_read");
    }
}
