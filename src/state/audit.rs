//! The audit log and its retention rule: no single actor can flush anyone else's entries.
//!
//! Every actor (a user, or the cluster itself) keeps its own latest [`AUDIT_PER_BUCKET`]
//! entries of each kind; beyond that its own oldest entry of that kind goes, never someone
//! else's, nor one of its own of another kind. Above [`AUDIT_KEEP`] entries in all, the
//! largest such bucket loses its oldest. So a user changing their own token in a loop only
//! ever replaces their own token history: not the keys they issued, not anyone's entries.

use std::collections::{BTreeMap, BTreeSet};

use super::tenancy::AuditEntry;

/// How many entries each actor keeps of each kind.
pub const AUDIT_PER_BUCKET: usize = 2_000;
/// How many entries the log keeps in all.
pub const AUDIT_KEEP: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditLog {
    entries: BTreeMap<u64, AuditEntry>,
    /// Entry seqs by actor and kind, derived from `entries`: where retention looks.
    buckets: BTreeMap<Bucket, BTreeSet<u64>>,
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

/// An actor (`None`: the cluster) and a kind.
type Bucket = (Option<String>, String);

fn bucket_of(e: &AuditEntry) -> Bucket {
    (e.actor_user_id.clone(), e.kind.clone())
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
        self.buckets
            .entry(bucket_of(&entry))
            .or_default()
            .insert(entry.seq);
        self.entries.insert(entry.seq, entry);
    }

    /// Append an entry (its `seq` is assigned here) and apply the retention rule first, so
    /// the new entry is always kept. Returns its seq and the seqs dropped.
    pub fn append(&mut self, mut entry: AuditEntry) -> (u64, Vec<u64>) {
        let seq = self.entries.keys().next_back().map_or(1, |last| last + 1);
        let mut dropped = Vec::new();
        let own = bucket_of(&entry);
        while self.count(&own) >= AUDIT_PER_BUCKET {
            dropped.extend(self.drop_oldest_of(&own));
        }
        while self.entries.len() >= AUDIT_KEEP {
            // The largest bucket; ties go to the first in (actor, kind) order.
            let Some(largest) = self
                .buckets
                .iter()
                .rev()
                .max_by_key(|(_, seqs)| seqs.len())
                .map(|(bucket, _)| bucket.clone())
            else {
                break;
            };
            dropped.extend(self.drop_oldest_of(&largest));
        }
        entry.seq = seq;
        self.load(entry);
        (seq, dropped)
    }

    fn count(&self, bucket: &Bucket) -> usize {
        self.buckets.get(bucket).map_or(0, BTreeSet::len)
    }

    fn drop_oldest_of(&mut self, bucket: &Bucket) -> Option<u64> {
        let seqs = self.buckets.get_mut(bucket)?;
        let oldest = seqs.pop_first()?;
        if seqs.is_empty() {
            self.buckets.remove(bucket);
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
    /// every admin and cluster entry in place, and the member's own key issue too, and
    /// keep the member's latest token changes.
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
            (Some("mallory"), "api_key_issued"),
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
            kind: Some("hf_token_set".into()),
            ..Default::default()
        };
        let kept = log.select(&mallory);
        assert_eq!(kept.len(), AUDIT_PER_BUCKET);
        assert_eq!(kept.last().unwrap().at_ms, 20_001);
        assert_eq!(log.values().count(), AUDIT_PER_BUCKET + security.len());
    }

    /// Two logs fed the same entries end up identical, and a log rebuilt from its stored
    /// entries equals the one that wrote them (every node evicts the same entries).
    #[test]
    fn retention_is_deterministic_and_survives_a_reload() {
        let feed = |log: &mut AuditLog| {
            for i in 0..(2 * AUDIT_PER_BUCKET as i64 + 50) {
                log.append(entry(Some(if i % 3 == 0 { "a" } else { "b" }), "k", i));
            }
        };
        let (mut one, mut two) = (AuditLog::default(), AuditLog::default());
        feed(&mut one);
        feed(&mut two);
        assert_eq!(one, two);
        assert!(
            one.values().count() < 2 * AUDIT_PER_BUCKET + 50,
            "nothing was dropped"
        );
        let reloaded = AuditLog::from_entries(one.values().cloned());
        assert_eq!(reloaded, one);
    }

    /// Above the global cap the largest bucket pays, not the smallest one.
    #[test]
    fn the_global_cap_takes_from_the_largest_bucket() {
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
    /// bucket's limit at the actor's next entry of that kind.
    #[test]
    fn an_actor_over_its_limit_from_older_data_is_trimmed_at_its_next_entry() {
        let old = (1..=10_000u64).map(|seq| AuditEntry {
            seq,
            ..entry(Some("m"), "hf_token_set", seq as i64)
        });
        let mut log = AuditLog::from_entries(old);
        let (seq, dropped) = log.append(entry(Some("m"), "hf_token_set", 10_001));
        assert_eq!(seq, 10_001);
        assert_eq!(dropped.len(), 10_000 - AUDIT_PER_BUCKET + 1);
        assert_eq!(log.values().count(), AUDIT_PER_BUCKET);
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
