//! Issue 15, chaos with every history checked: clients write and read a set of keys while
//! faults are injected ([`workload`]), every operation is recorded ([`history`]), and a checker
//! proves each key's history linearizable and no acknowledged write lost
//! ([`linearizability`]).
//!
//! - [`healthy`]: the workload on a cluster without faults.
//! - [`suite`]: the chaos suite itself: [`faults`] one after another in a lab of network
//!   namespaces, the model's processes watched ([`overlap`]), stalls the nodes logged
//!   ([`stalls`]), and the [`report`] that `docs/reliability.md` shows.

pub mod faults;
pub mod history;
pub mod linearizability;
pub mod overlap;
pub mod report;
pub mod stalls;
pub mod workload;

mod healthy;
mod suite;

// What the chaos scenarios use.
#[allow(unused_imports)]
pub use history::{Counts, History, Op, OpKind, Outcome, Tally, INITIAL_VALUE};
#[allow(unused_imports)]
pub use linearizability::{check, check_with_limit, KeyResult, KeyVerdict, LostWrite, Verdict};
#[allow(unused_imports)]
pub use workload::{Workload, WorkloadSpec};
