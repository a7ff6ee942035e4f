//! The just-in-time linearization search of Wing & Gong and Lowe over one register: the
//! invoke and complete events in a list, operations lifted out of it as they are placed,
//! and a memo of (placed set, register value) never to visit twice.

use std::collections::HashSet;
use std::time::Duration;

use crate::chaos::history::Op;

/// One operation as the search sees it: its interval and what it does to the register.
pub(super) struct SearchOp<'a> {
    pub(super) op: &'a Op,
    pub(super) invoke: Duration,
    pub(super) complete: Duration,
    pub(super) write: bool,
    /// Written, or seen.
    pub(super) value: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Search {
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
pub(super) fn search(ops: &[SearchOp], max_steps: u64) -> (Search, u64) {
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
struct Bitset {
    words: Vec<u64>,
    /// Every word before this one is full.
    full: usize,
    /// Every word from this one on is empty.
    end: usize,
}

impl Bitset {
    fn new(n: usize) -> Bitset {
        Bitset {
            words: vec![0; n.div_ceil(64)],
            full: 0,
            end: 0,
        }
    }

    fn set(&mut self, i: usize, on: bool) {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if on {
            self.words[word] |= bit;
            self.end = self.end.max(word + 1);
            while self.full < self.end && self.words[self.full] == u64::MAX {
                self.full += 1;
            }
        } else {
            self.words[word] &= !bit;
            self.full = self.full.min(word);
            while self.end > self.full && self.words[self.end - 1] == 0 {
                self.end -= 1;
            }
        }
    }

    /// The memo key of this set with the register holding `value`. The set is mostly a full
    /// prefix (operations sorted by invoke get ordered roughly in turn): that prefix is kept
    /// as its length, so a key stays small and quick to make on a long history.
    fn key(&self, value: u32) -> (u32, u32, Box<[u64]>) {
        let rest = &self.words[self.full..self.end.max(self.full)];
        (value, self.full as u32, rest.into())
    }
}
