//! `floor`: what this machine allows a replicated write at best, to hold the write figures
//! against. A write is acknowledged once a majority has it on disk: the leader's log flush
//! (an fdatasync of an append of about a page) and, overlapped with it at best, a round trip
//! to a follower whose own flush sits inside it; a write sent to a follower adds its hop. The
//! floor is taken as one fdatasync of a 4 KiB append plus two loopback round trips.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::args::BenchArgs;
use super::stats::Latency;

/// Bytes appended and flushed per sample: about what one small Raft entry costs the log.
const APPEND_BYTES: usize = 4096;
/// Bytes each way per round trip: a small request and its answer.
const PING_BYTES: usize = 64;
/// Samples of each, unless `--count` says otherwise.
const DEFAULT_SAMPLES: u64 = 1000;

#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub scenario: &'static str,
    /// The directory whose file system was flushed to.
    pub dir: PathBuf,
    pub fdatasync_ms: Latency,
    pub loopback_rtt_ms: Latency,
    /// `fdatasync_ms.p50 + 2 × loopback_rtt_ms.p50`.
    pub floor_ms: f64,
}

/// Measures in `--dir` (default: the current directory; give the file system the data dirs
/// are on), `--count` samples of each, within `--max-seconds`.
pub fn floor_bench(args: &BenchArgs) -> Result<FloorReport, String> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let samples = args.count.unwrap_or(DEFAULT_SAMPLES).max(1);
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let fdatasync_ms = Latency::from_micros(fdatasync_samples(&dir, samples, deadline)?);
    let loopback_rtt_ms = Latency::from_micros(round_trip_samples(samples, deadline)?);
    let floor_ms = fdatasync_ms.p50 + 2.0 * loopback_rtt_ms.p50;
    Ok(FloorReport {
        scenario: "floor",
        dir,
        fdatasync_ms,
        loopback_rtt_ms,
        floor_ms,
    })
}

/// Appends 4 KiB to a new file in `dir` and fdatasyncs it, `samples` times (fewer if the
/// deadline passes first); the file is removed after.
fn fdatasync_samples(dir: &Path, samples: u64, deadline: Instant) -> Result<Vec<u64>, String> {
    let path = dir.join(format!(".helix-bench-floor-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    let page = [0x5a_u8; APPEND_BYTES];
    let mut us = Vec::with_capacity(samples as usize);
    let mut failure = None;
    while (us.len() as u64) < samples && Instant::now() < deadline {
        let start = Instant::now();
        if let Err(e) = file.write_all(&page).and_then(|()| file.sync_data()) {
            failure = Some(format!("append and fdatasync {}: {e}", path.display()));
            break;
        }
        us.push(start.elapsed().as_micros() as u64);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    failure.map_or(Ok(us), Err)
}

/// Round trips of 64 bytes to an echo on 127.0.0.1 over one TCP connection (no Nagle).
fn round_trip_samples(samples: u64, deadline: Instant) -> Result<Vec<u64>, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut peer, _) = listener.accept()?;
        peer.set_nodelay(true)?;
        let mut buf = [0u8; PING_BYTES];
        // Ends when the client closes the connection.
        while peer.read_exact(&mut buf).is_ok() {
            peer.write_all(&buf)?;
        }
        Ok(())
    });
    let mut client = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    client.set_nodelay(true).map_err(|e| e.to_string())?;
    let ping = [0xa5_u8; PING_BYTES];
    let mut pong = [0u8; PING_BYTES];
    let mut us = Vec::with_capacity(samples as usize);
    while (us.len() as u64) < samples && Instant::now() < deadline {
        let start = Instant::now();
        client
            .write_all(&ping)
            .and_then(|()| client.read_exact(&mut pong))
            .map_err(|e| format!("loopback round trip: {e}"))?;
        us.push(start.elapsed().as_micros() as u64);
    }
    drop(client);
    echo.join()
        .map_err(|_| "the echo thread panicked".to_string())?
        .map_err(|e| format!("loopback echo: {e}"))?;
    Ok(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_measures_take_every_sample_they_are_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        assert_eq!(fdatasync_samples(dir.path(), 5, deadline).unwrap().len(), 5);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "file left"
        );
        assert_eq!(round_trip_samples(5, deadline).unwrap().len(), 5);
    }
}
