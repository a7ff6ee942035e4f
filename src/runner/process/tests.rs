//! Spawning and stopping: the child's environment, stop's escalation, a failed launch.

use std::time::Instant;

use super::strays::{alive, process_group};
use super::test_support::{spec, wait_exit, TOKEN};
use super::*;

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
