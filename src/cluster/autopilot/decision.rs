//! Autopilot's rules as one pure function of what the leader sees, so each case can be
//! tested alone.

use std::time::Duration;

use crate::raft::NodeId;

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    pub id: NodeId,
    pub voter: bool,
    /// Since it last answered the leader (the leader itself: zero; never since this node
    /// leads: how long it has led).
    pub silence: Duration,
    /// Entries it lacks of the leader's log; `None` when the leader knows of none it holds.
    pub lag: Option<u64>,
}

/// What the leader knows, and the configured bounds.
#[derive(Debug, Clone)]
pub struct AutopilotView {
    pub leader: NodeId,
    pub members: Vec<MemberHealth>,
    pub max_voters: usize,
    /// A voter silent this long is dead (`raft.autopilot_dead_after_ms`).
    pub dead_after: Duration,
    /// A member that answered within this is reachable (the stall tolerance).
    pub reachable_within: Duration,
    /// A learner at most this many entries behind is caught up.
    pub caught_up_within: u64,
}

/// One membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Too few voters: the first learner to have joined (lowest id) among the healthy ones
    /// votes from now on.
    Grow { learner: NodeId },
    /// A voter is dead: the healthiest caught-up learner votes in its place (first, so the
    /// voter count never drops below what it was).
    Replace { learner: NodeId, dead: NodeId },
    /// A dead voter, already replaced (there are more voters than configured), becomes a
    /// learner.
    Demote { dead: NodeId },
}

/// The next change, if any: at most one per call, none without a quorum of reachable
/// voters, and never fewer voters than configured because of a demotion.
pub fn decide(v: &AutopilotView) -> Option<Action> {
    let reachable = |m: &MemberHealth| m.id == v.leader || m.silence < v.reachable_within;
    let voters: Vec<&MemberHealth> = v.members.iter().filter(|m| m.voter).collect();
    let reachable_voters = voters.iter().filter(|m| reachable(m)).count();
    if reachable_voters * 2 <= voters.len() {
        return None;
    }
    let mut healthy: Vec<&MemberHealth> = v
        .members
        .iter()
        .filter(|m| !m.voter && reachable(m))
        .filter(|m| m.lag.is_some_and(|lag| lag <= v.caught_up_within))
        .collect();
    let dead = voters
        .iter()
        .filter(|m| m.id != v.leader && m.silence >= v.dead_after)
        .max_by_key(|m| (m.silence, std::cmp::Reverse(m.id)));
    if let Some(dead) = dead {
        if voters.len() > v.max_voters {
            return Some(Action::Demote { dead: dead.id });
        }
        healthy.sort_by_key(|m| (m.lag, m.silence, m.id));
        return healthy.first().map(|l| Action::Replace {
            learner: l.id,
            dead: dead.id,
        });
    }
    if voters.len() < v.max_voters {
        return healthy
            .iter()
            .map(|m| m.id)
            .min()
            .map(|learner| Action::Grow { learner });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn voter(id: NodeId, silence_s: u64) -> MemberHealth {
        MemberHealth {
            id,
            voter: true,
            silence: S * silence_s as u32,
            lag: Some(0),
        }
    }

    fn learner(id: NodeId, silence_s: u64, lag: u64) -> MemberHealth {
        MemberHealth {
            voter: false,
            lag: Some(lag),
            ..voter(id, silence_s)
        }
    }

    fn view(members: Vec<MemberHealth>) -> AutopilotView {
        AutopilotView {
            leader: 1,
            members,
            max_voters: 5,
            dead_after: S * 10,
            reachable_within: S * 2,
            caught_up_within: 100,
        }
    }

    fn five_voters_and(dead_silence_s: u64, more: Vec<MemberHealth>) -> Vec<MemberHealth> {
        let mut members = vec![
            voter(1, 0),
            voter(2, 0),
            voter(3, dead_silence_s),
            voter(4, 0),
            voter(5, 0),
        ];
        members.extend(more);
        members
    }

    #[test]
    fn the_table() {
        use Action::*;
        let cases: Vec<(&str, AutopilotView, Option<Action>)> = vec![
            (
                "healthy cluster at its voter count: nothing",
                view(five_voters_and(0, vec![learner(6, 0, 0)])),
                None,
            ),
            (
                "too few voters: the first learner to have joined votes",
                view(vec![voter(1, 0), learner(6, 0, 0), learner(2, 0, 5)]),
                Some(Grow { learner: 2 }),
            ),
            (
                "too few voters, but the learner lags: nothing",
                view(vec![voter(1, 0), learner(2, 0, 5000)]),
                None,
            ),
            (
                "too few voters, but the learner is silent: nothing",
                view(vec![voter(1, 0), learner(2, 3, 0)]),
                None,
            ),
            (
                "a voter silent for less than dead_after: nothing",
                view(five_voters_and(9, vec![learner(6, 0, 0)])),
                None,
            ),
            (
                "a dead voter and a healthy learner: the learner votes first",
                view(five_voters_and(10, vec![learner(6, 0, 0)])),
                Some(Replace {
                    learner: 6,
                    dead: 3,
                }),
            ),
            (
                "the healthiest learner is the one closest to the leader's log",
                view(five_voters_and(
                    10,
                    vec![learner(6, 0, 40), learner(7, 0, 3), learner(8, 5, 0)],
                )),
                Some(Replace {
                    learner: 7,
                    dead: 3,
                }),
            ),
            (
                "a dead voter already replaced: it becomes a learner",
                view(five_voters_and(10, vec![voter(6, 0)])),
                Some(Demote { dead: 3 }),
            ),
            (
                "a dead voter and no healthy learner: nothing (never below the voter count)",
                view(five_voters_and(10, vec![learner(6, 30, 0)])),
                None,
            ),
            (
                "a dead voter in a cluster below its voter count, no learner: nothing",
                view(vec![voter(1, 0), voter(2, 0), voter(3, 60)]),
                None,
            ),
            (
                "no quorum of reachable voters: nothing, whatever else",
                view(vec![
                    voter(1, 0),
                    voter(2, 60),
                    voter(3, 60),
                    learner(4, 0, 0),
                ]),
                None,
            ),
            (
                "the leader is never dead to itself",
                AutopilotView {
                    leader: 3,
                    ..view(five_voters_and(60, vec![voter(6, 0)]))
                },
                None,
            ),
        ];
        for (what, v, want) in cases {
            assert_eq!(decide(&v), want, "{what}");
        }
    }
}
