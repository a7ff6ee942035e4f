//! Debian packages some tests need (Chromium, nftables), installed with apt-get when missing:
//! CI must run those tests, never skip them, and a machine where the install fails fails the
//! test, saying why.

use std::process::Command;
use std::sync::Mutex;

/// Installs `packages` unless `present()` already holds; panics naming `needed_for`, the
/// packages and apt-get's complaint when they are still missing after.
pub fn ensure_packages(needed_for: &str, packages: &[&str], present: impl Fn() -> bool) {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map(|out| {
                let text = String::from_utf8_lossy(&out.stderr).into_owned();
                (out.status.success(), text)
            })
            .unwrap_or_else(|e| (false, e.to_string()))
    };
    // An outdated package list only matters if the install then fails, which says why.
    let _ = apt(&["update"]);
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    let (ok, stderr) = apt(&install);
    assert!(
        ok && present(),
        "{needed_for} needs Debian's {}, and `apt-get {}` failed: {stderr}",
        packages.join(" and "),
        install.join(" ")
    );
}
