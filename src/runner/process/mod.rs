//! Supervising one vLLM process: launch, log capture with the token redacted, exit watching,
//! stopping its whole process group, and cleaning up after a crash of helix itself.
//!
//! Each vLLM runs in its own session (so its process group id is its pid), carries
//! `HELIX_SLOT_ID=<slot>` in its environment, and has `PR_SET_PDEATHSIG=SIGKILL` so that a
//! `kill -9` of helix takes it down. Its pid is kept in `<slot_dir>/pid` until it is stopped,
//! which is what [`kill_strays`] reads after a restart.
//!
//! The Hugging Face token is only ever put in the child's environment: never in argv, never
//! in a log line of ours, and every occurrence of it in the child's output is replaced with
//! `***` before it reaches `vllm.log`.
//!
//! Here: spawning and stopping (tested in `tests`). `output`: the child's output into
//! `vllm.log`, redacted. `strays`: the pid file and the sweep after a crash of helix.

mod output;
mod strays;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use output::log_tail;
pub use strays::kill_strays;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use output::{copy_to_log, open_log};
use strays::{remove_pid_file_if, write_pid_file, PID_FILE, SLOT_ENV};

/// How long to let the log copiers drain the pipes once the process has exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long to wait for the process to be reaped after SIGKILL.
const AFTER_SIGKILL: Duration = Duration::from_secs(10);

/// What to launch for one slot.
pub struct LaunchSpec {
    /// Names the slot's directory and goes into `HELIX_SLOT_ID`; must be filesystem-safe.
    pub slot_id: String,
    /// The full argv, program first (`["vllm", "serve", "org/m", "--host", ...]`).
    pub argv: Vec<String>,
    /// `CUDA_VISIBLE_DEVICES` for the child (`"0,1"`, or `""` when no GPU).
    pub cuda_visible_devices: String,
    /// `HF_TOKEN` for the child; when `None` the child has no `HF_TOKEN` at all.
    pub hf_token: Option<SecretString>,
    /// `DATA_DIR/slots/<slot_id>`: created (0700) if missing; holds `vllm.log` and `pid`.
    pub slot_dir: PathBuf,
}

impl fmt::Debug for LaunchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchSpec")
            .field("slot_id", &self.slot_id)
            .field("argv", &self.argv)
            .field("cuda_visible_devices", &self.cuda_visible_devices)
            .field("hf_token_provided", &self.hf_token.is_some())
            .field("slot_dir", &self.slot_dir)
            .finish()
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// The process is gone but its status could not be read.
    pub const UNKNOWN: ExitInfo = ExitInfo {
        code: None,
        signal: None,
    };

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn from_status(status: std::process::ExitStatus) -> ExitInfo {
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}"),
            (None, Some(sig)) => write!(f, "killed by signal {sig}"),
            (None, None) => write!(f, "exited (status unknown)"),
        }
    }
}

/// One running (or exited) vLLM process. Dropping it neither kills nor leaks the process: it
/// keeps running and is reaped when it exits; stop it with [`VllmProcess::stop`].
pub struct VllmProcess {
    pid: u32,
    slot_id: String,
    slot_dir: PathBuf,
    exit: watch::Receiver<Option<ExitInfo>>,
}

impl fmt::Debug for VllmProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VllmProcess")
            .field("pid", &self.pid)
            .field("slot_id", &self.slot_id)
            .field("exit", &*self.exit.borrow())
            .finish()
    }
}

impl VllmProcess {
    /// Launches the process. Must be called from an async task (not from `spawn_blocking`: the
    /// parent-death signal fires when the *thread* that forked exits).
    pub fn spawn(spec: LaunchSpec) -> io::Result<VllmProcess> {
        let LaunchSpec {
            slot_id,
            argv,
            cuda_visible_devices,
            hf_token,
            slot_dir,
        } = spec;
        check_slot_id(&slot_id)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
        };
        let token: Option<Arc<SecretString>> = hf_token.map(Arc::new);
        let redact_with: Option<Arc<SecretString>> =
            token.clone().filter(|t| !t.expose_secret().is_empty());
        if let Some(t) = &redact_with {
            if argv.iter().any(|a| a.contains(t.expose_secret())) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "refusing to launch: the Hugging Face token appears in argv",
                ));
            }
        }

        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&slot_dir)?;
        fs::set_permissions(&slot_dir, fs::Permissions::from_mode(0o700))?;
        let mut log = open_log(&slot_dir)?;
        let _ = writeln!(
            log,
            "==== helix: launching slot {slot_id} at {}: {} (CUDA_VISIBLE_DEVICES={cuda_visible_devices:?}, hf_token_provided={}) ====",
            crate::time::rfc3339(crate::time::now_ms()),
            argv.join(" "),
            token.is_some()
        );

        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("CUDA_VISIBLE_DEVICES", &cuda_visible_devices)
            // NVML (and so the inventory) numbers GPUs in PCI bus order; make CUDA agree.
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .env(SLOT_ENV, &slot_id)
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        // helix's own settings (a join token, an API key) are not vLLM's business: model code
        // run with --trust-remote-code must not see them.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HELIX_") {
                cmd.env_remove(&name);
            }
        }
        cmd.env(SLOT_ENV, &slot_id);
        if let Some(t) = &token {
            cmd.env("HF_TOKEN", t.expose_secret());
        }
        let parent = Pid::this();
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died before the death signal was armed.
                if nix::unistd::getppid() != parent {
                    return Err(io::Error::other("parent exited during launch"));
                }
                Ok(())
            });
        }
        let (out_log, err_log) = (log.try_clone()?, log.try_clone()?);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(log, "==== helix: could not start {program}: {e} ====");
                return Err(e);
            }
        };
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;

        let pid_path = slot_dir.join(PID_FILE);
        if let Err(e) = write_pid_file(&pid_path, pid) {
            // Without a pid file a crash of helix could leave it running: do not keep it.
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(e);
        }

        let mut copiers = Vec::with_capacity(2);
        if let Some(out) = child.stdout.take() {
            copiers.push(tokio::spawn(copy_to_log(out, out_log, redact_with.clone())));
        }
        if let Some(err) = child.stderr.take() {
            copiers.push(tokio::spawn(copy_to_log(err, err_log, redact_with.clone())));
        }

        let (tx, rx) = watch::channel(None);
        tokio::spawn(watch_exit(
            child,
            pid,
            copiers,
            log,
            pid_path,
            slot_id.clone(),
            tx,
        ));
        tracing::info!(
            slot = %slot_id,
            pid,
            hf_token_provided = token.is_some(),
            cuda_visible_devices = %cuda_visible_devices,
            "vLLM process started: {}",
            argv.join(" ")
        );
        Ok(VllmProcess {
            pid,
            slot_id,
            slot_dir,
            exit: rx,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn slot_id(&self) -> &str {
        &self.slot_id
    }

    pub fn slot_dir(&self) -> &Path {
        &self.slot_dir
    }

    /// Resolves when the process has exited (and its remaining output is in `vllm.log`).
    /// Cancel-safe, and resolves at once on every call after the exit.
    pub async fn exited(&mut self) -> ExitInfo {
        let seen = match self.exit.wait_for(|e| e.is_some()).await {
            Ok(e) => *e,
            // The watcher task is gone without a word (it panicked): treat as exited.
            Err(_) => None,
        };
        seen.unwrap_or(ExitInfo::UNKNOWN)
    }

    /// `Some` once the process has exited.
    pub fn try_exited(&mut self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// A receiver that turns `Some` when the process exits, for callers that want to watch
    /// from elsewhere.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit.clone()
    }

    /// SIGTERM to the process group, then SIGKILL to the group if the process is still alive
    /// after `grace`. Returns once it has exited; the pid file is removed.
    pub async fn stop(mut self, grace: Duration) {
        let pgid = Pid::from_raw(self.pid as i32);
        let exit = match self.try_exited() {
            Some(e) => e,
            None => {
                let _ = killpg(pgid, Signal::SIGTERM);
                match tokio::time::timeout(grace, self.exited()).await {
                    Ok(e) => e,
                    Err(_) => {
                        tracing::warn!(
                            slot = %self.slot_id,
                            pid = self.pid,
                            "vLLM did not exit within {grace:?} of SIGTERM; sending SIGKILL to its process group"
                        );
                        let _ = killpg(pgid, Signal::SIGKILL);
                        match tokio::time::timeout(AFTER_SIGKILL, self.exited()).await {
                            Ok(e) => e,
                            Err(_) => {
                                tracing::warn!(
                                    slot = %self.slot_id,
                                    pid = self.pid,
                                    "vLLM still not reaped {AFTER_SIGKILL:?} after SIGKILL"
                                );
                                ExitInfo::UNKNOWN
                            }
                        }
                    }
                }
            }
        };
        remove_pid_file_if(&self.slot_dir.join(PID_FILE), self.pid);
        tracing::info!(slot = %self.slot_id, pid = self.pid, "vLLM process stopped ({exit})");
    }
}

fn check_slot_id(slot_id: &str) -> io::Result<()> {
    let ok = !slot_id.is_empty()
        && slot_id != "."
        && slot_id != ".."
        && !slot_id
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '=' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("slot id {slot_id:?} is not filesystem-safe"),
        ))
    }
}

/// Waits for the child, kills what is left of its process group, lets the log copiers drain,
/// then publishes the exit.
async fn watch_exit(
    mut child: tokio::process::Child,
    pid: u32,
    copiers: Vec<JoinHandle<()>>,
    mut log: File,
    pid_path: PathBuf,
    slot_id: String,
    tx: watch::Sender<Option<ExitInfo>>,
) {
    let exit = match child.wait().await {
        Ok(status) => ExitInfo::from_status(status),
        Err(e) => {
            tracing::warn!(slot = %slot_id, pid, "could not wait for vLLM: {e}");
            ExitInfo::UNKNOWN
        }
    };
    // Workers it left behind (same group) would hold GPU memory and the log pipes.
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
        for c in copiers {
            let _ = c.await;
        }
    })
    .await;
    let _ = writeln!(log, "==== helix: process {pid} {exit} ====");
    remove_pid_file_if(&pid_path, pid);
    tracing::info!(slot = %slot_id, pid, "vLLM process {exit}");
    let _ = tx.send(Some(exit));
}
