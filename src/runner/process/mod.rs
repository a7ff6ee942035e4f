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

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The environment variable that marks a process as launched by helix for a slot.
pub const SLOT_ENV: &str = "HELIX_SLOT_ID";
/// The log file in a slot's directory.
pub const LOG_FILE: &str = "vllm.log";
/// The pid file in a slot's directory.
pub const PID_FILE: &str = "pid";

/// A log bigger than this at launch is moved to `vllm.log.1` (replacing the previous one).
const LOG_ROTATE_BYTES: u64 = 32 << 20;
/// Output with no newline for this long (progress bars redraw with `\r`) is written anyway.
const MAX_LINE: usize = 64 << 10;
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
        let log_path = slot_dir.join(LOG_FILE);
        if fs::metadata(&log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            let _ = fs::rename(&log_path, slot_dir.join(format!("{LOG_FILE}.1")));
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)?;
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

fn write_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{pid}")
}

/// Removes the pid file only if it still names `pid` (a newer launch may have rewritten it).
fn remove_pid_file_if(path: &Path, pid: u32) {
    if read_pid(path) == Some(pid) {
        let _ = fs::remove_file(path);
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
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

/// Copies one output stream of the child into the log, a line at a time, redacting the token.
async fn copy_to_log<R: AsyncRead + Unpin>(
    mut stream: R,
    mut log: File,
    token: Option<Arc<SecretString>>,
) {
    let token = token.as_deref().map(|t| t.expose_secret().as_bytes());
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        if let Some(t) = token {
            pending = redact(&pending, t);
        }
        let cut = match pending.iter().rposition(|&b| b == b'\n') {
            Some(nl) => Some(nl + 1),
            // No newline for a long while: write all but a tail that could be the start of a
            // token (every complete occurrence has been replaced already).
            None if pending.len() > MAX_LINE => {
                Some(pending.len() - token.map_or(0, |t| t.len().saturating_sub(1)))
            }
            None => None,
        };
        if let Some(cut) = cut {
            let rest = pending.split_off(cut);
            let _ = log.write_all(&pending);
            pending = rest;
        }
    }
    if !pending.is_empty() {
        if let Some(t) = token {
            pending = redact(&pending, t);
        }
        pending.push(b'\n');
        let _ = log.write_all(&pending);
    }
}

/// `text` with every occurrence of `token` replaced by `***`.
fn redact(text: &[u8], token: &[u8]) -> Vec<u8> {
    if token.is_empty() || text.len() < token.len() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(token) {
            out.extend_from_slice(b"***");
            i += token.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// After a crash of helix: kills what is left of the vLLM processes it started earlier, found
/// through the pid files under `slots_dir/*/pid`. A process is killed only when it is in the
/// process group of the recorded pid *and* its environment carries `HELIX_SLOT_ID=<slot>`, so
/// a reused pid of an unrelated process is never touched. Every pid file found is removed:
/// call this at start, before launching anything. Blocking; returns how many processes were
/// killed.
pub fn kill_strays(slots_dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(slots_dir) else {
        return 0;
    };
    // (slot id, recorded pid == its process group id)
    let mut recorded: Vec<(String, i32)> = Vec::new();
    for entry in entries.flatten() {
        let pid_path = entry.path().join(PID_FILE);
        if !pid_path.is_file() {
            continue;
        }
        if let (Some(pid), Some(slot)) = (read_pid(&pid_path), entry.file_name().to_str()) {
            if pid > 1 && pid <= i32::MAX as u32 {
                recorded.push((slot.to_string(), pid as i32));
            }
        }
        let _ = fs::remove_file(&pid_path);
    }
    if recorded.is_empty() {
        return 0;
    }

    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for pid in all_pids() {
        if pid == me {
            continue;
        }
        let Some(pgid) = process_group(pid) else {
            continue;
        };
        let Some((slot, _)) = recorded.iter().find(|(_, p)| *p == pgid) else {
            continue;
        };
        if !carries_slot(pid, slot) {
            continue;
        }
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            tracing::warn!(slot = %slot, pid, "killed a stray vLLM process left by an earlier run");
            killed.push(pid);
        }
    }
    // Let them go away (GPU memory, ports) before the caller launches anything.
    let deadline = Instant::now() + Duration::from_secs(5);
    while killed.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Present and not a zombie.
fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

fn carries_slot(pid: i32, slot: &str) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{SLOT_ENV}={slot}");
    environ.split(|&b| b == 0).any(|v| v == want.as_bytes())
}

/// The last `max_bytes` of `slot_dir/vllm.log`, as (lossy) UTF-8; empty if there is no log.
pub fn log_tail(slot_dir: &Path, max_bytes: usize) -> String {
    let Ok(mut f) = File::open(slot_dir.join(LOG_FILE)) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes as u64);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::with_capacity(max_bytes.min(len as usize));
    if f.take(max_bytes as u64).read_to_end(&mut buf).is_err() {
        return String::new();
    }
    // Do not start in the middle of a UTF-8 character.
    let skip = if start > 0 {
        buf.iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count()
    } else {
        0
    };
    String::from_utf8_lossy(&buf[skip..]).into_owned()
}

/// Whether vLLM's output shows Hugging Face refusing access to the model (a gated or private
/// repository, or a token that is missing or invalid), as opposed to any other failure.
pub fn looks_gated(log_tail: &str) -> bool {
    let text = log_tail.to_ascii_lowercase();
    const NEEDLES: &[&str] = &[
        "gatedrepoerror",
        "gated repo",
        "cannot access gated",
        "401 client error",
        "403 client error",
        "401 unauthorized",
        "403 forbidden",
        "invalid credentials",
        "invalid user token",
        "must be authenticated",
        "repositorynotfounderror",
    ];
    NEEDLES.iter().any(|n| text.contains(n))
        || text.split("access to model").skip(1).any(|rest| {
            rest.lines()
                .next()
                .is_some_and(|l| l.contains("is restricted"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    const TOKEN: &str = "hf_TestTokenValue0123456789abcdef";

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    fn spec(dir: &Path, slot: &str, script: &str, token: Option<&str>) -> LaunchSpec {
        LaunchSpec {
            slot_id: slot.into(),
            argv: sh(script),
            cuda_visible_devices: "0,1".into(),
            hf_token: token.map(|t| SecretString::from(t.to_string())),
            slot_dir: dir.join(slot),
        }
    }

    async fn wait_exit(p: &mut VllmProcess) -> ExitInfo {
        tokio::time::timeout(Duration::from_secs(10), p.exited())
            .await
            .expect("process did not exit")
    }

    async fn wait_for_file(path: &Path) -> String {
        for _ in 0..500 {
            if let Ok(s) = fs::read_to_string(path) {
                if s.ends_with('\n') {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    #[tokio::test]
    async fn env_has_the_token_only_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo \"token=${HF_TOKEN-unset} legacy=${HUGGING_FACE_HUB_TOKEN-unset} \
                      cuda=$CUDA_VISIBLE_DEVICES slot=$HELIX_SLOT_ID\"; exit 7";
        let mut without = VllmProcess::spawn(spec(dir.path(), "a", script, None)).unwrap();
        let exit = wait_exit(&mut without).await;
        assert_eq!(exit.code, Some(7));
        assert_eq!(exit.to_string(), "exited with code 7");
        let log = log_tail(&dir.path().join("a"), 4096);
        assert!(
            log.contains("token=unset legacy=unset cuda=0,1 slot=a"),
            "{log}"
        );
        assert!(log.contains("hf_token_provided=false"), "{log}");
        assert!(!dir.path().join("a/pid").exists(), "pid file left behind");

        let mut with = VllmProcess::spawn(spec(dir.path(), "b", script, Some(TOKEN))).unwrap();
        wait_exit(&mut with).await;
        let log = log_tail(&dir.path().join("b"), 4096);
        // The child saw the token, and the log shows it redacted.
        assert!(
            log.contains("token=*** legacy=unset cuda=0,1 slot=b"),
            "{log}"
        );
        assert!(!log.contains(TOKEN));

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("b")), 0o700);
        assert_eq!(mode(&dir.path().join("b/vllm.log")), 0o600);
    }

    #[tokio::test]
    async fn token_is_redacted_everywhere_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        // On both streams, twice on a line, and split across writes with no newline.
        let script = "echo \"token is $HF_TOKEN\"; echo \"$HF_TOKEN$HF_TOKEN\" >&2; \
                      printf 'x%s' \"$HF_TOKEN\"; printf 'y%s' \"$HF_TOKEN\" >&2";
        let mut p = VllmProcess::spawn(spec(dir.path(), "r", script, Some(TOKEN))).unwrap();
        wait_exit(&mut p).await;
        let log = fs::read_to_string(dir.path().join("r/vllm.log")).unwrap();
        assert!(!log.contains(TOKEN), "{log}");
        assert!(!log.contains("hf_TestToken"), "{log}");
        assert!(log.contains("token is ***\n"), "{log}");
        assert!(log.contains("******\n"), "{log}");
        assert!(log.contains("x***"), "{log}");
        assert!(log.contains("y***"), "{log}");

        // A token in argv is refused outright.
        let mut bad = spec(dir.path(), "r2", "true", Some(TOKEN));
        bad.argv.push(format!("--token={TOKEN}"));
        let err = VllmProcess::spawn(bad).unwrap_err();
        assert!(!err.to_string().contains(TOKEN));
    }

    #[test]
    fn redaction_of_long_output_without_newlines() {
        let mut text = vec![b'a'; MAX_LINE];
        text.extend_from_slice(TOKEN.as_bytes());
        let out = redact(&text, TOKEN.as_bytes());
        assert_eq!(out.len(), MAX_LINE + 3);
        assert_eq!(redact(b"short", TOKEN.as_bytes()), b"short");
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_and_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let gc = dir.path().join("grandchild");
        // Ignores SIGTERM (and so does its grandchild, which inherits the disposition).
        let script = format!(
            "trap '' TERM; sleep 1000 & echo $! > {}; while true; do sleep 0.05; done",
            gc.display()
        );
        let mut p = VllmProcess::spawn(spec(dir.path(), "t", &script, None)).unwrap();
        let pid_file = dir.path().join("t/pid");
        assert_eq!(
            fs::read_to_string(&pid_file).unwrap().trim(),
            p.pid().to_string()
        );
        let grandchild: i32 = wait_for_file(&gc).await.trim().parse().unwrap();
        assert!(alive(grandchild));
        assert_eq!(process_group(grandchild), Some(p.pid() as i32));
        assert!(p.try_exited().is_none());

        let started = Instant::now();
        p.stop(Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(!pid_file.exists());
        for _ in 0..100 {
            if !alive(grandchild) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "grandchild survived");
    }

    #[tokio::test]
    async fn stop_with_sigterm_and_exit_is_cancel_safe() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = VllmProcess::spawn(spec(dir.path(), "g", "exec sleep 1000", None)).unwrap();
        // Polling exited() in a select! with a timer that fires first loses nothing.
        for _ in 0..3 {
            tokio::select! {
                e = p.exited() => panic!("exited early: {e}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        let mut watch = p.exit_watch();
        let started = Instant::now();
        p.stop(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let e = watch.wait_for(|e| e.is_some()).await.unwrap().unwrap();
        assert_eq!(e.signal, Some(libc_sigterm()));
        assert_eq!(
            e.to_string(),
            format!("killed by signal {}", libc_sigterm())
        );
    }

    fn libc_sigterm() -> i32 {
        Signal::SIGTERM as i32
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "m", "", None);
        s.argv = vec!["/nonexistent/vllm".into(), "serve".into()];
        assert!(VllmProcess::spawn(s).is_err());
        assert!(log_tail(&dir.path().join("m"), 1000).contains("could not start"));
        let mut s = spec(dir.path(), "../x", "true", None);
        assert!(VllmProcess::spawn(s).is_err());
        s = spec(dir.path(), "m", "true", None);
        s.argv.clear();
        assert!(VllmProcess::spawn(s).is_err());
    }

    #[tokio::test]
    async fn kill_strays_kills_only_our_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        // A leftover of ours: started, then forgotten (as if helix had crashed).
        let mut ours = VllmProcess::spawn(spec(dir.path(), "s1", "exec sleep 1000", None)).unwrap();
        let ours_pid = ours.pid() as i32;
        assert!(dir.path().join("s1/pid").exists());

        // An unrelated process in its own group, without the marker, that a stale pid file
        // names; and a pid file naming the test process itself; and garbage.
        let mut unrelated = std::process::Command::new("sleep")
            .arg("1000")
            .env_remove(SLOT_ENV)
            .process_group(0)
            .spawn()
            .unwrap();
        // Same slot id as the one it would be checked against, but no marker in its env.
        fs::create_dir_all(dir.path().join("s2")).unwrap();
        fs::write(dir.path().join("s2/pid"), format!("{}\n", unrelated.id())).unwrap();
        fs::create_dir_all(dir.path().join("s3")).unwrap();
        fs::write(
            dir.path().join("s3/pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("s4")).unwrap();
        fs::write(dir.path().join("s4/pid"), "not a pid").unwrap();

        let killed = tokio::task::spawn_blocking({
            let d = dir.path().to_path_buf();
            move || kill_strays(&d)
        })
        .await
        .unwrap();
        assert_eq!(killed, 1);
        assert_eq!(
            wait_exit(&mut ours).await.signal,
            Some(Signal::SIGKILL as i32)
        );
        assert!(!alive(ours_pid));
        assert!(
            alive(unrelated.id() as i32),
            "an unrelated process was killed"
        );
        for s in ["s1", "s2", "s3", "s4"] {
            assert!(!dir.path().join(s).join("pid").exists(), "{s}/pid left");
        }
        // Nothing left to do the second time.
        assert_eq!(kill_strays(dir.path()), 0);
        unrelated.kill().unwrap();
        unrelated.wait().unwrap();
    }

    #[test]
    fn log_tail_reads_the_end() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(log_tail(dir.path(), 100), "");
        fs::write(dir.path().join(LOG_FILE), "first line\nsecond é line\n").unwrap();
        assert_eq!(log_tail(dir.path(), 1000), "first line\nsecond é line\n");
        assert_eq!(log_tail(dir.path(), 6), " line\n");
        // Starting inside the two bytes of "é" skips its second byte.
        assert_eq!(log_tail(dir.path(), 7), " line\n");
        assert_eq!(log_tail(dir.path(), 8), "é line\n");
    }

    #[test]
    fn gated_messages_are_recognized() {
        let gated = [
            "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo \
             for url https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json.\n\
             Access to model meta-llama/Llama-3.1-8B is restricted. You must have access to it \
             and be authenticated to access it. Please log in.",
            "OSError: You are trying to access a gated repo.\nMake sure to have access to it",
            "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: https://huggingface.co/api/models/x",
            "huggingface_hub.errors.HfHubHTTPError: 401 Client Error: Unauthorized for url: ... \
             Invalid credentials in Authorization header",
            "Access to model mistralai/Mistral-7B is restricted and you are not in the authorized list.",
            "RepositoryNotFoundError: 401 Client Error.",
        ];
        for g in gated {
            assert!(looks_gated(g), "{g}");
        }
        let not_gated = [
            "",
            "INFO Starting vLLM API server on http://127.0.0.1:20001",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens",
            "fake crash",
            "Access to model files granted\nload took 3s, memory is restricted to 0.9",
        ];
        for n in not_gated {
            assert!(!looks_gated(n), "{n}");
        }
    }
}
