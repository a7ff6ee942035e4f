//! The chaos run's results as Markdown: what `scripts/chaos.sh` writes to
//! `docs/reliability.md`, and what every run prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::faults::{Fault, Injected};
use super::history::{History, Tally};
use super::linearizability::Verdict;
use super::overlap::Overlaps;
use super::stalls::{StallKind, Stalls};

/// Everything one run measured.
pub struct Report<'a> {
    pub seed: u64,
    pub faults_for: Duration,
    pub nodes: usize,
    pub faults: &'a [Injected],
    /// An instant on the history's clock.
    pub on_clock: &'a dyn Fn(Instant) -> Duration,
    pub history: &'a History,
    pub verdict: &'a Verdict,
    pub overlaps: &'a Overlaps,
    /// From the heal after the last token change until every runner held it.
    pub token_converged_after: Duration,
    pub stalls: &'a Stalls,
}

/// One fault kind's figures.
#[derive(Default)]
struct KindFigures {
    count: usize,
    /// Longest stretch without an acknowledged write, from injection to recovery.
    longest_gap: Duration,
    gaps: Vec<Duration>,
    /// Longest time from injection until every node agreed on a leader again.
    longest_recovery: Duration,
}

impl Report<'_> {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let partitions = self
            .faults
            .iter()
            .filter(|f| f.fault.is_partition())
            .count();
        let kills = self
            .faults
            .iter()
            .filter(|f| f.fault == Fault::KillLeader)
            .count();
        let _ = writeln!(
            out,
            "Run: {} nodes, {:.0} s of faults, seed {}: {} faults, {kills} leader kills, \
             {partitions} partitions, one at a time, with {} clients writing and reading \
             throughout.\n",
            self.nodes,
            self.faults_for.as_secs_f64(),
            self.seed,
            self.faults.len(),
            self.history
                .ops
                .iter()
                .map(|op| op.process)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                .saturating_sub(1),
        );

        let _ = writeln!(out, "### Verdicts\n");
        let _ = writeln!(
            out,
            "- acknowledged writes lost: **{}**",
            self.verdict.lost_acks()
        );
        let _ = writeln!(
            out,
            "- keys whose history is linearizable: **{} of {}** ({} violations, {} undecided; \
             {} operations checked)",
            self.verdict.keys.len() - self.verdict.violations() - self.verdict.unknowns(),
            self.verdict.keys.len(),
            self.verdict.violations(),
            self.verdict.unknowns(),
            self.verdict.ops_checked(),
        );
        let _ = writeln!(
            out,
            "- the watched model on two nodes at once: **{}** times (longest {} ms; {} samples \
             every 50 ms)",
            self.overlaps.stretches,
            self.overlaps.longest.as_millis(),
            self.overlaps.samples
        );
        let _ = writeln!(
            out,
            "- the last token, set while two nodes were cut off, held by every node's runner \
             **{} ms** after the heal\n",
            self.token_converged_after.as_millis()
        );

        let counts = self.history.counts();
        let _ = writeln!(out, "### Operations\n");
        let _ = writeln!(
            out,
            "| kind | ok | failed | unknown |\n|---|---:|---:|---:|"
        );
        for (kind, tally) in [
            ("write", &counts.writes),
            ("linearizable read", &counts.reads),
            ("stale read (not checked)", &counts.stale_reads),
        ] {
            let Tally { ok, fail, unknown } = tally;
            let _ = writeln!(out, "| {kind} | {ok} | {fail} | {unknown} |");
        }

        let _ = writeln!(out, "\n### Faults and write unavailability\n");
        let _ = writeln!(
            out,
            "Unavailability: the longest stretch without an acknowledged write between the \
             fault's start and the moment every node agreed on a leader again.\n"
        );
        let _ = writeln!(
            out,
            "| fault | times | longest unavailability | median | longest until one leader |\n\
             |---|---:|---:|---:|---:|"
        );
        for (fault, figures) in self.by_kind() {
            let mut gaps = figures.gaps.clone();
            gaps.sort();
            let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} ms | {} ms | {} ms |",
                fault.name(),
                figures.count,
                figures.longest_gap.as_millis(),
                median.as_millis(),
                figures.longest_recovery.as_millis()
            );
        }
        let _ = writeln!(out, "\n### Stalls the nodes logged\n");
        for (what, kind) in [
            (
                "Raft core answered no probe for longer than the lease",
                &self.stalls.core_busy,
            ),
            ("flush slower than 100 ms", &self.stalls.slow_flush),
        ] {
            let StallKind {
                count,
                longest_ms,
                longest_line,
            } = kind;
            let _ = writeln!(out, "- {what}: {count} (longest {longest_ms} ms)");
            if *count > 0 {
                let _ = writeln!(out, "  `{}`", longest_line.trim());
            }
        }
        let _ = writeln!(
            out,
            "- core stalls with a slow flush on the same node at the same time: {} of {}",
            self.stalls.core_busy_with_slow_flush, self.stalls.core_busy.count
        );
        if self.verdict.violations() + self.verdict.lost_acks() > 0 {
            let _ = writeln!(
                out,
                "\n### Checker output\n\n```text\n{}\n```",
                self.verdict
            );
        }
        out
    }

    fn by_kind(&self) -> BTreeMap<Fault, KindFigures> {
        let mut kinds: BTreeMap<Fault, KindFigures> = BTreeMap::new();
        for f in self.faults {
            let gap = self
                .history
                .longest_write_gap((self.on_clock)(f.started), (self.on_clock)(f.recovered));
            let k = kinds.entry(f.fault).or_default();
            k.count += 1;
            k.longest_gap = k.longest_gap.max(gap);
            k.gaps.push(gap);
            k.longest_recovery = k.longest_recovery.max(f.recovered - f.started);
        }
        kinds
    }
}
