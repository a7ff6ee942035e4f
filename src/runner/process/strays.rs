//! The pid file each vLLM process leaves in its slot directory, and what it is for: after a
//! crash of helix, finding the processes it left behind through `/proc` and killing them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The environment variable that marks a process as launched by helix for a slot.
pub(super) const SLOT_ENV: &str = "HELIX_SLOT_ID";
/// The pid file in a slot's directory.
pub(super) const PID_FILE: &str = "pid";

pub(super) fn write_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{pid}")
}

/// Removes the pid file only if it still names `pid` (a newer launch may have rewritten it).
pub(super) fn remove_pid_file_if(path: &Path, pid: u32) {
    if read_pid(path) == Some(pid) {
        let _ = fs::remove_file(path);
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
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

pub(super) fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Present and not a zombie.
pub(super) fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

fn carries_slot(pid: i32, slot: &str) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{SLOT_ENV}={slot}");
    environ.split(|&b| b == 0).any(|v| v == want.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::super::test_support::{spec, wait_exit};
    use super::super::VllmProcess;
    use super::*;

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
}
