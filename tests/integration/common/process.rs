//! One `helix` process: started with its output copied into a log file, watched for its
//! `ready` line, and ended by signal.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How long a node may take to print `ready` (loaded 2-core CI machines).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a SIGTERM-ed node may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn helix_bin() -> &'static str {
    env!("CARGO_BIN_EXE_helix")
}

/// `/proc/<pid>` exists and is not a zombie (a zombie has already died).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, None | Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A running (or exited, not yet reaped) `helix` process.
pub struct NodeProcess {
    /// `nodeK`, for messages and log markers.
    name: String,
    log_path: PathBuf,
    child: Child,
    ready: Arc<AtomicBool>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    tee: Option<JoinHandle<()>>,
}

impl NodeProcess {
    /// Starts `helix ARGS` with `env` on top of a cleaned environment. stdout is copied line
    /// by line into `log_path` (and remembered, to see `ready`); stderr goes straight there.
    /// With `netns`, the process runs in that network namespace (`ip netns exec` execs
    /// helix, so the child's pid is helix's own).
    pub fn spawn(
        name: &str,
        netns: Option<&str>,
        args: &[String],
        env: &[(String, String)],
        log_path: &Path,
    ) -> Self {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        writeln!(
            log,
            "===== harness: starting {name}: helix {} =====",
            args.join(" ")
        )
        .unwrap();
        let stderr_log = log.try_clone().unwrap();
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, helix_bin()]);
                c
            }
            None => Command::new(helix_bin()),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .env_remove("HF_TOKEN")
            .env_remove("HELIX_URL")
            .env_remove("HELIX_API_KEY")
            // The default log filter is part of what the tests check.
            .env_remove("RUST_LOG")
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", helix_bin()));
        let stdout = child.stdout.take().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready2, lines2) = (ready.clone(), lines.clone());
        let tee = thread::spawn(move || tee_stdout(stdout, log, ready2, lines2));
        NodeProcess {
            name: name.to_string(),
            log_path: log_path.to_path_buf(),
            child,
            ready,
            stdout_lines: lines,
            tee: Some(tee),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn printed_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Lines the process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }

    /// Waits until the process prints a line containing `ready`; panics if it exits first.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        while !self.printed_ready() {
            if let Ok(Some(st)) = self.child.try_wait() {
                // The last lines may still be on their way through the tee thread.
                self.join_tee();
                if self.printed_ready() {
                    return;
                }
                panic!("{} exited ({st}) before printing `ready`", self.name);
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "{} did not print `ready` within {READY_TIMEOUT:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP / SIGCONT and the like, leaving the process in place.
    pub fn signal(&self, sig: Signal) {
        signal::kill(Pid::from_raw(self.pid() as i32), sig)
            .unwrap_or_else(|e| panic!("send {sig} to {}: {e}", self.name));
    }

    /// SIGKILL, reaped.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_tee();
        self.mark("killed with SIGKILL");
    }

    /// SIGTERM and the exit status; SIGKILL and panic after [`STOP_TIMEOUT`].
    pub fn sigterm(mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(STOP_TIMEOUT);
        self.mark(&format!("exited after SIGTERM: {status}"));
        status
    }

    /// Waits for the process to exit on its own; SIGKILL and panic after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            thread::sleep(Duration::from_millis(50));
        };
        self.join_tee();
        status
    }

    /// SIGKILL at the end of a test; says whether it had exited on its own, which is worth
    /// knowing when the test failed.
    pub fn end(mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(Some(st)) => format!(
                "{} (pid {}) had exited on its own: {st}",
                self.name,
                self.pid()
            ),
            _ => format!("{} (pid {}) was running", self.name, self.pid()),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_tee();
        state
    }

    fn join_tee(&mut self) {
        if let Some(t) = self.tee.take() {
            let _ = t.join();
        }
    }

    fn mark(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(log, "===== harness: {} {what} =====", self.name);
        }
    }
}

fn tee_stdout(
    stdout: ChildStdout,
    mut log: File,
    ready: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let _ = log.write_all(&buf);
                if !buf.ends_with(b"\n") {
                    let _ = log.write_all(b"\n");
                }
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if line.to_ascii_lowercase().contains("ready") {
                    ready.store(true, Ordering::SeqCst);
                }
                lines.lock().unwrap().push(line);
            }
        }
    }
}
