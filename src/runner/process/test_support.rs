//! What the tests of `process` share: a launch spec running a shell script, and a bounded
//! wait for the exit.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::{ExitInfo, LaunchSpec, VllmProcess};

pub(super) const TOKEN: &str = "hf_TestTokenValue0123456789abcdef";

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

pub(super) fn spec(dir: &Path, slot: &str, script: &str, token: Option<&str>) -> LaunchSpec {
    LaunchSpec {
        slot_id: slot.into(),
        argv: sh(script),
        cuda_visible_devices: "0,1".into(),
        hf_token: token.map(|t| SecretString::from(t.to_string())),
        slot_dir: dir.join(slot),
    }
}

pub(super) async fn wait_exit(p: &mut VllmProcess) -> ExitInfo {
    tokio::time::timeout(Duration::from_secs(10), p.exited())
        .await
        .expect("process did not exit")
}
