//! The audit log and its retention rule: no single actor can flush anyone else's entries.
//!
//! Every actor (a user, or the cluster itself) keeps its own latest [`AUDIT_PER_ACTOR`]
//! entries; beyond that its own oldest entry goes, never someone else's. Above
//! [`AUDIT_KEEP`] entries in all, the actor holding the most loses its oldest. So a user
//! changing their own token in a loop only ever replaces their own history.

use std::collections::{BTreeMap, BTreeSet};

use super::tenancy::AuditEntry;

/// How many entries each actor keeps.
pub const AUDIT_PER_ACTOR: usize = 2_000;
/// How many entries the log keeps in all.
pub const AUDIT_KEEP: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditLog {
    entries: BTreeMap<u64, AuditEntry>,
    /// Each actor's entry seqs, derived from `entries`: where retention looks.
    by_actor: BTreeMap<Option<String>, BTreeSet<u64>>,
}

/// Which entries `GET /api/v1/audit` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// `Some(None)` asks for the cluster's own entries.
    pub actor: Option<Option<String>>,
    pub kind: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The newest `limit` of the matching entries.
    pub limit: Option<usize>,
}

impl AuditLog {
    pub fn from_entries(entries: impl IntoIterator<Item = AuditEntry>) -> AuditLog {
        let mut log = AuditLog::default();
        for e in entries {
            log.load(e);
        }
        log
    }

    /// Keep a stored entry as it is, without retention (records load in any order).
    pub fn load(&mut self, entry: AuditEntry) {
        self.by_actor
            .entry(entry.actor_user_id.clone())
            .or_default()
            .insert(entry.seq);
        self.entries.insert(entry.seq, entry);
    }

    /// Append an entry (its `seq` is assigned here) and apply the retention rule first, so
    /// the new entry is always kept. Returns its seq and the seqs dropped.
    pub fn append(&mut self, mut entry: AuditEntry) -> (u64, Vec<u64>) {
        let seq = self.entries.keys().next_back().map_or(1, |last| last + 1);
        let mut dropped = Vec::new();
        while self.count(&entry.actor_user_id) >= AUDIT_PER_ACTOR {
            dropped.extend(self.drop_oldest_of(&entry.actor_user_id.clone()));
        }
        while self.entries.len() >= AUDIT_KEEP {
            // The actor with the most entries; ties go to the first in id order.
            let Some(largest) = self
                .by_actor
                .iter()
                .rev()
                .max_by_key(|(_, seqs)| seqs.len())
                .map(|(actor, _)| actor.clone())
            else {
                break;
            };
            dropped.extend(self.drop_oldest_of(&largest));
        }
        entry.seq = seq;
        self.load(entry);
        (seq, dropped)
    }

    fn count(&self, actor: &Option<String>) -> usize {
        self.by_actor.get(actor).map_or(0, BTreeSet::len)
    }

    fn drop_oldest_of(&mut self, actor: &Option<String>) -> Option<u64> {
        let seqs = self.by_actor.get_mut(actor)?;
        let oldest = seqs.pop_first()?;
        if seqs.is_empty() {
            self.by_actor.remove(actor);
        }
        self.entries.remove(&oldest);
        Some(oldest)
    }

    pub fn get(&self, seq: &u64) -> Option<&AuditEntry> {
        self.entries.get(seq)
    }

    pub fn entries(&self) -> &BTreeMap<u64, AuditEntry> {
        &self.entries
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &AuditEntry> {
        self.entries.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.keys().copied()
    }

    /// The entries `filter` asks for, oldest first.
    pub fn select(&self, filter: &AuditFilter) -> Vec<&AuditEntry> {
        let matches = |e: &&AuditEntry| {
            filter.actor.as_ref().is_none_or(|a| *a == e.actor_user_id)
                && filter.kind.as_ref().is_none_or(|k| *k == e.kind)
                && filter.since_ms.is_none_or(|t| e.at_ms >= t)
                && filter.until_ms.is_none_or(|t| e.at_ms <= t)
        };
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut newest: Vec<&AuditEntry> =
            self.values().rev().filter(matches).take(limit).collect();
        newest.reverse();
        newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: Option<&str>, kind: &str, at_ms: i64) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at_ms,
            actor_user_id: actor.map(str::to_owned),
            kind: kind.into(),
            level: "user".into(),
            target: actor.map(str::to_owned),
        }
    }

    /// The attack, twice over: a member's 20,000 changes of their own token leave
    /// every admin and cluster entry in place, and keep the member's latest ones.
    #[test]
    fn a_users_churn_never_evicts_anyone_elses_entries() {
        let mut log = AuditLog::default();
        let mut security = Vec::new();
        for (actor, kind) in [
            (Some("admin"), "admin_user_created"),
            (Some("admin"), "api_key_issued"),
            (Some("admin"), "org_owner_granted"),
            (None, "node_admitted"),
            (Some("admin"), "join_token_created"),
        ] {
            security.push(log.append(entry(actor, kind, 1)).0);
        }
        for i in 0..20_000 {
            log.append(entry(Some("mallory"), "hf_token_set", 2 + i));
        }
        for seq in &security {
            assert!(log.get(seq).is_some(), "entry {seq} was evicted");
        }
        let mallory = AuditFilter {
            actor: Some(Some("mallory".into())),
            ..Default::default()
        };
        let kept = log.select(&mallory);
        assert_eq!(kept.len(), AUDIT_PER_ACTOR);
        assert_eq!(kept.last().unwrap().at_ms, 20_001);
        assert_eq!(log.values().count(), AUDIT_PER_ACTOR + security.len());
    }

    /// Two logs fed the same entries end up identical, and a log rebuilt from its stored
    /// entries equals the one that wrote them (every node evicts the same entries).
    #[test]
    fn retention_is_deterministic_and_survives_a_reload() {
        let feed = |log: &mut AuditLog| {
            for i in 0..(AUDIT_PER_ACTOR as i64 + 50) {
                log.append(entry(Some(if i % 3 == 0 { "a" } else { "b" }), "k", i));
            }
        };
        let (mut one, mut two) = (AuditLog::default(), AuditLog::default());
        feed(&mut one);
        feed(&mut two);
        assert_eq!(one, two);
        let reloaded = AuditLog::from_entries(one.values().cloned());
        assert_eq!(reloaded, one);
    }

    /// Above the global cap the actor with the most entries pays, not the smallest one.
    #[test]
    fn the_global_cap_takes_from_the_largest_actor() {
        let mut log = AuditLog::default();
        for i in 0..AUDIT_KEEP as u64 {
            // 60 actors: the cap is reached with every one under its own limit.
            let actor = format!("u{}", i % 60);
            log.load(AuditEntry {
                seq: i + 1,
                ..entry(Some(&actor), "k", i as i64)
            });
        }
        log.load(AuditEntry {
            seq: AUDIT_KEEP as u64 + 1,
            ..entry(Some("quiet"), "api_key_issued", 0)
        });
        let (_, dropped) = log.append(entry(Some("u7"), "k", 1));
        assert_eq!(log.values().count(), AUDIT_KEEP);
        assert_eq!(dropped.len(), 2);
        assert!(log
            .values()
            .any(|e| e.actor_user_id.as_deref() == Some("quiet")));
    }

    /// Entries written under the old single cap (10,000 of one actor) shrink to the
    /// actor's own limit at its next entry.
    #[test]
    fn an_actor_over_its_limit_from_older_data_is_trimmed_at_its_next_entry() {
        let old = (1..=10_000u64).map(|seq| AuditEntry {
            seq,
            ..entry(Some("m"), "hf_token_set", seq as i64)
        });
        let mut log = AuditLog::from_entries(old);
        let (seq, dropped) = log.append(entry(Some("m"), "hf_token_set", 10_001));
        assert_eq!(seq, 10_001);
        assert_eq!(dropped.len(), 10_000 - AUDIT_PER_ACTOR + 1);
        assert_eq!(log.values().count(), AUDIT_PER_ACTOR);
    }

    #[test]
    fn filters_combine_and_the_limit_keeps_the_newest() {
        let mut log = AuditLog::default();
        for i in 0..10 {
            log.append(entry(Some("a"), if i % 2 == 0 { "x" } else { "y" }, i));
        }
        log.append(entry(None, "node_removed", 10));
        let f = AuditFilter {
            actor: Some(Some("a".into())),
            kind: Some("x".into()),
            since_ms: Some(2),
            until_ms: Some(7),
            limit: Some(2),
        };
        let at: Vec<i64> = log.select(&f).iter().map(|e| e.at_ms).collect();
        assert_eq!(at, [4, 6]);
        let cluster = AuditFilter {
            actor: Some(None),
            ..Default::default()
        };
        assert_eq!(log.select(&cluster)[0].kind, "node_removed");
    }
}
