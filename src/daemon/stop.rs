//! How a node ends, within a bound: SIGTERM ends the process within [`STOP_WITHIN`] whatever
//! hangs (a vLLM that ignores SIGTERM, a request stuck on a dead disk, sled's flush on a full
//! one). Each step of the stop gets a cap and all share one deadline; a step cut short is
//! logged and the next one runs. A watchdog thread, which needs nothing of the async runtime,
//! ends the process if even that overruns (or if dropping what is left blocks).

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use anyhow::anyhow;
use tokio::time::Instant;

/// A node ends within this long of being told to stop.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);
/// The watchdog fires this much before [`STOP_WITHIN`], so the process is gone in time.
const WATCHDOG_MARGIN: Duration = Duration::from_millis(500);
/// The steps share this much; the rest is for ending the process.
const STEPS_WITHIN: Duration = Duration::from_millis(8500);
/// A step other than the runner's normally takes milliseconds.
pub(super) const STEP: Duration = Duration::from_secs(1);
/// The runner: its vLLM processes' grace, then reaping them and a last report.
pub(super) const RUNNER_SLACK: Duration = Duration::from_secs(2);

/// What the process does once stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Told to stop (SIGTERM, Ctrl-C): exit, 0 if every step went well.
    Exit,
    /// The storage works again after a failure: start afresh in this same process.
    RestartInPlace,
}

/// A stop under way.
pub(super) struct Stopping {
    ending: Ending,
    deadline: Instant,
    problems: Vec<String>,
}

impl Stopping {
    /// Start stopping now, and arm the watchdog: past its time it exits non-zero (or, for a
    /// restart, execs anyway).
    pub(super) fn start(ending: Ending) -> Stopping {
        let spawned = std::thread::Builder::new()
            .name("helix-stop-watchdog".into())
            .spawn(move || {
                std::thread::sleep(STOP_WITHIN - WATCHDOG_MARGIN);
                tracing::error!("the node did not stop within {STOP_WITHIN:?}; ending it now");
                if ending == Ending::RestartInPlace {
                    let e = restart_in_place();
                    tracing::error!(error = %e, "cannot restart in place");
                }
                std::process::exit(1);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the stop watchdog");
        }
        Stopping::within(ending, STEPS_WITHIN)
    }

    fn within(ending: Ending, budget: Duration) -> Stopping {
        Stopping {
            ending,
            deadline: Instant::now() + budget,
            problems: Vec::new(),
        }
    }

    /// Run `step` for at most `cap`, and never past the shared deadline. A step that fails
    /// or is cut short is logged and remembered; the stop goes on.
    pub(super) async fn step(
        &mut self,
        what: &str,
        cap: Duration,
        step: impl Future<Output = Result<(), String>>,
    ) {
        let deadline = self.deadline.min(Instant::now() + cap);
        let problem = match tokio::time::timeout_at(deadline, step).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("{what} failed: {e}"),
            Err(_) => format!("{what} did not stop in time (gave up after {cap:?} at most)"),
        };
        tracing::error!("stopping: {problem}");
        self.problems.push(problem);
    }

    /// Exit, or restart in place. `Ok` only for a clean exit.
    pub(super) fn finish(self) -> anyhow::Result<()> {
        match self.ending {
            Ending::RestartInPlace => {
                Err(anyhow!("cannot restart in place: {}", restart_in_place()))
            }
            Ending::Exit if self.problems.is_empty() => Ok(()),
            Ending::Exit => Err(anyhow!(
                "stopped, but not cleanly: {}",
                self.problems.join("; ")
            )),
        }
    }
}

/// Replace this process with a fresh run of the same binary, same argv and environment
/// (argv carries no secret that is not there already). The pid stays, so a supervisor sees
/// no exit. Every file and socket helix opens is close-on-exec, so the new run finds the
/// ports free and sled's lock released. Returns only if the exec failed.
pub(super) fn restart_in_place() -> std::io::Error {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "helix".into());
    std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_fires_before_the_promise() {
        assert!(STEPS_WITHIN + WATCHDOG_MARGIN < STOP_WITHIN);
        let slowest_runner = Duration::from_millis(crate::config::MAX_STOP_GRACE_MS) + RUNNER_SLACK;
        assert!(
            slowest_runner < STEPS_WITHIN,
            "the runner's cap fits the budget"
        );
    }

    #[tokio::test]
    async fn a_step_is_cut_at_its_cap_and_the_stop_goes_on() {
        let mut stopping = Stopping::within(Ending::Exit, STOP_WITHIN);
        let cap = Duration::from_millis(50);
        let started = Instant::now();
        stopping
            .step("a hung flush", cap, std::future::pending())
            .await;
        assert!(started.elapsed() >= cap);
        assert!(started.elapsed() < STOP_WITHIN, "cut at its cap");
        stopping.step("raft", cap, async { Ok(()) }).await;
        stopping
            .step("the servers", cap, async { Err("boom".into()) })
            .await;
        let err = stopping.finish().unwrap_err().to_string();
        assert!(err.contains("a hung flush did not stop in time"), "{err}");
        assert!(err.contains("the servers failed: boom"), "{err}");
        assert!(!err.contains("raft"), "{err}");
    }

    #[tokio::test]
    async fn steps_share_one_deadline() {
        let budget = Duration::from_millis(100);
        let mut stopping = Stopping::within(Ending::Exit, budget);
        let started = Instant::now();
        for _ in 0..3 {
            stopping
                .step("the runner", STOP_WITHIN, std::future::pending())
                .await;
        }
        assert!(started.elapsed() >= budget);
        assert!(started.elapsed() < STOP_WITHIN, "one deadline for all");
        assert_eq!(stopping.problems.len(), 3);
    }
}
