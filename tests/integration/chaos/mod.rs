//! Issue 15, chaos with every history checked: clients write and read a set of keys while
//! faults are injected, record every operation ([`history`]), and a checker proves each
//! key's history linearizable and no acknowledged write lost ([`linearizability`]).

pub mod faults;
pub mod history;
pub mod linearizability;
pub mod overlap;
pub mod report;
pub mod stalls;
mod suite;

// What the chaos scenarios use.
#[allow(unused_imports)]
pub use history::{Counts, History, Op, OpKind, Outcome, Tally, Workload, WorkloadSpec};
#[allow(unused_imports)]
pub use linearizability::{check, check_with_limit, KeyResult, KeyVerdict, LostWrite, Verdict};
