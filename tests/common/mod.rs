//! Integration-test harness: runs real `helix` processes, each node on its own loopback
//! address 127.0.0.N, and talks to them over plain HTTP/1.1.
//!
//! - Every test owns a [`Cluster`] (its own temp dir). Node K keeps its data in
//!   `tmp/nodeK/data` and its process output (stdout and stderr) in `tmp/nodeK.log`.
//! - Waiting is always done by polling with a deadline ([`wait_until`], [`wait_for`]),
//!   never by fixed sleeps.
//! - Dropping a [`Cluster`] SIGKILLs every process it started; when the test is panicking it
//!   first prints the tail of every node's log.
//!
//! The HTTP client is a deliberately small one over `std::net::TcpStream` (one request per
//! connection, `Connection: close`). It reads the response while a large request body is
//! still being written, so a server that answers 413 early is seen as 413, not as a reset.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// How long a node may take to print `ready` (loaded 2-core CI machines).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Default deadline for waiting on cluster state.
pub const WAIT: Duration = Duration::from_secs(60);
/// Per-request timeout of the HTTP client.
pub const REQ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGTERM-ed node may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval of the wait helpers.
pub const POLL: Duration = Duration::from_millis(100);

pub fn helix_bin() -> &'static str {
    env!("CARGO_BIN_EXE_helix")
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `f` until it returns `Ok`, or panics after `timeout` with `what` and the last `Err`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:.1}s waiting until {what}; last observed: {last}",
                start.elapsed().as_secs_f64()
            );
        }
        thread::sleep(POLL);
    }
}

/// Polls `f` until it returns true, or panics after `timeout` naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        if f() {
            Ok(())
        } else {
            Err("condition false".into())
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Addresses

fn pseudo_random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos
        ^ (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    // splitmix64 finaliser
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

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
    /// The `error` message of an error response, panicking if there is none.
    pub fn error_message(&self) -> String {
        let v = self.json();
        match v.get("error").and_then(|e| e.as_str()) {
            Some(s) if !s.trim().is_empty() => s.to_string(),
            _ => panic!(
                "status {}: expected {{\"error\": \"...\"}}, got {}",
                self.status,
                self.text()
            ),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete HTTP/1.1 response out of `buf`; `None` while it is incomplete.
fn parse_response(buf: &[u8], eof: bool, head_request: bool) -> Option<Resp> {
    let hdr_end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..hdr_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[hdr_end + 4..];
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if (100..200).contains(&status) {
        // Interim response: skip it and parse what follows.
        return parse_response(rest, eof, head_request);
    }
    if head_request || status == 204 || status == 304 {
        return Some(Resp {
            status,
            headers,
            body: Vec::new(),
        });
    }
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = pos + find(&rest[pos..], b"\r\n")?;
            let size_str = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                return Some(Resp {
                    status,
                    headers,
                    body,
                });
            }
            if rest.len() < pos + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
    }
    if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() >= cl {
            return Some(Resp {
                status,
                headers,
                body: rest[..cl].to_vec(),
            });
        }
        return None;
    }
    if eof {
        return Some(Resp {
            status,
            headers,
            body: rest.to_vec(),
        });
    }
    None
}

/// One HTTP/1.1 request on a fresh connection. `headers` are sent as given; a body gets a
/// `Content-Length`. The whole exchange is bounded by `timeout`.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Resp> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&sa, timeout)?;
    s.set_nodelay(true).ok();
    s.set_write_timeout(Some(timeout))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        None if method != "GET" && method != "HEAD" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;

    let mut write_err: Option<io::Error> = None;
    let mut writer: Option<JoinHandle<()>> = None;
    if let Some(b) = body {
        if b.len() <= 64 * 1024 {
            if let Err(e) = s.write_all(b) {
                write_err = Some(e);
            }
        } else {
            // Large body: write it from another thread and read the answer meanwhile, so an
            // early 413 is seen even if the server never reads the rest.
            let mut w = s.try_clone()?;
            let b = b.to_vec();
            writer = Some(thread::spawn(move || {
                let _ = w.write_all(&b);
            }));
        }
    }

    let head_request = method == "HEAD";
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let result = loop {
        if let Some(r) = parse_response(&buf, false, head_request) {
            break Ok(r);
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{method} http://{addr}{path}: no complete response within {timeout:?}"),
            ));
        }
        s.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
        match s.read(&mut chunk) {
            Ok(0) => {
                break parse_response(&buf, true, head_request).ok_or_else(|| {
                    write_err.take().unwrap_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{method} http://{addr}{path}: connection closed before a complete response"),
                        )
                    })
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => break parse_response(&buf, true, head_request).ok_or(e),
        }
    };
    let _ = s.shutdown(Shutdown::Both);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result
}

/// A client for one node's API address, with an optional API key.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: String,
    pub key: Option<String>,
    pub timeout: Duration,
}

impl Client {
    pub fn new(addr: &str, key: Option<&str>) -> Client {
        Client {
            addr: addr.to_string(),
            key: key.map(str::to_string),
            timeout: REQ_TIMEOUT,
        }
    }
    pub fn with_key(&self, key: Option<&str>) -> Client {
        Client {
            key: key.map(str::to_string),
            ..self.clone()
        }
    }
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }
    /// A request with the client's key; a body is sent as `application/json`.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Resp> {
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        http_request(&self.addr, method, path, &headers, body, self.timeout)
    }
    pub fn get(&self, path: &str) -> io::Result<Resp> {
        self.request("GET", path, None)
    }
    pub fn delete(&self, path: &str) -> io::Result<Resp> {
        self.request("DELETE", path, None)
    }
    pub fn post_json(&self, path: &str, v: &Value) -> io::Result<Resp> {
        self.request("POST", path, Some(v.to_string().as_bytes()))
    }
    pub fn put_json(&self, path: &str, v: &Value) -> io::Result<Resp> {
        self.request("PUT", path, Some(v.to_string().as_bytes()))
    }
    pub fn post_raw(&self, path: &str, body: &[u8]) -> io::Result<Resp> {
        self.request("POST", path, Some(body))
    }
    pub fn put_raw(&self, path: &str, body: &[u8]) -> io::Result<Resp> {
        self.request("PUT", path, Some(body))
    }

    /// GET returning parsed JSON when the status is 200, else a description.
    pub fn get_json_ok(&self, path: &str) -> Result<Value, String> {
        match self.get(path) {
            Ok(r) if r.status == 200 => serde_json::from_slice(&r.body)
                .map_err(|e| format!("GET {path}: bad JSON ({e}): {}", r.text())),
            Ok(r) => Err(format!(
                "GET {path} on {}: status {}: {}",
                self.addr,
                r.status,
                r.text()
            )),
            Err(e) => Err(format!("GET {path} on {}: {e}", self.addr)),
        }
    }

    /// Creates model `id` (name = id). Returns the status, or the transport error.
    pub fn create_model(&self, id: &str) -> io::Result<Resp> {
        self.post_json("/api/v1/helix-models", &json!({ "id": id, "name": id }))
    }

    /// The set of model ids this node lists (`stale` = local copy).
    pub fn model_ids(&self, stale: bool) -> Result<BTreeSet<String>, String> {
        let path = if stale {
            "/api/v1/helix-models?stale=true"
        } else {
            "/api/v1/helix-models"
        };
        let v = self.get_json_ok(path)?;
        let arr = v
            .as_array()
            .ok_or_else(|| format!("GET {path}: not an array: {v}"))?;
        arr.iter()
            .map(|m| {
                m.get("id")
                    .and_then(|i| i.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| format!("model without id: {m}"))
            })
            .collect()
    }

    /// Writes model `id`, retrying the same id until it is acknowledged (201, or 409 after an
    /// earlier attempt that may have committed). Panics after `timeout`.
    pub fn create_model_acked(&self, id: &str, timeout: Duration) {
        let mut attempted = false;
        wait_for(
            timeout,
            &format!("model {id} is created through {}", self.addr),
            || {
                let r = self.create_model(id);
                match r {
                    Ok(r) if r.status == 201 => Ok(()),
                    Ok(r) if r.status == 409 && attempted => Ok(()),
                    Ok(r) => {
                        attempted = true;
                        Err(format!("status {}: {}", r.status, r.text()))
                    }
                    Err(e) => {
                        attempted = true;
                        Err(e.to_string())
                    }
                }
            },
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and clusters

pub struct Node {
    /// 1-based index inside the test (`nodeK`).
    pub k: usize,
    pub ip: Ipv4Addr,
    pub api_addr: String,
    pub peer_addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub config_path: Option<PathBuf>,
    /// The Raft node id, once known.
    pub id: Option<u64>,
    child: Option<Child>,
    ready: Arc<AtomicBool>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    tee: Option<JoinHandle<()>>,
}

impl Node {
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Lines the current process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }
    pub fn printed_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub admin_key: String,
    pub join_token: String,
    /// Config file contents given to every node started by `bootstrap`/`join`, if any.
    pub config: Option<String>,
    /// Extra environment for every node process started from now on.
    pub env: Vec<(String, String)>,
}

pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

impl Cluster {
    /// An empty cluster (no node started yet).
    pub fn empty(config: Option<&str>) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("helix-it-")
            .tempdir()
            .expect("tempdir");
        Cluster {
            tmp,
            nodes: Vec::new(),
            admin_key: String::new(),
            join_token: String::new(),
            config: config.map(str::to_string),
            env: Vec::new(),
        }
    }

    /// Bootstraps node 1 and joins nodes 2..=n one after the other.
    pub fn new(n: usize) -> Cluster {
        Cluster::with_config(n, None)
    }

    pub fn with_config(n: usize, config: Option<&str>) -> Cluster {
        Cluster::with_env(n, config, &[])
    }

    /// Like [`Cluster::with_config`], with extra environment variables for every node process.
    pub fn with_env(n: usize, config: Option<&str>, env: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::empty(config);
        c.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let k = c.add_node();
        c.bootstrap(k);
        for _ in 1..n {
            let k = c.add_node();
            c.join(k, 1);
        }
        // A joiner is `ready` as a learner; the leader promotes it shortly after. Tests that
        // kill nodes need the voters in place first.
        c.wait_members_settled();
        c
    }

    /// Waits until every running node reports all started nodes as members, the first five
    /// of them (`raft.max_voters`) as voters, and a leader.
    pub fn wait_members_settled(&mut self) {
        let ids: BTreeSet<u64> = self.nodes.iter().filter_map(|n| n.id).collect();
        let want_voters = ids.len().min(5);
        let running: Vec<usize> = self
            .nodes
            .iter_mut()
            .filter_map(|n| if n.is_running() { Some(n.k) } else { None })
            .collect();
        for k in running {
            wait_for(
                WAIT,
                &format!(
                    "node{k} reports members {ids:?}, {want_voters} of them voters, and a leader"
                ),
                || {
                    let st = self.status(k)?;
                    let members = st["members"]
                        .as_array()
                        .ok_or_else(|| format!("no members: {st}"))?;
                    let got: BTreeSet<u64> =
                        members.iter().filter_map(|m| m["id"].as_u64()).collect();
                    let voters = members.iter().filter(|m| m["voter"] == json!(true)).count();
                    if got == ids && voters == want_voters && st["leader_id"].as_u64().is_some() {
                        Ok(())
                    } else {
                        Err(st.to_string())
                    }
                },
            );
        }
    }

    /// Allocates node `K` (addresses, directories, config file) without starting it.
    pub fn add_node(&mut self) -> usize {
        let k = self.nodes.len() + 1;
        let ip = alloc_ip();
        let api_port = free_port(ip);
        let mut peer_port = free_port(ip);
        while peer_port == api_port {
            peer_port = free_port(ip);
        }
        let root = self.tmp.path();
        let data_dir = root.join(format!("node{k}")).join("data");
        fs::create_dir_all(data_dir.parent().unwrap()).unwrap();
        let config_path = self.config.as_ref().map(|cfg| {
            let p = root.join(format!("node{k}.toml"));
            fs::write(&p, cfg).unwrap();
            p
        });
        self.nodes.push(Node {
            k,
            ip,
            api_addr: format!("{ip}:{api_port}"),
            peer_addr: format!("{ip}:{peer_port}"),
            data_dir,
            log_path: root.join(format!("node{k}.log")),
            config_path,
            id: None,
            child: None,
            ready: Arc::new(AtomicBool::new(false)),
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
            tee: None,
        });
        k
    }

    pub fn node(&self, k: usize) -> &Node {
        &self.nodes[k - 1]
    }
    pub fn node_mut(&mut self, k: usize) -> &mut Node {
        &mut self.nodes[k - 1]
    }

    /// `--data-dir D --api-addr A --peer-addr P --gpus none [--config F]`
    pub fn common_args(&self, k: usize) -> Vec<String> {
        self.args_with_gpus(k, "none")
    }

    /// [`Cluster::common_args`] with `--gpus gpus` (e.g. `80GB,80GB`).
    pub fn args_with_gpus(&self, k: usize, gpus: &str) -> Vec<String> {
        let n = self.node(k);
        let mut a: Vec<String> = vec![
            "--data-dir".into(),
            n.data_dir.display().to_string(),
            "--api-addr".into(),
            n.api_addr.clone(),
            "--peer-addr".into(),
            n.peer_addr.clone(),
            "--gpus".into(),
            gpus.into(),
        ];
        if let Some(p) = &n.config_path {
            a.push("--config".into());
            a.push(p.display().to_string());
        }
        a
    }

    /// Starts `helix ARGS` as node `k`'s process. stdout is copied line by line into the
    /// node's log (and remembered, to see `ready`); stderr goes straight to the log.
    pub fn spawn(&mut self, k: usize, args: &[String]) {
        {
            let n = self.node_mut(k);
            assert!(n.child.is_none(), "node{k} already has a process");
        }
        let log_path = self.node(k).log_path.clone();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        writeln!(
            log,
            "===== harness: starting node{k}: helix {} =====",
            args.join(" ")
        )
        .unwrap();
        let stderr_log = log.try_clone().unwrap();
        let mut child = Command::new(helix_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .env_remove("HF_TOKEN")
            .env_remove("HELIX_URL")
            .env_remove("HELIX_API_KEY")
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", helix_bin()));
        let stdout = child.stdout.take().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready2, lines2) = (ready.clone(), lines.clone());
        let tee = thread::spawn(move || tee_stdout(stdout, log, ready2, lines2));
        let n = self.node_mut(k);
        n.child = Some(child);
        n.ready = ready;
        n.stdout_lines = lines;
        n.tee = Some(tee);
    }

    /// Waits until node `k`'s current process prints a line containing `ready`.
    pub fn wait_ready(&mut self, k: usize) {
        let start = Instant::now();
        loop {
            if self.node(k).printed_ready() {
                return;
            }
            let n = self.node_mut(k);
            if let Some(c) = &mut n.child {
                if let Ok(Some(st)) = c.try_wait() {
                    // Give the tee thread a moment to copy the last lines.
                    if let Some(t) = n.tee.take() {
                        let _ = t.join();
                    }
                    if n.printed_ready() {
                        return;
                    }
                    n.child = None;
                    panic!("node{k} exited ({st}) before printing `ready`");
                }
            } else {
                panic!("node{k} has no process");
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!("node{k} did not print `ready` within {READY_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `helix node start` on an empty data dir, waits for `ready`, reads the admin key and
    /// the join token, and learns the node id.
    pub fn bootstrap(&mut self, k: usize) {
        let mut args: Vec<String> = vec!["node".into(), "start".into()];
        args.extend(self.common_args(k));
        self.spawn(k, &args);
        self.wait_ready(k);
        let dd = self.node(k).data_dir.clone();
        self.admin_key = read_secret(&dd.join("admin.key"));
        self.join_token = read_secret(&dd.join("join.token"));
        self.learn_id(k);
    }

    /// `helix node join http://<node via> --token T`, waits for `ready`, learns the id.
    pub fn join(&mut self, k: usize, via: usize) {
        let token = self.join_token.clone();
        self.spawn_join(k, via, &token);
        self.wait_ready(k);
        self.learn_id(k);
    }

    /// Starts `helix node join` with the given token without waiting for anything.
    pub fn spawn_join(&mut self, k: usize, via: usize, token: &str) {
        let url = format!("http://{}", self.node(via).api_addr);
        let mut args: Vec<String> = vec![
            "node".into(),
            "join".into(),
            url,
            "--token".into(),
            token.into(),
        ];
        args.extend(self.common_args(k));
        self.spawn(k, &args);
    }

    /// `helix node start` with node `k`'s data dir and addresses, without waiting.
    pub fn spawn_restart(&mut self, k: usize) {
        let mut args: Vec<String> = vec!["node".into(), "start".into()];
        args.extend(self.common_args(k));
        self.spawn(k, &args);
    }

    /// Restarts node `k` (same data dir and addresses) and waits for `ready`.
    pub fn restart(&mut self, k: usize) {
        self.spawn_restart(k);
        self.wait_ready(k);
    }

    fn learn_id(&mut self, k: usize) {
        let c = self.client(k);
        let id = wait_for(WAIT, &format!("node{k} reports its node id"), || {
            let v = c.get_json_ok("/api/v1/system/config")?;
            v.get("node_id")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| format!("no node_id in {v}"))
        });
        if let Some(old) = self.node(k).id {
            assert_eq!(old, id, "node{k} changed its node id");
        }
        self.node_mut(k).id = Some(id);
    }

    /// SIGKILL node `k` and reap it.
    pub fn kill9(&mut self, k: usize) {
        let n = self.node_mut(k);
        let mut child = n
            .child
            .take()
            .unwrap_or_else(|| panic!("node{k} is not running"));
        let _ = child.kill();
        let _ = child.wait();
        if let Some(t) = n.tee.take() {
            let _ = t.join();
        }
        let mut log = OpenOptions::new().append(true).open(&n.log_path).unwrap();
        let _ = writeln!(log, "===== harness: node{k} killed with SIGKILL =====");
    }

    /// SIGSTOP node `k`: it stays a member but answers nothing, like a node stalled on I/O.
    pub fn pause(&mut self, k: usize) {
        self.signal(k, nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT node `k` after [`Cluster::pause`].
    pub fn resume(&mut self, k: usize) {
        self.signal(k, nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&mut self, k: usize, signal: nix::sys::signal::Signal) {
        let pid = self
            .node(k)
            .pid()
            .unwrap_or_else(|| panic!("node{k} is not running"));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .unwrap_or_else(|e| panic!("send {signal} to node{k}: {e}"));
    }

    /// Sends SIGTERM and waits for the exit status (SIGKILL and panic after STOP_TIMEOUT).
    pub fn sigterm(&mut self, k: usize) -> ExitStatus {
        let n = self.node_mut(k);
        let mut child = n
            .child
            .take()
            .unwrap_or_else(|| panic!("node{k} is not running"));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node{k} did not exit within {STOP_TIMEOUT:?} after SIGTERM");
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(t) = n.tee.take() {
            let _ = t.join();
        }
        let mut log = OpenOptions::new().append(true).open(&n.log_path).unwrap();
        let _ = writeln!(
            log,
            "===== harness: node{k} exited after SIGTERM: {status} ====="
        );
        status
    }

    /// SIGTERM node `k` and assert it exits with status 0.
    pub fn stop(&mut self, k: usize) {
        let st = self.sigterm(k);
        assert_eq!(
            st.code(),
            Some(0),
            "node{k} should exit 0 after SIGTERM, got {st}"
        );
    }

    /// Waits for node `k`'s process to exit on its own.
    pub fn wait_exit(&mut self, k: usize, timeout: Duration) -> ExitStatus {
        let n = self.node_mut(k);
        let child = n
            .child
            .as_mut()
            .unwrap_or_else(|| panic!("node{k} is not running"));
        let start = Instant::now();
        let st = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > timeout {
                panic!("node{k} did not exit within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(50));
        };
        n.child = None;
        if let Some(t) = n.tee.take() {
            let _ = t.join();
        }
        st
    }

    // ----- HTTP helpers ----------------------------------------------------------------------

    /// A client for node `k` with the admin key.
    pub fn client(&self, k: usize) -> Client {
        Client::new(&self.node(k).api_addr, Some(&self.admin_key))
    }

    /// GET on node `k` with the admin key; panics on a transport error.
    pub fn get(&self, k: usize, path: &str) -> Resp {
        self.client(k)
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path} on node{k}: {e}"))
    }
    pub fn put_json(&self, k: usize, path: &str, v: &Value) -> Resp {
        self.client(k)
            .put_json(path, v)
            .unwrap_or_else(|e| panic!("PUT {path} on node{k}: {e}"))
    }
    pub fn post_json(&self, k: usize, path: &str, v: &Value) -> Resp {
        self.client(k)
            .post_json(path, v)
            .unwrap_or_else(|e| panic!("POST {path} on node{k}: {e}"))
    }

    /// `GET /api/v1/cluster/status` on node `k`.
    pub fn status(&self, k: usize) -> Result<Value, String> {
        self.client(k).get_json_ok("/api/v1/cluster/status")
    }

    /// The node index (1-based) whose Raft id is `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().find(|n| n.id == Some(id)).map(|n| n.k)
    }

    /// Waits until every node in `ks` reports the same leader, which is one of `ks`;
    /// returns the leader's index.
    pub fn wait_leader(&self, ks: &[usize]) -> usize {
        wait_for(
            WAIT,
            &format!("nodes {ks:?} agree on a leader among them"),
            || {
                let mut seen = Vec::new();
                for &k in ks {
                    let st = self.status(k)?;
                    seen.push(st.get("leader_id").and_then(|l| l.as_u64()));
                }
                let first = seen[0].ok_or_else(|| format!("leaders seen: {seen:?}"))?;
                if seen.iter().any(|l| *l != Some(first)) {
                    return Err(format!("leaders seen: {seen:?}"));
                }
                match self.index_of(first) {
                    Some(k) if ks.contains(&k) => Ok(k),
                    _ => Err(format!("leader id {first} is not one of {ks:?}")),
                }
            },
        )
    }

    /// The set of member ids node `k` reports in `/api/v1/cluster/status`.
    pub fn member_ids(&self, k: usize) -> Result<BTreeSet<u64>, String> {
        let st = self.status(k)?;
        let members = st
            .get("members")
            .and_then(|m| m.as_array())
            .ok_or_else(|| format!("no members array in {st}"))?;
        members
            .iter()
            .map(|m| {
                m.get("id")
                    .and_then(|i| i.as_u64())
                    .ok_or_else(|| format!("member without id: {m}"))
            })
            .collect()
    }

    /// Waits until node `k` lists (stale, local copy) every id in `ids`.
    pub fn wait_models_present(&self, k: usize, ids: &BTreeSet<String>, timeout: Duration) {
        let c = self.client(k);
        wait_for(
            timeout,
            &format!(
                "node{k} has all {} acknowledged models (stale read)",
                ids.len()
            ),
            || {
                let have = c.model_ids(true)?;
                let missing: Vec<&String> = ids.difference(&have).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} missing, e.g. {:?}",
                        missing.len(),
                        &missing[..missing.len().min(5)]
                    ))
                }
            },
        )
    }

    /// Waits until `/api/v1/system/config` on node `k` reports `huggingface_token_set == set`.
    pub fn wait_token_set(&self, k: usize, set: bool) {
        let c = self.client(k);
        wait_for(
            WAIT,
            &format!("node{k} system/config reports huggingface_token_set={set}"),
            || {
                let v = c.get_json_ok("/api/v1/system/config")?;
                match v.get("huggingface_token_set").and_then(|b| b.as_bool()) {
                    Some(b) if b == set => Ok(()),
                    _ => Err(v.to_string()),
                }
            },
        )
    }

    /// Tails of every node's log, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "\n----- node{} (api {}, peer {}, id {:?}) last {n} lines of {} -----\n{}\n",
                node.k,
                node.api_addr,
                node.peer_addr,
                node.id,
                node.log_path.display(),
                tail(&node.log_path, n)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut states = Vec::new();
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // A process that exited without the harness asking is worth knowing about.
                match c.try_wait() {
                    Ok(Some(st)) => states.push(format!(
                        "node{} (pid {}) had exited on its own: {st}",
                        n.k,
                        c.id()
                    )),
                    _ => states.push(format!("node{} (pid {}) was running", n.k, c.id())),
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(t) = n.tee.take() {
                let _ = t.join();
            }
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tails(60));
            eprintln!("process states at the end of the test: {states:#?}");
        }
        // HELIX_TEST_KEEP=1 keeps the data dirs and logs for a look afterwards.
        if std::env::var_os("HELIX_TEST_KEEP").is_some() {
            let p = std::mem::replace(&mut self.tmp, tempfile::tempdir().expect("tempdir")).keep();
            eprintln!("kept test directory {}", p.display());
        }
    }
}

fn read_secret(p: &Path) -> String {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let s = s.trim().to_string();
    assert!(!s.is_empty(), "{} is empty", p.display());
    s
}

fn tee_stdout(
    stdout: std::process::ChildStdout,
    mut log: File,
    ready: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let _ = log.write_all(&buf);
                if !buf.ends_with(b"\n") {
                    let _ = log.write_all(b"\n");
                }
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if line.to_ascii_lowercase().contains("ready") {
                    ready.store(true, Ordering::SeqCst);
                }
                lines.lock().unwrap().push(line);
            }
        }
    }
}

/// Distinct ids, handy for sets of acknowledged writes.
pub fn id_set<I: IntoIterator<Item = String>>(it: I) -> BTreeSet<String> {
    it.into_iter().collect()
}
