//! Watches one slot's vLLM processes (the test double) on every node while faults come and
//! go: the model must never run on two nodes at once for longer than the design allows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::fake_vllm::live_fakes_under;

/// How often the processes are counted.
const EVERY: Duration = Duration::from_millis(50);

/// What the watch saw.
#[derive(Debug, Clone, Default)]
pub struct Overlaps {
    /// Samples taken.
    pub samples: u64,
    /// Stretches during which two or more processes of the slot were alive at once.
    pub stretches: u64,
    /// The longest such stretch (from its first sample to its last).
    pub longest: Duration,
}

pub struct OverlapWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Overlaps>,
}

impl OverlapWatch {
    /// Counts the live test doubles of `slot_id` under the test's temp dir `root`.
    pub fn start(root: PathBuf, slot_id: String) -> OverlapWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let mut seen = Overlaps::default();
            let mut since: Option<Instant> = None;
            while !stopping.load(Ordering::Relaxed) {
                let now = Instant::now();
                let twice = live_fakes_under(&root, &slot_id).len() > 1;
                seen.samples += 1;
                match (twice, since) {
                    (true, None) => {
                        seen.stretches += 1;
                        since = Some(now);
                    }
                    (true, Some(t)) => seen.longest = seen.longest.max(now - t),
                    (false, _) => since = None,
                }
                thread::sleep(EVERY);
            }
            seen
        });
        OverlapWatch { stop, thread }
    }

    pub fn stop(self) -> Overlaps {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the overlap watch panicked")
    }
}
