//! A model's slots from the command line: `model create --wait` until it runs or cannot, and
//! `slot logs` through a node that does not run the slot.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;

/// `helix ARGS` through node `via` with `key`.
fn helix_as(c: &Cluster, via: usize, key: &str, args: &[&str]) -> Output {
    Command::new(helix_bin())
        .args(args)
        .env("HELIX_URL", format!("http://{}", c.node(via).api_addr))
        .env("HELIX_API_KEY", key)
        .output()
        .expect("run helix")
}

/// An operator creates a model with its own token and waits until it runs, then reads its
/// vLLM log through node 1, which runs no model: the owner node 2 serves it over the peer
/// protocol, with the token redacted. Another user may not read it; `--follow` ends cleanly
/// on Ctrl-C.
#[test]
fn slot_logs_from_a_node_that_does_not_run_the_slot() {
    let c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .start();
    let token = secret("slot-logs");
    let admin = c.admin_key.clone();
    let created = helix_as(
        &c,
        1,
        &admin,
        &[
            "-o",
            "json",
            "model",
            "create",
            "logs/echo",
            "--memory",
            "10GB",
            "--prewarm",
            "--runtime-args",
            r#"["--fake-echo-token"]"#,
            "--huggingface-token",
            &token,
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(created.status.success(), "{}", transcript(&created));
    let answer: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let slot = answer["slots"][0]["id"]
        .as_str()
        .expect("a running slot")
        .to_string();
    assert_eq!(answer["slots"][0]["state"], "running", "{answer}");
    assert!(
        String::from_utf8_lossy(&created.stderr).contains("running on node"),
        "progress is shown: {}",
        transcript(&created)
    );

    // The double's lines reach the log a moment after it is ready.
    let log = wait_for(WAIT, "the slot's log through node 1", || {
        let out = helix_as(&c, 1, &admin, &["slot", "logs", &slot]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.success() && text.contains("fake_vllm: serving") {
            true => Ok(text),
            false => Err(transcript(&out)),
        }
    });
    assert!(log.contains("token is ***"), "{log}");
    assert!(!log.contains(&token), "the token leaked: {log}");

    let json = helix_as(
        &c,
        1,
        &admin,
        // A stale read too: from node 1's replica, without asking the leader.
        &[
            "--stale", "-o", "json", "slot", "logs", &slot, "--tail", "1",
        ],
    );
    assert!(json.status.success(), "{}", transcript(&json));
    let chunk: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(chunk["node_id"], c.id(2), "{chunk}");
    assert_eq!(
        chunk["text"].as_str().unwrap().lines().count(),
        1,
        "{chunk}"
    );

    let bob = helix_as(&c, 1, &admin, &["-o", "json", "user", "create", "bob"]);
    assert!(bob.status.success(), "{}", transcript(&bob));
    let bob_key = serde_json::from_slice::<Value>(&bob.stdout).expect("JSON")["api_key"]
        .as_str()
        .expect("bob's key")
        .to_string();
    let refused = helix_as(&c, 1, &bob_key, &["slot", "logs", &slot]);
    assert_eq!(refused.status.code(), Some(1), "{}", transcript(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));

    // --follow prints what is there, keeps going, and ends with exit 0 on Ctrl-C.
    let mut follow = Command::new(helix_bin())
        .args(["slot", "logs", &slot, "--follow"])
        .env("HELIX_URL", format!("http://{}", c.node(1).api_addr))
        .env("HELIX_API_KEY", &admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run helix");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = follow.stdout.take().expect("stdout");
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_until(WAIT, "--follow prints the log", || {
        seen.lock().unwrap().contains("fake_vllm: serving")
    });
    kill(Pid::from_raw(follow.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = wait_for(WAIT, "--follow ends on Ctrl-C", || {
        follow
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still following".to_string())
    });
    reader.join().expect("reader");
    assert!(status.success(), "{status:?}");
    assert!(!seen.lock().unwrap().contains(&token));
}

/// A model no GPU can hold: `--wait` gives up at its timeout with exit 1 and says why the
/// slot is pending.
#[test]
fn model_create_wait_says_why_a_model_cannot_run() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB")).start();
    let out = helix_as(
        &c,
        1,
        &c.admin_key,
        &[
            "model",
            "create",
            "huge/model",
            "--memory",
            "2TB",
            "--prewarm",
            "--wait",
            "--timeout",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let last = said.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: huge/model is not running after 5s: slot")
            && last.contains("pending"),
        "{said}"
    );
}
