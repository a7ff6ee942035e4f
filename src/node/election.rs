//! Leader elections with pre-vote, on top of openraft.
//!
//! openraft 0.9 starts an election by itself once a follower has not heard from its leader
//! for a while, and bumps the term to do it. Two things follow on a busy machine. A follower
//! that merely stalled (a slow flush, a starved thread) deposes a healthy leader, since the
//! leader steps down as soon as it sees the higher term. And when the first candidate after a
//! real leader death is the follower one entry behind, the other follower refuses it without
//! adopting its term, so its own election collides with that term and costs another round.
//!
//! So helix switches openraft's election timer off and decides here. A voter that has heard
//! from no leader for its election timeout (drawn anew for every attempt) first asks the other
//! voters whether they would vote for it, the pre-vote of the Raft thesis (§9.6), and only
//! when a majority says yes does it start openraft's election. A voter says yes only when it
//! has not heard from a leader for the leader lease either (a leader: when a quorum has not
//! answered it for that long) and when the candidate's log is at least as long as its own;
//! a stalled follower thus gets no and leaves the term alone. A working leader never grants,
//! and its no is a veto: openraft's core waits for each log flush before it sends anything,
//! heartbeats included, so a leader whose disk stalls goes silent without being gone; it
//! keeps vetoing while its core answers and a quorum answered it within the stall tolerance
//! (four election timeouts). Nor does a voter grant while
//! its own campaign is under way (for a lease after its own pre-vote), unless the candidate
//! has more log: two followers that time out together would otherwise both campaign, and the
//! loser's higher term would depose the winner at once. A voter that refuses only for the log, with no leader for the lease
//! itself, campaigns at once: it is the one that can win, and the leader is gone for both.
//! The lease is the shortest election timeout and is also what openraft's vote handling
//! enforces, so the voters that grant a pre-vote normally grant the election that follows
//! (not always: a pre-vote compares logs, not terms, and a voter whose core lags may still
//! hold openraft's lease; either costs one more round, never a leader). Granting a real vote
//! restarts a voter's timer, as in Raft, and a candidate re-checks before it campaigns that
//! no leader appeared while its pre-vote was under way.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, RaftMetrics, ServerState};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::Cluster;
use crate::config::RaftTuning;
use crate::raft::types::LogId;
use crate::raft::NodeId;

pub const PRE_VOTE_PATH: &str = "/raft/pre-vote";

/// "Would you vote for me if I started an election now?" Changes nothing on the receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    pub last_log_id: Option<LogId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub granted: bool,
    /// The answer comes from a working leader: the candidate stands down whatever the others
    /// say, since a leader it can reach is not dead, only slow to send.
    pub live_leader: bool,
}

/// When this node last heard from a leader it accepts: an append (heartbeats included) or a
/// snapshot that its Raft did not refuse for a stale term. Starts at process start, so a
/// restarted node gives a running leader one election timeout to reach it.
#[derive(Clone)]
pub struct LeaderContact {
    last: Arc<Mutex<Instant>>,
    /// Rung when we refused a pre-vote only because the candidate's log is behind ours while
    /// we too have heard from no leader for the lease: we are the better candidate, so we
    /// campaign at once instead of waiting for our own timeout.
    campaign_now: Arc<Notify>,
    /// When we last asked for a pre-vote ourselves. For a lease after that we refuse others'
    /// pre-votes: two followers that time out together would otherwise grant each other,
    /// both campaign, and the loser's higher term would depose the winner at once.
    campaigning_since: Arc<Mutex<Option<Instant>>>,
    /// When our Raft core last answered a probe. openraft's core waits for every log flush
    /// before it sends anything, heartbeats included, so a disk that stalls silences a
    /// leader that is otherwise fine; it still vetoes elections as long as its core answers
    /// within the stall tolerance.
    core_answered: Arc<Mutex<Instant>>,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            last: Arc::new(Mutex::new(Instant::now())),
            campaign_now: Arc::new(Notify::new()),
            campaigning_since: Arc::default(),
            core_answered: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

impl LeaderContact {
    pub fn heard(&self) {
        *self.last.lock().expect("leader contact lock poisoned") = Instant::now();
    }

    pub fn silence(&self) -> Duration {
        self.last
            .lock()
            .expect("leader contact lock poisoned")
            .elapsed()
    }

    fn start_campaign(&self) {
        *self
            .campaigning_since
            .lock()
            .expect("leader contact lock poisoned") = Some(Instant::now());
    }

    fn core_answered_within(&self, span: Duration) -> bool {
        self.core_answered
            .lock()
            .expect("leader contact lock poisoned")
            .elapsed()
            < span
    }

    fn campaigning_within(&self, span: Duration) -> bool {
        self.campaigning_since
            .lock()
            .expect("leader contact lock poisoned")
            .is_some_and(|t| t.elapsed() < span)
    }
}

/// The leader lease: how long after hearing from a leader a voter refuses to elect another.
/// openraft enforces the same span on real votes (its lease is its `election_timeout_max`,
/// which [`openraft_timing`] sets to this).
pub fn lease(tuning: &RaftTuning) -> Duration {
    tuning.election_timeout_min
}

/// openraft's own election timer is off (see the module note); of its timing only the
/// heartbeat and the lease (its `election_timeout_max`) still matter.
pub fn openraft_timing(tuning: &RaftTuning) -> (u64, u64, u64) {
    let heartbeat = tuning.heartbeat.as_millis() as u64;
    let lease = lease(tuning).as_millis() as u64;
    (heartbeat, (heartbeat + lease) / 2, lease)
}

impl Cluster {
    /// The receiver's side of a pre-vote.
    pub fn pre_vote_local(&self, request: &PreVoteRequest) -> PreVoteResponse {
        let lease = lease(&self.tuning);
        let metrics = self.raft.metrics().borrow().clone();
        let live_leader = metrics.state == ServerState::Leader && {
            // A leader that is reachable, whose core works and which a quorum answered
            // lately (from our own transport's records: metrics are only published when
            // something changes) is alive, however long its last flush took.
            // The stall tolerance: past it a leader whose process answers but whose core
            // does not is treated as gone.
            let tolerance = self.tuning.reachable_within();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let answered = voters
                .iter()
                .filter(|&&v| {
                    v == self.node_id
                        || self
                            .contact
                            .since_last_answer(v)
                            .is_some_and(|d| d < tolerance)
                })
                .count();
            answered * 2 > voters.len() && self.leader_contact.core_answered_within(tolerance)
        };
        let leader_alive = live_leader
            || (metrics.state != ServerState::Leader && self.leader_contact.silence() < lease);
        let campaigning = self.leader_contact.campaigning_within(lease);
        let own_last = self.raft.data_metrics().borrow().last_log;
        let log_ok = request.last_log_id >= own_last;
        // A candidate with more log than ours wins over our own campaign, which it refuses.
        let granted = !leader_alive && log_ok && (!campaigning || request.last_log_id > own_last);
        if !leader_alive && !log_ok {
            self.leader_contact.campaign_now.notify_one();
        }
        tracing::debug!(
            candidate = request.candidate,
            granted,
            live_leader,
            leader_alive,
            campaigning,
            log_ok,
            "pre-vote request"
        );
        PreVoteResponse {
            granted,
            live_leader,
        }
    }
}

/// Runs on every node until shutdown: starts elections when a voter has heard from no leader
/// for its election timeout and a majority grants the pre-vote.
/// openraft's own timer must be off (`runtime_config().elect(false)`) before this runs.
pub async fn run(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(probe_core(cluster.clone(), shutdown.clone()));
    let tuning = cluster.tuning.clone();
    let mut timeout = draw_timeout(&tuning);
    let mut last_attempt: Option<Instant> = None;
    let mut better_candidate = false;
    // Refused pre-votes since we last heard from a leader: only the first is logged at info,
    // so a member cut off from the majority does not fill its log.
    let mut refusals = 0u32;
    loop {
        let metrics = cluster.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let silence = cluster.leader_contact.silence();
        if silence < lease(&tuning) {
            refusals = 0;
        }
        let quiet = silence.min(last_attempt.map_or(Duration::MAX, |t| t.elapsed()));
        let campaigning = metrics.state != ServerState::Leader
            && membership.voter_ids().any(|v| v == cluster.node_id)
            && (quiet >= timeout || (better_candidate && quiet >= lease(&tuning)));
        better_candidate = false;
        if metrics.state == ServerState::Leader {
            // Leading counts as hearing from a leader: one that steps down waits a full
            // timeout before it campaigns.
            cluster.leader_contact.heard();
        }
        if campaigning {
            cluster.leader_contact.start_campaign();
            last_attempt = Some(Instant::now());
            timeout = draw_timeout(&tuning);
            let request = PreVoteRequest {
                candidate: cluster.node_id,
                last_log_id: cluster.raft.data_metrics().borrow().last_log,
            };
            let last_leader = metrics.current_leader;
            if pre_vote(&cluster, &membership, last_leader, &request).await
                && still_leaderless(&cluster, &metrics)
            {
                tracing::info!(
                    term = metrics.current_term + 1,
                    silent_ms = silence.as_millis() as u64,
                    "no leader heard from and a majority granted the pre-vote: starting an election"
                );
                if let Err(e) = cluster.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "could not start an election");
                }
            } else {
                refusals += 1;
                let silent_ms = silence.as_millis() as u64;
                if refusals == 1 {
                    tracing::info!(
                        silent_ms,
                        "no leader heard from, but a majority refused the pre-vote: not \
                         campaigning (further refusals are logged at debug level)"
                    );
                } else {
                    tracing::debug!(silent_ms, refusals, "pre-vote refused again");
                }
            }
            continue;
        }
        // Wake when the timeout would run out, or after a heartbeat to look again.
        let wait = timeout.saturating_sub(quiet).min(tuning.heartbeat);
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            _ = cluster.leader_contact.campaign_now.notified() => better_candidate = true,
            _ = shutdown.changed() => return,
        }
    }
}

/// The pre-vote can take up to a lease (waiting for the last leader's answer): campaign only
/// if meanwhile no leader was heard from, no vote was granted and our vote did not change.
/// Otherwise a candidate elected in the meantime would be deposed by our higher term.
fn still_leaderless(cluster: &Cluster, before: &RaftMetrics<NodeId, BasicNode>) -> bool {
    let now = cluster.raft.metrics().borrow().clone();
    now.vote == before.vote
        && now.state != ServerState::Leader
        && cluster.leader_contact.silence() >= lease(&cluster.tuning)
}

/// Records, every heartbeat, that our Raft core still answers messages, and warns when it
/// took longer than the lease: a leader that slow sends no heartbeats meanwhile.
async fn probe_core(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    loop {
        let asked = Instant::now();
        tokio::select! {
            answer = cluster.raft.with_raft_state(|_| ()) => {
                if answer.is_err() {
                    return; // the core has stopped: never answers again
                }
                let took = asked.elapsed();
                if took >= lease(&cluster.tuning) {
                    tracing::warn!(
                        took_ms = took.as_millis() as u64,
                        "the Raft core was busy for longer than the election lease"
                    );
                }
                *cluster
                    .leader_contact
                    .core_answered
                    .lock()
                    .expect("leader contact lock poisoned") = Instant::now();
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(cluster.tuning.heartbeat) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn draw_timeout(tuning: &RaftTuning) -> Duration {
    let min = tuning.election_timeout_min.as_millis() as u64;
    let max = tuning.election_timeout_max.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(min..max))
}

/// Asks the other voters; true once every configuration (two during a membership change)
/// has a majority that grants, counting ourselves, and the leader we last followed has not
/// vetoed: its answer (or its failure: a dead process refuses the connection at once; a
/// silent host costs at most the lease) is awaited even when the others grant first.
async fn pre_vote(
    cluster: &Cluster,
    membership: &openraft::Membership<NodeId, openraft::BasicNode>,
    last_leader: Option<NodeId>,
    request: &PreVoteRequest,
) -> bool {
    let configs = membership.get_joint_config().clone();
    let mut granted = BTreeSet::from([cluster.node_id]);
    let quorum = |granted: &BTreeSet<NodeId>| {
        configs
            .iter()
            .all(|voters| voters.intersection(granted).count() * 2 > voters.len())
    };
    let mut asks = JoinSet::new();
    for voter in membership.voter_ids().filter(|&v| v != cluster.node_id) {
        let Some(addr) = membership.get_node(&voter).map(|n| n.addr.clone()) else {
            continue;
        };
        let peers = cluster.peers.clone();
        let request = request.clone();
        let wait = lease(&cluster.tuning);
        asks.spawn(async move {
            let answer: Result<PreVoteResponse, _> =
                peers.call(&addr, PRE_VOTE_PATH, &request, wait).await;
            (voter, answer.ok())
        });
    }
    let mut leader_pending =
        last_leader.is_some_and(|l| l != cluster.node_id && membership.voter_ids().any(|v| v == l));
    while leader_pending || !quorum(&granted) {
        match asks.join_next().await {
            Some(Ok((voter, answer))) => {
                if Some(voter) == last_leader {
                    leader_pending = false;
                }
                match answer {
                    Some(a) if a.live_leader => return false,
                    Some(a) if a.granted => {
                        granted.insert(voter);
                    }
                    _ => {}
                }
            }
            Some(Err(_)) => {}
            None => return quorum(&granted),
        }
    }
    true
}
