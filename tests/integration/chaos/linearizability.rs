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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::history::{History, Op, Outcome, INITIAL_VALUE};

/// The steps [`check`] allows the search of one key: far more than a history of a few
/// concurrent clients needs (a few per operation), few enough to end in seconds.
pub const DEFAULT_SEARCH_STEPS: u64 = 5_000_000;

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
            writeln!(
                f,
                "  {}: {result} ({} operations, {} steps)",
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
    /// Writes that were acknowledged or may have taken effect, by value.
    writes: HashMap<&'a str, &'a Op>,
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
        let mut acked = Vec::new();
        for op in ops {
            let Some(value) = op.written() else { continue };
            match op.outcome {
                Outcome::Fail(_) => failed.insert(value, *op),
                Outcome::Ok(_) | Outcome::Unknown(_) => writes.insert(value, *op),
            };
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

    /// Every acknowledged write the key's last read should have seen and did not.
    fn lost(&self) -> Vec<LostWrite> {
        let Some(last_read) = self.reads.iter().max_by_key(|op| op.invoke) else {
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
        for (value, write) in &self.writes {
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

/// One operation as the search sees it: its interval and what it does to the register.
struct SearchOp<'a> {
    op: &'a Op,
    invoke: Duration,
    complete: Duration,
    write: bool,
    /// Written, or seen.
    value: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    /// No order: the deepest point the search reached, and the operation it could not place.
    Stuck {
        ordered: usize,
        op: usize,
        value: u32,
    },
    Limit,
}

/// The just-in-time linearization search over `ops` (sorted by invoke); its steps taken.
fn search(ops: &[SearchOp], max_steps: u64) -> (Search, u64) {
    let n = ops.len();
    let mut events: Vec<(Duration, bool, usize)> = (0..n)
        .flat_map(|i| [(ops[i].invoke, false, i), (ops[i].complete, true, i)])
        .collect();
    // At equal times an invoke comes first: such operations count as concurrent.
    events.sort();
    let mut list = EventList::new(&events, n);
    let mut ordered = Bitset::new(n);
    let mut seen: HashSet<(u32, u32, Box<[u64]>)> = HashSet::new();
    // The lifted calls, with the register's value before each.
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut value = 0u32;
    let mut deepest: Option<(usize, usize, u32)> = None;
    let mut entry = list.first();
    let mut steps = 0u64;
    while !list.is_empty() {
        steps += 1;
        if steps > max_steps {
            return (Search::Limit, steps - 1);
        }
        let i = list.op[entry];
        if list.is_call[entry] {
            let op = &ops[i];
            if op.write || op.value == value {
                ordered.set(i, true);
                if seen.insert(ordered.key(op.value)) {
                    stack.push((entry, value));
                    value = op.value;
                    list.lift(entry);
                    entry = list.first();
                    continue;
                }
                ordered.set(i, false);
            }
            entry = list.next[entry];
        } else {
            // A completion whose operation could not be placed before it: back up.
            if deepest.is_none_or(|(depth, _, _)| stack.len() > depth) {
                deepest = Some((stack.len(), i, value));
            }
            let Some((call, before)) = stack.pop() else {
                let (ordered, op, value) = deepest.expect("set just above");
                return (Search::Stuck { ordered, op, value }, steps);
            };
            value = before;
            ordered.set(list.op[call], false);
            list.unlift(call);
            entry = list.next[call];
        }
    }
    (Search::Linearizable, steps)
}

/// The invoke and complete events as a doubly linked list (node 0 the head, the last node the
/// tail), from which a placed operation's two events are lifted and put back in LIFO order.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call's node, its completion's node.
    completion: Vec<usize>,
    tail: usize,
}

impl EventList {
    fn new(events: &[(Duration, bool, usize)], n: usize) -> EventList {
        let tail = events.len() + 1;
        let mut list = EventList {
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|i| i.saturating_sub(1)).collect(),
            op: vec![0; tail + 1],
            is_call: vec![false; tail + 1],
            completion: vec![0; tail + 1],
            tail,
        };
        let mut completion_of_op = vec![0; n];
        for (k, &(_, is_return, i)) in events.iter().enumerate() {
            list.op[k + 1] = i;
            list.is_call[k + 1] = !is_return;
            if is_return {
                completion_of_op[i] = k + 1;
            }
        }
        for node in 1..tail {
            if list.is_call[node] {
                list.completion[node] = completion_of_op[list.op[node]];
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn is_empty(&self) -> bool {
        self.next[0] == self.tail
    }

    fn lift(&mut self, call: usize) {
        for node in [call, self.completion[call]] {
            let (prev, next) = (self.prev[node], self.next[node]);
            self.next[prev] = next;
            self.prev[next] = prev;
        }
    }

    fn unlift(&mut self, call: usize) {
        for node in [self.completion[call], call] {
            let (prev, next) = (self.prev[node], self.next[node]);
            self.next[prev] = node;
            self.prev[next] = node;
        }
    }
}

/// Which operations are ordered.
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(n: usize) -> Bitset {
        Bitset(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize, on: bool) {
        let bit = 1u64 << (i % 64);
        if on {
            self.0[i / 64] |= bit;
        } else {
            self.0[i / 64] &= !bit;
        }
    }

    /// The memo key of this set with the register holding `value`. The set is mostly a full
    /// prefix (operations sorted by invoke get ordered roughly in turn): that prefix is kept
    /// as its length, so a key stays small on a long history.
    fn key(&self, value: u32) -> (u32, u32, Box<[u64]>) {
        let words = &self.0;
        let full = words
            .iter()
            .position(|&w| w != u64::MAX)
            .unwrap_or(words.len());
        let end = words.iter().rposition(|&w| w != 0).map_or(full, |i| i + 1);
        (value, full as u32, words[full..end.max(full)].into())
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::chaos::history::OpKind;

    const MS: Duration = Duration::from_millis(1);

    fn op(process: usize, kind: OpKind, at: (u64, u64), outcome: Outcome) -> Op {
        Op {
            process,
            node: 0,
            key: "k".into(),
            kind,
            invoke: MS * at.0 as u32,
            complete: MS * at.1 as u32,
            outcome,
        }
    }

    fn write(process: usize, value: &str, at: (u64, u64), outcome: Outcome) -> Op {
        let value = value.to_string();
        op(process, OpKind::Write { value }, at, outcome)
    }

    fn acked(process: usize, value: &str, at: (u64, u64)) -> Op {
        write(process, value, at, Outcome::Ok(None))
    }

    fn unknown(process: usize, value: &str, at: (u64, u64)) -> Op {
        write(process, value, at, Outcome::Unknown("timeout".into()))
    }

    fn read(process: usize, seen: &str, at: (u64, u64)) -> Op {
        let outcome = Outcome::Ok(Some(seen.to_string()));
        op(process, OpKind::Read { stale: false }, at, outcome)
    }

    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History::new(ops))
    }

    fn violation(v: &Verdict) -> &str {
        match &v.keys[0].result {
            KeyResult::Violation(why) => why,
            other => panic!("expected a violation, got {other:?}\n{v}"),
        }
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let v = verdict(vec![
            read(0, "init", (0, 1)),
            acked(0, "a", (2, 3)),
            read(1, "a", (4, 5)),
            acked(1, "b", (6, 7)),
            read(0, "b", (8, 9)),
        ]);
        assert!(v.linearizable() && v.lost_acks() == 0, "{v}");
        assert_eq!(v.keys[0].ops_checked, 5);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in ["init", "a"] {
            let v = verdict(vec![acked(0, "a", (0, 10)), read(1, seen, (2, 5))]);
            assert!(v.linearizable(), "{seen}: {v}");
        }
    }

    /// The search's answer alone, without the direct checks.
    fn searched(ops: &[Op]) -> Search {
        let refs: Vec<&Op> = ops.iter().collect();
        let (search_ops, _) = KeyOps::new(&refs).to_search();
        search(&search_ops, DEFAULT_SEARCH_STEPS).0
    }

    #[test]
    fn a_value_read_after_it_was_overwritten_is_a_violation() {
        let ops = vec![
            acked(0, "a", (0, 1)),
            acked(0, "b", (2, 3)),
            read(1, "a", (4, 5)),
        ];
        let v = verdict(ops.clone());
        let why = violation(&v);
        assert!(
            why.contains("overwritten before the read began by p0 write \"b\""),
            "{why}"
        );
        // The search on its own finds no order either.
        assert!(matches!(searched(&ops), Search::Stuck { .. }));
    }

    #[test]
    fn a_value_nobody_wrote_or_a_failed_write_wrote_is_a_violation() {
        let v = verdict(vec![acked(0, "a", (0, 1)), read(1, "z", (2, 3))]);
        assert!(violation(&v).ends_with("a value no write wrote"), "{v}");
        let refused = write(0, "a", (0, 1), Outcome::Fail("400: bad".into()));
        let v = verdict(vec![refused, read(1, "a", (2, 3))]);
        assert!(violation(&v).contains("the value of a failed write"), "{v}");
    }

    #[test]
    fn a_read_cannot_see_a_write_invoked_after_it_completed() {
        let v = verdict(vec![read(1, "a", (0, 1)), unknown(0, "a", (2, 3))]);
        assert!(violation(&v).contains("written only later"), "{v}");
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        // Seen long after its request timed out.
        let seen_later = verdict(vec![
            unknown(0, "a", (0, 5)),
            read(1, "init", (6, 7)),
            read(1, "a", (8, 9)),
            read(1, "a", (10, 11)),
        ]);
        assert!(seen_later.linearizable(), "{seen_later}");
        let never_seen = verdict(vec![
            unknown(0, "a", (0, 5)),
            acked(0, "b", (6, 7)),
            read(1, "b", (8, 9)),
        ]);
        assert!(never_seen.linearizable(), "{never_seen}");
        // Left out of the search: nothing saw it.
        assert_eq!(never_seen.keys[0].ops_checked, 2);
    }

    #[test]
    fn two_reads_cannot_flip_back_between_concurrent_writes() {
        // Either order of the writes is fine, but not a then b then a again: only the search
        // sees that, every read on its own is possible.
        let v = verdict(vec![
            acked(0, "a", (0, 20)),
            acked(1, "b", (0, 20)),
            read(2, "a", (1, 2)),
            read(2, "b", (3, 4)),
            read(2, "a", (5, 6)),
        ]);
        let why = violation(&v);
        assert!(
            why.starts_with("no order of the 5 operations fits"),
            "{why}"
        );
        assert!(
            why.contains("p2 read on k via node 0, 0.005-0.006 s: saw \"a\""),
            "{why}"
        );
    }

    #[test]
    fn an_acknowledged_write_the_last_read_misses_is_lost_and_counted() {
        let v = verdict(vec![
            acked(0, "a", (0, 1)),
            acked(0, "b", (2, 3)),
            acked(1, "c", (4, 5)),
            read(2, "a", (6, 7)),
        ]);
        violation(&v);
        let lost: Vec<_> = v.lost.iter().map(|l| l.write.written().unwrap()).collect();
        assert_eq!(lost, ["b", "c"], "{v}");
        assert!(v.to_string().contains("acknowledged writes lost: 2"), "{v}");
        // A write still in flight when the read began may come after it.
        let v = verdict(vec![
            acked(0, "a", (0, 1)),
            acked(0, "b", (2, 9)),
            read(2, "a", (6, 7)),
        ]);
        assert!(v.linearizable() && v.lost_acks() == 0, "{v}");
    }

    #[test]
    fn a_gone_model_loses_every_write_before_the_read() {
        let gone = op(2, OpKind::Read { stale: false }, (6, 7), Outcome::Ok(None));
        let v = verdict(vec![acked(0, "a", (0, 1)), gone]);
        assert!(violation(&v).ends_with("the model is gone"), "{v}");
        assert_eq!(v.lost_acks(), 1);
    }

    #[test]
    fn failed_ops_and_stale_reads_are_not_checked() {
        let stale = op(
            1,
            OpKind::Read { stale: true },
            (4, 5),
            Outcome::Ok(Some("init".into())),
        );
        let failed_read = op(
            1,
            OpKind::Read { stale: false },
            (4, 5),
            Outcome::Fail("503".into()),
        );
        let refused = write(0, "b", (2, 3), Outcome::Fail("409".into()));
        let v = verdict(vec![acked(0, "a", (0, 1)), refused, stale, failed_read]);
        assert!(v.linearizable(), "{v}");
        assert_eq!(v.keys[0].ops_checked, 1);
    }

    /// A register's history: `clients` clients, each running `per_client` operations one
    /// after another, every operation taking effect at a random point of its interval (or,
    /// for a failed write and half of the unknown ones, never).
    fn random_history(seed: u64, clients: usize, per_client: usize) -> Vec<Op> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut planned = Vec::new();
        for process in 0..clients {
            let mut t = rng.gen_range(0..3);
            for i in 0..per_client {
                let invoke = t + rng.gen_range(0..3);
                let effect = invoke + rng.gen_range(0..6);
                let complete = effect + rng.gen_range(1..6);
                t = complete;
                let (kind, outcome, takes_effect) = if rng.gen_bool(0.5) {
                    let value = format!("p{process}-w{i}");
                    let (outcome, takes_effect) = match rng.gen_range(0..20) {
                        0 => (Outcome::Fail("400".into()), false),
                        1 => (Outcome::Unknown("timeout".into()), rng.gen_bool(0.5)),
                        _ => (Outcome::Ok(None), true),
                    };
                    (OpKind::Write { value }, outcome, takes_effect)
                } else {
                    (OpKind::Read { stale: false }, Outcome::Ok(None), true)
                };
                let op = op(process, kind, (invoke, complete), outcome);
                planned.push((effect, takes_effect, op));
            }
        }
        planned.sort_by_key(|(effect, _, op)| (*effect, op.process));
        let mut register = INITIAL_VALUE.to_string();
        for (_, takes_effect, op) in &mut planned {
            match (&op.kind, *takes_effect) {
                (OpKind::Write { value }, true) => register = value.clone(),
                (OpKind::Read { .. }, _) => op.outcome = Outcome::Ok(Some(register.clone())),
                _ => {}
            }
        }
        planned.into_iter().map(|(_, _, op)| op).collect()
    }

    #[test]
    fn random_register_histories_are_linearizable_in_few_steps() {
        for seed in 0..5 {
            let ops = random_history(seed, 4, 2500);
            let v = verdict(ops);
            let key = &v.keys[0];
            assert!(v.linearizable() && v.lost_acks() == 0, "seed {seed}: {v}");
            assert!(key.ops_checked > 9000, "seed {seed}: {v}");
            // Fast: a handful of steps per operation, nowhere near the limit.
            assert!(key.steps < 10 * key.ops_checked as u64, "seed {seed}: {v}");
        }
    }

    #[test]
    fn a_stale_read_slipped_into_a_random_history_is_caught() {
        let mut ops = random_history(7, 4, 2500);
        let first_acked = ops
            .iter()
            .filter(|op| op.is_write() && op.is_ok())
            .min_by_key(|op| op.complete)
            .unwrap()
            .clone();
        let last_read = ops
            .iter_mut()
            .filter(|op| op.is_linearizable_read())
            .max_by_key(|op| op.invoke)
            .unwrap();
        let old = first_acked.written().unwrap().to_string();
        last_read.outcome = Outcome::Ok(Some(old.clone()));
        let stale = last_read.clone();
        let v = verdict(ops.clone());
        let why = violation(&v);
        assert!(why.starts_with(&stale.to_string()), "{why}");
        assert!(v.lost_acks() > 0, "{v}");
        // The search on its own finds it too.
        assert!(matches!(searched(&ops), Search::Stuck { .. }));
    }

    #[test]
    fn a_search_past_its_limit_is_unknown_not_a_pass() {
        let v = check_with_limit(&History::new(random_history(1, 4, 200)), 50);
        assert!(
            matches!(&v.keys[0].result, KeyResult::Unknown(why) if why == "search limit of 50 steps"),
            "{v}"
        );
        assert!(!v.linearizable());
        assert_eq!(v.unknowns(), 1);
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut other = acked(0, "a", (0, 1));
        other.key = "other".into();
        let v = verdict(vec![other, read(1, "init", (2, 3))]);
        assert!(v.linearizable(), "{v}");
        let keys: Vec<_> = v.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["k", "other"]);
    }
}
