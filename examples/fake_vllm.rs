//! A stand-in for vLLM in tests: invoked exactly like it,
//! `fake_vllm serve <model_id> --host H --port P [--max-model-len N] [...]`,
//! it serves `GET /health` and `GET /v1/models`, and records how it was launched.
//!
//! - `FAKE_VLLM_RECORD_DIR`: append one JSON line per launch to `launches.jsonl` there, with
//!   the sha256 of `HF_TOKEN` (never its value).
//! - `--fake-startup-ms N`: wait N ms before serving.
//! - `--fake-crash-after-ms N`: exit with code 3 after N ms of serving.
//! - `--fake-gated`: exit 1 with a Hugging Face gated-repo error, before serving, when
//!   `HF_TOKEN` is absent or its sha256 differs from `FAKE_VLLM_GATED_TOKEN_SHA256` (if set).
//! - `--fake-gated-after FILE`: with `--fake-gated`, fail only once FILE exists (waiting at
//!   most a minute), as real vLLM takes seconds to reach Hugging Face's 401: the test decides
//!   when the attempt fails.
//! - `--fake-echo-token`: print `token is $HF_TOKEN` at start (to test redaction).
//!
//! SIGTERM ends it with code 0; failing to bind, with code 1.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use sha2::{Digest, Sha256};

type CInt = std::os::raw::c_int;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let args = &argv[1..];
    if args.first().map(String::as_str) != Some("serve") || args.len() < 2 {
        eprintln!("usage: fake_vllm serve <model_id> --host H --port P [...]");
        std::process::exit(2);
    }
    let model = args[1].clone();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| -> Option<String> {
        let eq = format!("{name}=");
        args.iter().enumerate().find_map(|(i, a)| {
            if a == name {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(&eq).map(str::to_string)
            }
        })
    };
    let number = |name: &str| -> Option<u64> {
        value(name).map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("fake_vllm: {name} expects a number, got {v:?}");
                std::process::exit(2)
            })
        })
    };
    let host = value("--host").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = number("--port").unwrap_or(8000) as u16;
    let token = std::env::var("HF_TOKEN").ok();
    let token_sha = token.as_deref().map(sha256_hex);
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);

    if let Ok(dir) = std::env::var("FAKE_VLLM_RECORD_DIR") {
        let record = serde_json::json!({
            "model": model,
            "argv": argv,
            "pid": std::process::id(),
            "port": port,
            "hf_token_present": token.is_some(),
            "hf_token_sha256": token_sha,
            "cuda_visible_devices": std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            "helix_slot_id": std::env::var("HELIX_SLOT_ID").ok(),
            "started_ms": started_ms,
        });
        let line = format!("{record}\n");
        let path = std::path::Path::new(&dir).join("launches.jsonl");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("fake_vllm: cannot record launch in {}: {e}", path.display());
        }
    }

    if flag("--fake-echo-token") {
        println!("token is {}", token.as_deref().unwrap_or(""));
    }
    if flag("--fake-gated") {
        let allowed = match (&token_sha, std::env::var("FAKE_VLLM_GATED_TOKEN_SHA256")) {
            (None, _) => false,
            (Some(sha), Ok(want)) => sha.eq_ignore_ascii_case(want.trim()),
            (Some(_), Err(_)) => true,
        };
        if !allowed {
            if let Some(gate) = value("--fake-gated-after") {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !std::path::Path::new(&gate).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            eprintln!(
                "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo \
                 for url https://huggingface.co/{model}/resolve/main/config.json. Access to model \
                 {model} is restricted. You must have access to it and be authenticated to access it."
            );
            std::process::exit(1);
        }
    }

    // SIGTERM ends it with code 0, as a graceful shutdown of vLLM would.
    let on_term = SigAction::new(
        SigHandler::Handler(on_sigterm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    let _ = unsafe { sigaction(Signal::SIGTERM, &on_term) };

    if let Some(ms) = number("--fake-startup-ms") {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            exit_if_terminated();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    exit_if_terminated();

    let listener = match TcpListener::bind((host.as_str(), port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake_vllm: cannot bind {host}:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("fake_vllm: serving {model}");
    println!("INFO: Uvicorn running on http://{host}:{port}");
    let _ = std::io::stdout().flush();

    let crash_at =
        number("--fake-crash-after-ms").map(|ms| Instant::now() + Duration::from_millis(ms));
    if let Some(at) = crash_at {
        std::thread::spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            eprintln!("fake crash");
            std::process::exit(3);
        });
    }

    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    loop {
        exit_if_terminated();
        match listener.accept() {
            Ok((conn, _)) => {
                let model = model.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    let _ = handle(conn, &model);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: CInt) {
    TERMINATED.store(true, Ordering::SeqCst);
}

fn exit_if_terminated() {
    if TERMINATED.load(Ordering::SeqCst) {
        println!("fake_vllm: SIGTERM, shutting down");
        std::process::exit(0);
    }
}

fn handle(mut conn: TcpStream, model: &str) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers (a GET has no body).
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/health") => ("200 OK", String::new()),
        ("GET", "/v1/models") => (
            "200 OK",
            serde_json::json!({
                "object": "list",
                "data": [{"id": model, "object": "model"}],
            })
            .to_string(),
        ),
        _ => ("404 Not Found", r#"{"error":"not found"}"#.to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes())?;
    conn.flush()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
