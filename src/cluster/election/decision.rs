//! The pre-vote rules as pure functions of what a node knows, so each can be tested alone.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::raft::{LogPosition, NodeId};

/// What a voter knows when a candidate asks for its pre-vote.
#[derive(Debug, Clone)]
pub struct VoterView {
    /// This node leads, its Raft core answers and a quorum answered it within the stall
    /// tolerance: a working leader, however long its last flush took.
    pub working_leader: bool,
    pub is_leader: bool,
    /// Time since this node last heard from a leader it accepts.
    pub leader_silence: Duration,
    /// The leader lease: a voter that heard from a leader within it elects no other.
    pub lease: Duration,
    /// This node asked for pre-votes itself within the lease.
    pub campaigning: bool,
    pub own_last_log: Option<LogPosition>,
}

/// A voter's answer to a pre-vote, and whether it should campaign itself at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreVoteDecision {
    pub granted: bool,
    /// The answer is a working leader's: a veto.
    pub live_leader: bool,
    /// Refused only because the candidate's log is behind ours, with no leader for the
    /// lease: we are the better candidate.
    pub campaign_now: bool,
}

/// Grant only with no leader alive for the lease and a candidate log at least as long as
/// ours; while campaigning ourselves, only to a candidate with more log than ours (two
/// followers timing out together would otherwise both campaign, and the loser's higher term
/// would depose the winner at once).
pub fn decide(voter: &VoterView, candidate_last_log: Option<LogPosition>) -> PreVoteDecision {
    let live_leader = voter.is_leader && voter.working_leader;
    let leader_alive = live_leader || (!voter.is_leader && voter.leader_silence < voter.lease);
    let log_ok = candidate_last_log >= voter.own_last_log;
    let granted =
        !leader_alive && log_ok && (!voter.campaigning || candidate_last_log > voter.own_last_log);
    PreVoteDecision {
        granted,
        live_leader,
        campaign_now: !leader_alive && !log_ok,
    }
}

/// A leader is working when a majority of the voters (itself included) answered it within
/// the tolerance, and its own Raft core answers.
pub fn leader_is_working(
    me: NodeId,
    voters: &BTreeSet<NodeId>,
    answered_within_tolerance: impl Fn(NodeId) -> bool,
    core_answers: bool,
) -> bool {
    let answered = voters
        .iter()
        .filter(|&&v| v == me || answered_within_tolerance(v))
        .count();
    core_answers && answered * 2 > voters.len()
}

/// What a node knows when it considers campaigning.
#[derive(Debug, Clone)]
pub struct CandidateView {
    pub is_leader: bool,
    pub is_voter: bool,
    /// Time since it last heard from a leader or last campaigned, whichever is shorter.
    pub quiet: Duration,
    /// This attempt's election timeout, drawn anew each time.
    pub timeout: Duration,
    pub lease: Duration,
    /// A voter refused our candidate for a shorter log than ours: campaign after the lease.
    pub better_candidate: bool,
}

pub fn should_campaign(v: &CandidateView) -> bool {
    !v.is_leader
        && v.is_voter
        && (v.quiet >= v.timeout || (v.better_candidate && v.quiet >= v.lease))
}

/// Every voter configuration (two during a membership change) has a majority in `granted`.
pub fn has_quorum(configs: &[BTreeSet<NodeId>], granted: &BTreeSet<NodeId>) -> bool {
    configs
        .iter()
        .all(|voters| voters.intersection(granted).count() * 2 > voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(150);

    fn log(term: u64, index: u64) -> Option<LogPosition> {
        Some(LogPosition { term, index })
    }

    fn follower(silence_ms: u64) -> VoterView {
        VoterView {
            working_leader: false,
            is_leader: false,
            leader_silence: Duration::from_millis(silence_ms),
            lease: LEASE,
            campaigning: false,
            own_last_log: log(2, 10),
        }
    }

    #[test]
    fn a_follower_that_heard_from_its_leader_refuses() {
        let d = decide(&follower(20), log(2, 10));
        assert!(!d.granted && !d.live_leader && !d.campaign_now);
    }

    #[test]
    fn after_the_lease_a_candidate_with_as_much_log_is_granted() {
        assert!(decide(&follower(200), log(2, 10)).granted);
        assert!(
            decide(&follower(200), log(3, 1)).granted,
            "a later term is more log"
        );
    }

    #[test]
    fn a_candidate_with_less_log_is_refused_and_the_voter_campaigns() {
        let d = decide(&follower(200), log(2, 9));
        assert!(!d.granted);
        assert!(d.campaign_now, "the voter has the better log and no leader");
        let d = decide(&follower(20), log(2, 9));
        assert!(!d.campaign_now, "not while its leader is alive");
    }

    #[test]
    fn a_working_leader_vetoes() {
        let leader = VoterView {
            working_leader: true,
            is_leader: true,
            leader_silence: Duration::from_secs(10),
            ..follower(0)
        };
        let d = decide(&leader, log(9, 99));
        assert!(!d.granted && d.live_leader);
        // A leader whose core or quorum stopped answering is no veto.
        let stuck = VoterView {
            working_leader: false,
            ..leader
        };
        let d = decide(&stuck, log(9, 99));
        assert!(d.granted && !d.live_leader);
    }

    #[test]
    fn a_campaigning_voter_grants_only_more_log_than_its_own() {
        let voter = VoterView {
            campaigning: true,
            ..follower(200)
        };
        assert!(!decide(&voter, log(2, 10)).granted);
        assert!(decide(&voter, log(2, 11)).granted);
    }

    #[test]
    fn a_leader_works_with_a_quorum_and_its_core() {
        let voters = BTreeSet::from([1, 2, 3]);
        assert!(leader_is_working(1, &voters, |v| v == 2, true));
        assert!(!leader_is_working(1, &voters, |_| false, true));
        assert!(!leader_is_working(1, &voters, |_| true, false));
    }

    #[test]
    fn campaigns_start_after_the_timeout_or_early_for_a_better_candidate() {
        let v = CandidateView {
            is_leader: false,
            is_voter: true,
            quiet: Duration::from_millis(200),
            timeout: Duration::from_millis(250),
            lease: LEASE,
            better_candidate: false,
        };
        assert!(!should_campaign(&v));
        assert!(should_campaign(&CandidateView {
            better_candidate: true,
            ..v.clone()
        }));
        assert!(should_campaign(&CandidateView {
            quiet: Duration::from_millis(250),
            ..v.clone()
        }));
        assert!(!should_campaign(&CandidateView {
            is_voter: false,
            quiet: Duration::from_secs(9),
            ..v.clone()
        }));
        assert!(!should_campaign(&CandidateView {
            is_leader: true,
            quiet: Duration::from_secs(9),
            ..v
        }));
    }

    #[test]
    fn joint_configurations_need_a_majority_of_each() {
        let configs = vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([3, 4, 5])];
        assert!(!has_quorum(&configs, &BTreeSet::from([1, 2])));
        assert!(has_quorum(&configs, &BTreeSet::from([1, 3, 4])));
    }
}
