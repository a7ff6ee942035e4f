//! Issue 13, quiet logs: a node's routine life (joining, a member restarting) logs no warning;
//! a join that cannot reach its URL says so once per retry, with growing waits; the bootstrap
//! secrets go to a terminal only.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::net::{alloc_ip, free_port};
use crate::common::secrets::read_secret;
use crate::common::*;

/// Warning and error lines, but for the one about this machine rather than the node's life:
/// a flush slower than 100 ms, which a loaded CI machine may well see.
fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("slow disk"))
        .collect()
}

/// Three nodes join; one restarts (SIGTERM, then `node start` on its data dir) and catches
/// up. No node logs a warning or an error meanwhile.
#[test]
fn joining_and_restarting_log_no_warnings() {
    let mut c = Cluster::new(3);
    c.stop(2);
    c.create_model(1, &model_json("quiet/while-away", "1GB", &[]));
    c.restart(2);
    let ids = ["quiet/while-away".to_string()].into();
    c.wait_models_present(2, &ids);
    for k in 1..=3 {
        let log = c.log(k);
        assert!(
            warnings(&log).is_empty(),
            "node{k} warned:\n{}",
            warnings(&log).join("\n")
        );
    }
}

/// Lines of a child's stdout (or its log), as they come.
fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects lines until one satisfies `done`; panics after `timeout`.
fn read_until(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("timed out; saw:\n{}", seen.join("\n")),
        }
    }
    seen
}

/// Nobody listens at the URL: each retry is one line naming the cause and the next wait,
/// and the waits grow.
#[test]
fn a_join_that_cannot_reach_its_url_backs_off_one_line_per_retry() {
    let c = Cluster::new(1);
    let ip = alloc_ip();
    let dead_url = format!("http://{ip}:{}", free_port(ip));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(helix_bin())
        .args([
            "node",
            "join",
            &dead_url,
            "--token",
            &c.join_token,
            "--gpus",
            "none",
        ])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--api-addr", &format!("{ip}:{}", free_port(ip))])
        .args(["--peer-addr", &format!("{ip}:{}", free_port(ip))])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stderr.take().unwrap());
    let retries = |seen: &[String]| seen.iter().filter(|l| l.contains("join failed")).count();
    let seen = read_until(&rx, WAIT, |seen| retries(seen) >= 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let tries: Vec<&String> = seen.iter().filter(|l| l.contains("join failed")).collect();
    for (n, wait) in [(1, "0.5 s"), (2, "1.0 s"), (3, "2.0 s")] {
        let line = tries[n - 1];
        assert!(line.contains(&format!("(try {n})")), "{line}");
        assert!(line.contains(&format!("retrying in {wait}")), "{line}");
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
    }
}

/// Piped to a file, the bootstrap names the files that hold the admin key and the join token
/// and prints neither; on a terminal (a pseudo-terminal made by `script`) it prints both.
#[test]
fn bootstrap_secrets_are_printed_to_a_terminal_only() {
    let c = Cluster::new(1);
    let piped = c.stdout_lines(1).join("\n");
    assert!(!piped.contains(&c.admin_key), "{piped}");
    assert!(!piped.contains(&c.join_token), "{piped}");
    for file in ["admin.key", "join.token"] {
        assert!(piped.contains(&format!("{file} (not printed")), "{piped}");
    }

    let ip = alloc_ip();
    let dir = tempfile::tempdir().unwrap();
    let node = format!(
        "{} node start --gpus none --data-dir {} --api-addr {ip}:{} --peer-addr {ip}:{}",
        helix_bin(),
        dir.path().display(),
        free_port(ip),
        free_port(ip)
    );
    let mut terminal = Command::new("script")
        .args(["-qfec", &node, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("script(1) from util-linux");
    let rx = lines_of(terminal.stdout.take().unwrap());
    let seen = read_until(&rx, WAIT, |seen| seen.iter().any(|l| l.contains("ready"))).join("\n");
    // The node under `script` and `script` itself.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(terminal.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    terminal.wait().unwrap();
    let admin_key = read_secret(&dir.path().join("admin.key"));
    let join_token = read_secret(&dir.path().join("join.token"));
    assert!(seen.contains(&admin_key), "{seen}");
    assert!(seen.contains(&join_token), "{seen}");
}
