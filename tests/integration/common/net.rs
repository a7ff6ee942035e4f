//! Loopback addresses and ports: each test node gets its own 127.0.0.N.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Differs between calls, test processes and runs (splitmix64 over time, pid and a counter).
pub fn pseudo_random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos
        ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A loopback address 127.0.0.N (N in 2..=250) not yet handed out in this test process.
/// Different test binaries may pick the same N; they still get different ports.
pub fn alloc_ip() -> Ipv4Addr {
    static USED: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap();
    if used.len() >= 240 {
        used.clear();
    }
    loop {
        let n = 2 + (pseudo_random() % 249) as u8;
        if !used.contains(&n) {
            used.push(n);
            return Ipv4Addr::new(127, 0, 0, n);
        }
    }
}

/// A port that is free on `ip` right now (bound to port 0, then released).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().unwrap().port()
}

/// A block of 10 ports for vLLM processes, below the ephemeral range, not handed out before
/// in this process (vLLM binds 127.0.0.1, shared by every node).
pub fn alloc_port_range() -> (u16, u16) {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap();
    loop {
        let low = 21000 + (pseudo_random() % 1100) as u16 * 10;
        if !used.contains(&low) {
            used.push(low);
            return (low, low + 9);
        }
    }
}
