//! The open-file limit. Every connection, sled file, vLLM pipe and outgoing peer connection
//! is a file handle, and a process that runs out fails wherever it opens the next one (sled
//! with EMFILE, and the node dies). So a node raises its limit as far as it may, and caps
//! each port's connections to leave a reserve for everything else.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// Handles kept for everything but the two servers' connections: storage, vLLM pipes,
/// outgoing peer connections, connections being refused.
const RESERVE: u64 = 512;
/// Beyond this, a port's default cap only adds memory an attacker can pin; real admin and
/// peer traffic needs far fewer.
const DEFAULT_CAP_CEILING: usize = 8192;
/// So that a node with a tiny limit still answers someone.
const DEFAULT_CAP_FLOOR: usize = 16;
/// What we raise to when the hard limit is unlimited (Linux refuses more than `nr_open`,
/// 1048576 by default).
const UNLIMITED_TARGET: u64 = 1 << 20;
/// Assumed when the limit cannot be read: the usual default soft limit.
const UNKNOWN_LIMIT: u64 = 1024;

/// The process's open-file limit (RLIMIT_NOFILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

impl FdLimit {
    /// How many connections each of the node's two ports can hold without eating into the
    /// reserve: what the reserve leaves of the soft limit, shared equally.
    pub fn per_port_capacity(&self) -> usize {
        usize::try_from(self.soft.saturating_sub(RESERVE) / 2).unwrap_or(usize::MAX)
    }

    /// Each port's connection cap unless the config sets one: the capacity, within
    /// 16..=8192.
    pub fn default_max_connections(&self) -> usize {
        self.per_port_capacity()
            .clamp(DEFAULT_CAP_FLOOR, DEFAULT_CAP_CEILING)
    }
}

/// Raise the soft open-file limit to the hard limit (logged), and return the limit now in
/// force. Call it once, at start, before opening anything.
pub fn raise_fd_limit() -> FdLimit {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, assumed = UNKNOWN_LIMIT, "cannot read the open-file limit");
            return FdLimit {
                soft: UNKNOWN_LIMIT,
                hard: UNKNOWN_LIMIT,
            };
        }
    };
    let target = if hard == RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        hard
    };
    if soft >= target {
        return FdLimit { soft, hard };
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!(from = soft, to = target, "raised the open-file limit");
            FdLimit { soft: target, hard }
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit; keeping it");
            FdLimit { soft, hard }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_caps_leave_the_reserve_and_share_the_rest() {
        let caps = |soft| FdLimit { soft, hard: soft }.default_max_connections();
        assert_eq!(caps(20_000), 8192);
        assert_eq!(caps(4096), (4096 - 512) / 2);
        assert_eq!(caps(1024), 256);
        assert_eq!(caps(100), 16);
        assert_eq!(
            FdLimit {
                soft: 1 << 20,
                hard: 1 << 20
            }
            .per_port_capacity(),
            ((1 << 20) - 512) / 2
        );
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let now = raise_fd_limit();
        assert!(now.soft >= soft);
        assert_eq!(now.hard, hard);
    }
}
