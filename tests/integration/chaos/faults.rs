//! The faults the chaos suite injects, one at a time: each is injected, held, healed, and
//! followed by a wait until the whole cluster agrees on a leader again.
//!
//! Holding a fault for a set time is the fault's shape, not a wait on state: the waits that
//! decide pass or fail are on state, with deadlines.

use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::common::Cluster;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `kill -9` of the leader, restarted once the others elected a new one.
    KillLeader,
    /// The leader cut off from every other node (clients still reach it).
    IsolateLeader,
    /// Two nodes cut off from the other three; the leader is on either side.
    SplitTwoThree,
    /// What the leader sends to one follower is lost; the follower's packets arrive.
    OneWayFromLeader,
    /// What one follower sends to the leader is lost.
    OneWayToLeader,
    /// One node's links go down and up every few hundred milliseconds.
    Flapping,
    /// A third of the packets the leader receives are lost.
    LossAtLeader,
    /// SIGSTOP of the leader, then SIGCONT.
    PauseLeader,
    /// SIGSTOP of a follower, then SIGCONT.
    PauseFollower,
}

/// Every fault but the leader kill, which the suite alternates with these in turn.
pub const ROTATION: [Fault; 8] = [
    Fault::IsolateLeader,
    Fault::SplitTwoThree,
    Fault::PauseLeader,
    Fault::OneWayFromLeader,
    Fault::Flapping,
    Fault::OneWayToLeader,
    Fault::LossAtLeader,
    Fault::PauseFollower,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill -9 of the leader",
            Fault::IsolateLeader => "leader isolated",
            Fault::SplitTwoThree => "2/3 split",
            Fault::OneWayFromLeader => "one-way link, leader to follower lost",
            Fault::OneWayToLeader => "one-way link, follower to leader lost",
            Fault::Flapping => "flapping links",
            Fault::LossAtLeader => "33% loss at the leader",
            Fault::PauseLeader => "SIGSTOP of the leader",
            Fault::PauseFollower => "SIGSTOP of a follower",
        }
    }

    /// A fault of the network between nodes (as opposed to a process fault).
    pub fn is_partition(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader
                | Fault::SplitTwoThree
                | Fault::OneWayFromLeader
                | Fault::OneWayToLeader
                | Fault::Flapping
        )
    }
}

/// What one injected fault did, in time.
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: Fault,
    /// The leader when it was injected, and what else it touched, for the report.
    pub detail: String,
    pub started: Instant,
    pub healed: Instant,
    /// Every node agreed on one leader again.
    pub recovered: Instant,
}

/// How long a partition or a loss is held: long enough for the majority to elect, and at
/// times past the rig's `node_lost_after` (3 s), so that slots move and fencing is tried.
fn hold(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.gen_range(2_000..4_500))
}

/// A pause shorter than `node_lost_after`: a stopped node cannot fence its own processes.
fn pause_hold(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.gen_range(800..2_000))
}

/// Injects `fault` into a settled cluster of `n` nodes, holds it, heals it and waits until
/// every node agrees on a leader again.
pub fn inject(c: &mut Cluster, fault: Fault, rng: &mut StdRng) -> Injected {
    let all: Vec<usize> = (1..=c.nodes.len()).collect();
    let leader = c.wait_leader(&all);
    let followers: Vec<usize> = all.iter().copied().filter(|&k| k != leader).collect();
    let follower = *followers.choose(rng).expect("a follower");
    let started = Instant::now();
    let detail = match fault {
        Fault::KillLeader => {
            c.kill9(leader);
            c.wait_leader(&followers);
            c.restart(leader);
            format!("node{leader}")
        }
        Fault::IsolateLeader => {
            c.isolate(leader);
            thread::sleep(hold(rng));
            c.wait_leader(&followers);
            c.heal();
            format!("node{leader}")
        }
        Fault::SplitTwoThree => {
            let mut shuffled = all.clone();
            shuffled.shuffle(rng);
            let (minority, majority) = shuffled.split_at(2);
            c.partition(minority, majority);
            thread::sleep(hold(rng));
            c.wait_leader(majority);
            c.heal();
            format!("{minority:?} | {majority:?}, leader node{leader}")
        }
        Fault::OneWayFromLeader => {
            c.cut_one_way(leader, follower);
            thread::sleep(hold(rng));
            c.heal();
            format!("node{leader} -x-> node{follower}")
        }
        Fault::OneWayToLeader => {
            c.cut_one_way(follower, leader);
            thread::sleep(hold(rng));
            c.heal();
            format!("node{follower} -x-> node{leader}")
        }
        Fault::Flapping => {
            let flapping = *all.choose(rng).expect("a node");
            let until = Instant::now() + hold(rng);
            while Instant::now() < until {
                c.isolate(flapping);
                thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
                c.heal();
                thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
            }
            format!("node{flapping}, leader node{leader}")
        }
        Fault::LossAtLeader => {
            c.loss(leader, 33);
            thread::sleep(hold(rng));
            c.heal();
            format!("node{leader}")
        }
        Fault::PauseLeader => {
            c.pause(leader);
            thread::sleep(pause_hold(rng));
            c.resume(leader);
            format!("node{leader}")
        }
        Fault::PauseFollower => {
            c.pause(follower);
            thread::sleep(pause_hold(rng));
            c.resume(follower);
            format!("node{follower}, leader node{leader}")
        }
    };
    let healed = Instant::now();
    c.wait_leader(&all);
    Injected {
        fault,
        detail,
        started,
        healed,
        recovered: Instant::now(),
    }
}
