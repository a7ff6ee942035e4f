//! The checker: is each key's history that of one register, and was any acknowledged write
//! lost?
//!
//! Keys are independent registers, so each key is checked alone (P-compositionality). A key's
//! history is linearizable when its operations can be put in one order that respects real
//! time (an operation that completed before another was invoked comes first) and in which
//! every read returns the last value written ("init" before any write). Failed operations are
//! dropped, stale reads are not checked. A write of unknown outcome may take effect at any
//! time after its invoke, or never.
//!
//! Two passes per key:
//! 1. Direct checks that name the operations at fault: a read of a value nobody wrote (or a
//!    failed write wrote), of a write invoked after the read completed, or of a value
//!    overwritten by an acknowledged write that completed before the read began (a stale
//!    read). On the key's last read the overwriting writes are the acknowledged writes lost.
//! 2. The search of Wing & Gong, as Lowe made it just-in-time (the one of Knossos and
//!    Porcupine): take operations in the order of a list of invoke and complete events, lift
//!    one whose invoke comes before every pending completion when the register allows it,
//!    backtrack at a completion that nothing lifted, and never visit a (set of ordered
//!    operations, register value) twice. A bounded number of steps: past it, "unknown".
//!
//! Unique values make unknown writes cheap: one that no read saw can be left out (taking
//! effect unseen is the same as never), one that a read saw must take effect before the
//! first such read completes, which becomes its completion.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use super::history::{History, Op, Outcome, INITIAL_VALUE};
use search::{search, Search, SearchOp};

mod search;
#[cfg(test)]
mod tests;

/// The steps [`check`] allows the search of one key: far more than a history of a few
/// concurrent clients needs (a few per operation), few enough to end in seconds.
pub const DEFAULT_SEARCH_STEPS: u64 = 2_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    Linearizable,
    /// Why not, naming the operations.
    Violation(String),
    /// The search gave up: neither proven nor refuted.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct KeyVerdict {
    pub key: String,
    /// The operations the search ordered (failed ones, stale reads and unseen unknown writes
    /// left out).
    pub ops_checked: usize,
    /// How many steps the search took (0 when a direct check already found a violation).
    pub steps: u64,
    pub result: KeyResult,
    /// Whether the key's last successful linearizable read began after every acknowledged
    /// write on it had completed: without one, a lost write may go unnoticed.
    pub final_read: bool,
}

/// An acknowledged write that the key's last read did not see, nor anything written after it.
#[derive(Clone, Debug)]
pub struct LostWrite {
    pub write: Op,
    pub last_read: Op,
}

#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub keys: Vec<KeyVerdict>,
    pub lost: Vec<LostWrite>,
}

impl Verdict {
    /// Every key proven linearizable.
    pub fn linearizable(&self) -> bool {
        self.keys
            .iter()
            .all(|k| k.result == KeyResult::Linearizable)
    }

    pub fn violations(&self) -> usize {
        let violation = |k: &&KeyVerdict| matches!(k.result, KeyResult::Violation(_));
        self.keys.iter().filter(violation).count()
    }

    pub fn unknowns(&self) -> usize {
        let unknown = |k: &&KeyVerdict| matches!(k.result, KeyResult::Unknown(_));
        self.keys.iter().filter(unknown).count()
    }

    /// Acknowledged writes lost: must be 0.
    pub fn lost_acks(&self) -> usize {
        self.lost.len()
    }

    /// Keys whose lost writes could not all be checked, for want of a final read.
    pub fn keys_without_final_read(&self) -> usize {
        self.keys.iter().filter(|k| !k.final_read).count()
    }

    pub fn ops_checked(&self) -> usize {
        self.keys.iter().map(|k| k.ops_checked).sum()
    }
}

/// What fits a report: totals, each key's result, the first lost writes.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.len();
        let linearizable = keys - self.violations() - self.unknowns();
        writeln!(
            f,
            "{keys} keys, {} operations checked: {linearizable} linearizable, {} violations, {} unknown",
            self.ops_checked(),
            self.violations(),
            self.unknowns()
        )?;
        writeln!(f, "acknowledged writes lost: {}", self.lost_acks())?;
        for k in &self.keys {
            let result = match &k.result {
                KeyResult::Linearizable => "linearizable".to_string(),
                KeyResult::Violation(why) => format!("VIOLATION: {why}"),
                KeyResult::Unknown(why) => format!("unknown ({why})"),
            };
            let unchecked = match k.final_read {
                true => "",
                false => "; no read after the last acknowledged write: lost writes unchecked",
            };
            writeln!(
                f,
                "  {}: {result} ({} operations, {} steps{unchecked})",
                k.key, k.ops_checked, k.steps
            )?;
        }
        const SHOWN: usize = 10;
        for lost in self.lost.iter().take(SHOWN) {
            writeln!(f, "  lost: {} (last read: {})", lost.write, lost.last_read)?;
        }
        if self.lost.len() > SHOWN {
            writeln!(f, "  ... and {} more lost", self.lost.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Checks every key of `history` with [`DEFAULT_SEARCH_STEPS`].
pub fn check(history: &History) -> Verdict {
    check_with_limit(history, DEFAULT_SEARCH_STEPS)
}

/// Checks every key, giving each key's search at most `max_steps` steps.
pub fn check_with_limit(history: &History, max_steps: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut verdict = Verdict::default();
    for (key, ops) in by_key {
        let (key_verdict, lost) = check_key(key, &ops, max_steps);
        verdict.keys.push(key_verdict);
        verdict.lost.extend(lost);
    }
    verdict
}

/// Where a read's value came from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Initial,
    Write(&'a Op),
}

impl Source<'_> {
    /// Whether `write` began after this value was acknowledged, so it must come after it.
    fn precedes(&self, write: &Op) -> bool {
        match self {
            Source::Initial => true,
            Source::Write(source) => source.is_ok() && source.complete < write.invoke,
        }
    }
}

/// One key's operations, sorted out.
struct KeyOps<'a> {
    /// Successful linearizable reads, in invoke order.
    reads: Vec<&'a Op>,
    /// Writes that were acknowledged or may have taken effect, by value and in invoke order.
    writes: HashMap<&'a str, &'a Op>,
    in_order: Vec<&'a Op>,
    failed: HashMap<&'a str, &'a Op>,
    /// Acknowledged writes by completion, with the latest invoke among each prefix: the
    /// write that began last among those done before a given time.
    acked: Vec<&'a Op>,
    latest_invoked: Vec<&'a Op>,
}

impl<'a> KeyOps<'a> {
    fn new(ops: &[&'a Op]) -> KeyOps<'a> {
        let reads = ops
            .iter()
            .copied()
            .filter(|op| op.is_linearizable_read() && op.is_ok())
            .collect();
        let mut writes = HashMap::new();
        let mut failed = HashMap::new();
        let mut in_order = Vec::new();
        let mut acked = Vec::new();
        for op in ops {
            let Some(value) = op.written() else { continue };
            if let Outcome::Fail(_) = op.outcome {
                failed.insert(value, *op);
                continue;
            }
            writes.insert(value, *op);
            in_order.push(*op);
            if op.is_ok() {
                acked.push(*op);
            }
        }
        acked.sort_by_key(|op| op.complete);
        let mut latest_invoked: Vec<&Op> = Vec::with_capacity(acked.len());
        for op in &acked {
            let latest = match latest_invoked.last() {
                Some(latest) if latest.invoke >= op.invoke => latest,
                _ => op,
            };
            latest_invoked.push(latest);
        }
        KeyOps {
            reads,
            writes,
            in_order,
            failed,
            acked,
            latest_invoked,
        }
    }

    /// The write whose value `read` saw, or why the value cannot be.
    fn source(&self, read: &Op) -> Result<Source<'a>, String> {
        let Some(Some(value)) = read.seen() else {
            return Err(format!("{read}: the model is gone"));
        };
        if value == INITIAL_VALUE {
            return Ok(Source::Initial);
        }
        if let Some(write) = self.writes.get(value) {
            if write.invoke > read.complete {
                return Err(format!("{read}: a value written only later, by {write}"));
            }
            return Ok(Source::Write(write));
        }
        match self.failed.get(value) {
            Some(write) => Err(format!("{read}: the value of a failed write, {write}")),
            None => Err(format!("{read}: a value no write wrote")),
        }
    }

    /// An acknowledged write that overwrote `source` before `read` began: a stale read.
    fn overwritten(&self, source: Source, read: &Op) -> Option<&'a Op> {
        let done_before = self.acked.partition_point(|op| op.complete < read.invoke);
        let latest = *self.latest_invoked.get(done_before.checked_sub(1)?)?;
        source.precedes(latest).then_some(latest)
    }

    fn last_read(&self) -> Option<&'a Op> {
        self.reads.iter().copied().max_by_key(|op| op.invoke)
    }

    /// Whether the last read began after every acknowledged write completed.
    fn has_final_read(&self) -> bool {
        let last_ack = self.acked.last().map(|op| op.complete);
        match self.last_read() {
            Some(read) => last_ack.is_none_or(|ack| ack < read.invoke),
            None => false,
        }
    }

    /// Every acknowledged write the key's last read should have seen and did not.
    fn lost(&self) -> Vec<LostWrite> {
        let Some(last_read) = self.last_read() else {
            return Vec::new();
        };
        // A value that cannot be there keeps no write: every one done before is lost.
        let source = self.source(last_read).unwrap_or(Source::Initial);
        self.acked
            .iter()
            .filter(|write| write.complete < last_read.invoke && source.precedes(write))
            .map(|write| LostWrite {
                write: (*write).clone(),
                last_read: (*last_read).clone(),
            })
            .collect()
    }

    /// The first read whose value cannot be, or is stale: why.
    fn direct_violation(&self) -> Option<String> {
        self.reads.iter().find_map(|read| {
            let source = match self.source(read) {
                Ok(source) => source,
                Err(why) => return Some(why),
            };
            let overwriting = self.overwritten(source, read)?;
            let written = match source {
                Source::Initial => "the initial value".to_string(),
                Source::Write(write) => format!("the value of {write}"),
            };
            Some(format!(
                "{read}: {written}, overwritten before the read began by {overwriting}"
            ))
        })
    }

    /// The operations to order: unseen unknown writes left out, seen ones completing when
    /// the first read of their value does. Values are numbered, 0 the initial one.
    fn to_search(&self) -> (Vec<SearchOp<'a>>, Vec<&'a str>) {
        let mut names = vec![INITIAL_VALUE];
        let mut numbers = HashMap::from([(INITIAL_VALUE, 0u32)]);
        let mut first_seen: HashMap<&str, Duration> = HashMap::new();
        for read in &self.reads {
            if let Some(Some(value)) = read.seen() {
                let at = first_seen.entry(value).or_insert(read.complete);
                *at = (*at).min(read.complete);
            }
        }
        let mut ops = Vec::new();
        // In invoke order, so that the search takes the same steps on every run.
        for write in &self.in_order {
            let value = write.written().expect("a write");
            let complete = match write.outcome {
                Outcome::Ok(_) => write.complete,
                _ => match first_seen.get(value) {
                    Some(at) => *at,
                    None => continue,
                },
            };
            let number = names.len() as u32;
            names.push(value);
            numbers.insert(value, number);
            ops.push(SearchOp {
                op: write,
                invoke: write.invoke,
                complete,
                write: true,
                value: number,
            });
        }
        for read in &self.reads {
            let Some(Some(value)) = read.seen() else {
                continue;
            };
            // A value without a number fails the direct checks, which come first.
            let Some(&value) = numbers.get(value) else {
                continue;
            };
            ops.push(SearchOp {
                op: read,
                invoke: read.invoke,
                complete: read.complete,
                write: false,
                value,
            });
        }
        ops.sort_by_key(|op| (op.invoke, op.complete));
        (ops, names)
    }
}

fn check_key(key: &str, ops: &[&Op], max_steps: u64) -> (KeyVerdict, Vec<LostWrite>) {
    let sorted = KeyOps::new(ops);
    let lost = sorted.lost();
    let (search_ops, names) = sorted.to_search();
    let mut verdict = KeyVerdict {
        key: key.to_string(),
        ops_checked: search_ops.len(),
        steps: 0,
        result: KeyResult::Linearizable,
        final_read: sorted.has_final_read(),
    };
    if let Some(why) = sorted.direct_violation() {
        verdict.result = KeyResult::Violation(why);
        return (verdict, lost);
    }
    let (outcome, steps) = search(&search_ops, max_steps);
    verdict.steps = steps;
    verdict.result = match outcome {
        Search::Linearizable => KeyResult::Linearizable,
        Search::Stuck { ordered, op, value } => KeyResult::Violation(format!(
            "no order of the {} operations fits; the longest found orders {ordered}, after which \
             {} cannot take effect before it completes (the register then holds {:?})",
            search_ops.len(),
            search_ops[op].op,
            names[value as usize]
        )),
        Search::Limit => KeyResult::Unknown(format!("search limit of {max_steps} steps")),
    };
    (verdict, lost)
}
