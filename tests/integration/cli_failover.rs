//! The `--url` list: the command line moves past endpoints that cannot serve (503, not helix,
//! refused) and says why, and it names the cause when nothing answers. A data dir already in
//! use names who uses it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

use crate::common::net::{alloc_ip, free_port};
use crate::common::*;

/// An HTTP server on a fresh 127.0.0.N that answers every request with `response`; its URL.
fn dummy(response: &'static str) -> String {
    let listener = TcpListener::bind((alloc_ip(), 0)).expect("bind a dummy server");
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    url
}

fn helix(c: &Cluster, urls: &str, args: &[&str]) -> Output {
    Command::new(helix_bin())
        .args(["--url", urls])
        .args(args)
        .env("HELIX_API_KEY", &c.admin_key)
        .output()
        .expect("run helix")
}

/// An endpoint answering 503 and one that is not helix at all (a 200 "hello") are skipped,
/// each with one line saying why, and the command succeeds on the node after them.
#[test]
fn failover_past_a_503_and_a_foreign_endpoint_says_why() {
    let c = Cluster::new(1);
    let busy = dummy(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy",
    );
    let hello = dummy("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
    let node = format!("http://{}", c.node(1).api_addr);
    let out = helix(&c, &format!("{busy},{hello},{node}"), &["model", "list"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "one line per skipped endpoint: {said}");
    assert!(
        lines[0].starts_with(&format!("skipped {busy}: 503")),
        "{said}"
    );
    assert!(
        lines[1].starts_with(&format!("skipped {hello}: answered 200")),
        "{said}"
    );
    assert!(lines[1].contains("not a helix API"), "{said}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("id"));

    // Nothing but foreign endpoints: a failure (exit 1) that lists each.
    let out = helix(&c, &format!("{busy},{hello}"), &["model", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("{busy}: 503")), "{said}");
    assert!(said.contains(&format!("{hello}: answered 200")), "{said}");
}

/// An endpoint nothing listens on is "connection refused", in those words.
#[test]
fn an_unreachable_endpoint_says_connection_refused() {
    let ip = alloc_ip();
    let url = format!("http://{ip}:{}", free_port(ip));
    let out = Command::new(helix_bin())
        .args(["--url", &url, "model", "list"])
        .env("HELIX_API_KEY", "unused")
        .output()
        .expect("run helix");
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        said.trim(),
        format!("error: cannot use {url}: connection refused"),
        "{said}"
    );
}

/// `helix node start` on the data dir of a running node stops at once, naming the dir, the
/// process and the node that hold it.
#[test]
fn a_data_dir_in_use_names_its_node() {
    let c = Cluster::new(1);
    let out = Command::new(helix_bin())
        .args(["node", "start"])
        .args(c.node_args(1))
        .output()
        .expect("run helix");
    assert!(!out.status.success(), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let dir = c.node(1).data_dir.display().to_string();
    assert!(
        said.contains(&format!("the data dir {dir} is in use")),
        "{said}"
    );
    assert!(
        said.contains(&format!("node {}", c.id(1))) && said.contains("pid "),
        "{said}"
    );
}
