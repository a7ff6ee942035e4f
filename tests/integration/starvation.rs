//! A node under a connection flood: clients that open connections and never finish a request
//! (an attacker once held 21,000 and the node died of EMFILE) neither use up its file handles
//! nor shut out everyone else. The limits are the config's `[server]` table.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::peer::raw_exchange;
use crate::common::*;

/// Connections a flood holds open in the first story.
const FLOOD: usize = 3000;

/// Opens `n` connections to `addr` that each send half a request head and stop.
fn half_heads(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n} to {addr}: {e}"));
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: flood\r\n")
                .unwrap_or_else(|e| panic!("half a head on connection {i}: {e}"));
            s
        })
        .collect()
}

/// Opens `n` connections to `addr` that each send an admin's whole request head and only a
/// part of its body: requests in flight, which no timeout may cut off.
fn stalled_bodies(addr: &str, admin_key: &str, n: usize) -> Vec<TcpStream> {
    let head = format!(
        "POST {ORGS} HTTP/1.1\r\nHost: flood\r\nAuthorization: Bearer {admin_key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n} to {addr}: {e}"));
            s.write_all(head.as_bytes())
                .unwrap_or_else(|e| panic!("stalled request on connection {i}: {e}"));
            s
        })
        .collect()
}

/// Whether the node closed `s` (EOF or reset) without a word, waiting up to `timeout`.
fn closed_silently(s: &mut TcpStream, timeout: Duration) -> Result<(), String> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("answered: {}", String::from_utf8_lossy(&buf[..n]))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(format!("still open after {timeout:?}: {e}")),
    }
}

#[test]
fn a_node_keeps_serving_while_thousands_of_connections_stall() {
    let limit = helix::server::raise_fd_limit();
    assert!(
        limit.soft >= FLOOD as u64 + 1024,
        "this test holds {FLOOD} connections and needs an open-file limit of at least {}: {limit:?}",
        FLOOD + 1024
    );
    assert!(
        limit.default_max_connections() > FLOOD + 100,
        "with this open-file limit a node caps its ports below {FLOOD}: {limit:?}"
    );
    // So long that the node holds every stalled connection for the whole test.
    let c = Cluster::builder()
        .server("header_read_timeout_ms = 600000")
        .nodes(1)
        .start();
    let admin = c.client(1);
    let flood = half_heads(&c.node(1).api_addr, FLOOD);

    admin.expect("POST", ORGS, Some(&json!({ "name": "flooded" })), 201);
    let ready = admin.get("/readyz");
    assert_eq!(
        ready.status,
        200,
        "/readyz under the flood: {}",
        ready.text()
    );
    // The node held them all: none was answered or closed.
    for (i, s) in flood.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        match (&*s).read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("flood connection {i} was not held: {other:?}"),
        }
    }
}

#[test]
fn beyond_the_cap_clients_are_refused_and_stalled_heads_are_cut_off() {
    let c = Cluster::builder()
        .server("max_connections = 64")
        .server("header_read_timeout_ms = 1000")
        .nodes(1)
        .start();
    let addr = c.node(1).api_addr.clone();
    let admin = c.client(1);

    // Fill the cap with requests in flight (a few more, in case the rig's own last
    // connections still held places), and the next client is refused with a reason.
    let stalled = stalled_bodies(&addr, &c.admin_key, 64 + 8);
    // A new connection: the rig's client would reuse one it already holds a place with.
    let refused = String::from_utf8_lossy(&raw_exchange(
        &addr,
        b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n",
    ))
    .into_owned();
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "beyond the cap: {refused}"
    );
    assert!(
        refused.contains("too many connections to this node's api port (limit 64)"),
        "{refused}"
    );
    drop(stalled);
    wait_until(
        WAIT,
        "the node serves again once the stalled clients left",
        || {
            admin
                .try_send("GET", "/readyz", None)
                .is_ok_and(|r| r.status == 200)
        },
    );

    // Half a request head gets the header-read timeout, and then the connection is closed.
    let opened = Instant::now();
    let mut slow = half_heads(&addr, 16);
    for (i, s) in slow.iter_mut().enumerate() {
        closed_silently(s, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("half-head connection {i}: {e}"));
    }
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(1000),
        "closed after {after:?}, before the header-read timeout"
    );

    admin.expect(
        "POST",
        ORGS,
        Some(&json!({ "name": "after-the-flood" })),
        201,
    );
    assert_eq!(admin.get("/readyz").status, 200);
}
