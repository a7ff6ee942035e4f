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

mod decision;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use self::decision::{CandidateView, VoterView};
use super::Cluster;
use crate::config::RaftTuning;
use crate::peer::{PreVoteRequest, PreVoteResponse};
use crate::raft::{Membership, NodeId, RaftStatus};

/// When this node last heard from a leader it accepts: an append (heartbeats included) or a
/// snapshot that its Raft did not refuse for a stale term. Starts at process start, so a
/// restarted node gives a running leader one election timeout to reach it.
#[derive(Clone)]
pub(super) struct LeaderContact {
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
    /// When a majority of the voters last granted one of our pre-vote rounds: none of them
    /// follows a leader, so none is moving our slots (`quorum.rs`).
    pre_vote_quorum: Arc<Mutex<Option<Instant>>>,
    /// When the leader last heard from us, as it told us (`quorum.rs`). Starts at process
    /// start, like `last`.
    leader_heard_us: Arc<Mutex<Instant>>,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            last: Arc::new(Mutex::new(Instant::now())),
            campaign_now: Arc::new(Notify::new()),
            campaigning_since: Arc::default(),
            core_answered: Arc::new(Mutex::new(Instant::now())),
            pre_vote_quorum: Arc::default(),
            leader_heard_us: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

impl LeaderContact {
    pub(super) fn heard(&self) {
        *self.last.lock().expect("leader contact lock poisoned") = Instant::now();
    }

    /// A leader heard from a quorum at `at`: to itself it is its own leader until then.
    fn heard_at(&self, at: Instant) {
        *self.last.lock().expect("leader contact lock poisoned") = at;
    }

    pub(in crate::cluster) fn leader_heard_us_at(&self, at: Instant) {
        let mut last = self
            .leader_heard_us
            .lock()
            .expect("leader contact lock poisoned");
        *last = (*last).max(at);
    }

    /// How long since the leader last heard from us, as it told us.
    pub(in crate::cluster) fn leader_silence_of_us(&self) -> Duration {
        self.leader_heard_us
            .lock()
            .expect("leader contact lock poisoned")
            .elapsed()
    }

    fn pre_vote_quorum_granted(&self) {
        *self
            .pre_vote_quorum
            .lock()
            .expect("leader contact lock poisoned") = Some(Instant::now());
    }

    /// How long since a majority last granted one of our pre-vote rounds; `MAX`: never.
    pub(in crate::cluster) fn pre_vote_quorum_silence(&self) -> Duration {
        self.pre_vote_quorum
            .lock()
            .expect("leader contact lock poisoned")
            .map_or(Duration::MAX, |t| t.elapsed())
    }

    pub(in crate::cluster) fn silence(&self) -> Duration {
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

    fn core_answered(&self) {
        *self
            .core_answered
            .lock()
            .expect("leader contact lock poisoned") = Instant::now();
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

impl Cluster {
    /// The receiver's side of a pre-vote.
    pub(super) fn pre_vote_local(&self, request: &PreVoteRequest) -> PreVoteResponse {
        let tuning = &self.inner.tuning;
        let contact = &self.inner.leader_contact;
        let status = self.inner.raft.status();
        // The stall tolerance: past it a leader whose process answers but whose core does
        // not is treated as gone. Who answered comes from our own transport's records:
        // Raft's status is only published when something changes.
        let tolerance = tuning.reachable_within();
        let working_leader = status.is_leader
            && decision::leader_is_working(
                self.node_id(),
                &status.membership.voters(),
                |v| {
                    self.inner
                        .peers
                        .contact()
                        .since_last_answer(v)
                        .is_some_and(|d| d < tolerance)
                },
                contact.core_answered_within(tolerance),
            );
        let voter = VoterView {
            working_leader,
            is_leader: status.is_leader,
            leader_silence: contact.silence(),
            lease: tuning.leader_lease(),
            campaigning: contact.campaigning_within(tuning.leader_lease()),
            own_last_log: self.inner.raft.last_log(),
        };
        let mut d = decision::decide(&voter, request.last_log);
        // A node whose storage failed cannot vote: its grant would only mislead.
        d.granted &= status.storage_failure.is_none();
        if d.campaign_now {
            contact.campaign_now.notify_one();
        }
        tracing::debug!(
            candidate = request.candidate,
            granted = d.granted,
            live_leader = d.live_leader,
            campaigning = voter.campaigning,
            "pre-vote request"
        );
        PreVoteResponse {
            granted: d.granted,
            live_leader: d.live_leader,
        }
    }

    /// This node heard from a leader it accepts (or granted a vote, which restarts the
    /// election timer as in Raft).
    pub(super) fn heard_from_leader(&self) {
        self.inner.leader_contact.heard();
    }
}

/// Runs on every node until shutdown: starts elections when a voter has heard from no leader
/// for its election timeout and a majority grants the pre-vote.
pub(super) async fn run(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(probe_core(cluster.clone(), shutdown.clone()));
    let tuning = cluster.inner.tuning.clone();
    let contact = cluster.inner.leader_contact.clone();
    let lease = tuning.leader_lease();
    let mut timeout = draw_timeout(&tuning);
    let mut last_attempt: Option<Instant> = None;
    let mut better_candidate = false;
    // Refused pre-votes since we last heard from a leader: only the first is logged at info,
    // so a member cut off from the majority does not fill its log.
    let mut refusals = 0u32;
    loop {
        let status = cluster.inner.raft.status();
        if status.storage_failure.is_some() {
            // Raft stopped for good: nothing to campaign with until the node restarts.
            return;
        }
        let silence = contact.silence();
        if silence < lease {
            refusals = 0;
        }
        let quiet = silence.min(last_attempt.map_or(Duration::MAX, |t| t.elapsed()));
        let campaigning = decision::should_campaign(&CandidateView {
            is_leader: status.is_leader,
            is_voter: status.membership.is_voter(cluster.node_id()),
            quiet,
            timeout,
            lease,
            better_candidate,
        });
        better_candidate = false;
        if status.is_leader {
            // Leading counts as hearing from a leader as of when a quorum last answered: one
            // that steps down for another reason waits a full timeout before it campaigns,
            // one that stepped down cut off is cut off as a follower too (`quorum.rs`).
            if let Some(at) = Instant::now().checked_sub(cluster.quorum_silence()) {
                contact.heard_at(at);
                contact.leader_heard_us_at(at);
            }
        }
        if campaigning {
            contact.start_campaign();
            last_attempt = Some(Instant::now());
            timeout = draw_timeout(&tuning);
            let request = PreVoteRequest {
                candidate: cluster.node_id(),
                last_log: cluster.inner.raft.last_log(),
            };
            if ask_for_pre_votes(&cluster, &status.membership, status.leader, &request).await
                && still_leaderless(&cluster, &status)
            {
                tracing::info!(
                    term = status.term + 1,
                    silent_ms = silence.as_millis() as u64,
                    "no leader heard from and a majority granted the pre-vote: starting an election"
                );
                if let Err(e) = cluster.inner.raft.campaign().await {
                    tracing::warn!(error = %e, "could not start an election");
                }
            } else {
                refusals += 1;
                let silent_ms = silence.as_millis() as u64;
                if refusals == 1 {
                    tracing::info!(
                        silent_ms,
                        "no leader heard from, but no majority granted the pre-vote (refused, or \
                         did not answer): not campaigning (further refusals are logged at \
                         debug level)"
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
            _ = contact.campaign_now.notified() => better_candidate = true,
            _ = shutdown.changed() => return,
        }
    }
}

/// The pre-vote can take up to a lease (waiting for the last leader's answer): campaign only
/// if meanwhile no leader was heard from, no vote was granted and our vote did not change.
/// Otherwise a candidate elected in the meantime would be deposed by our higher term.
fn still_leaderless(cluster: &Cluster, before: &RaftStatus) -> bool {
    let now = cluster.inner.raft.status();
    now.vote_stamp == before.vote_stamp
        && !now.is_leader
        && cluster.inner.leader_contact.silence() >= cluster.inner.tuning.leader_lease()
}

/// Records, every heartbeat, that our Raft core still answers messages, and warns when it
/// took longer than the lease: a leader that slow sends no heartbeats meanwhile.
async fn probe_core(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    let lease = cluster.inner.tuning.leader_lease();
    loop {
        let asked = Instant::now();
        tokio::select! {
            answered = cluster.inner.raft.probe_core() => {
                if !answered {
                    return; // the core has stopped: never answers again
                }
                let took = asked.elapsed();
                if took >= lease {
                    tracing::warn!(
                        took_ms = took.as_millis() as u64,
                        "the Raft core was busy for longer than the election lease"
                    );
                }
                cluster.inner.leader_contact.core_answered();
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(cluster.inner.tuning.heartbeat) => {}
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
async fn ask_for_pre_votes(
    cluster: &Cluster,
    membership: &Membership,
    last_leader: Option<NodeId>,
    request: &PreVoteRequest,
) -> bool {
    let me = cluster.node_id();
    let mut granted = BTreeSet::from([me]);
    let mut asks = JoinSet::new();
    for voter in membership.voters().into_iter().filter(|&v| v != me) {
        let Some(addr) = membership.peer_addr(voter).map(str::to_string) else {
            continue;
        };
        let peers = cluster.inner.peers.clone();
        let request = request.clone();
        let wait = cluster.inner.tuning.leader_lease();
        asks.spawn(async move {
            let answer = peers.pre_vote(voter, &addr, &request, wait).await;
            (voter, answer.ok())
        });
    }
    let mut leader_pending = last_leader.is_some_and(|l| l != me && membership.is_voter(l));
    while leader_pending || !decision::has_quorum(membership.configs(), &granted) {
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
            None => break,
        }
    }
    let won = decision::has_quorum(membership.configs(), &granted);
    if won {
        cluster.inner.leader_contact.pre_vote_quorum_granted();
    }
    won
}
