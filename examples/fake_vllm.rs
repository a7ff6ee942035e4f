//! A stand-in for vLLM in tests: invoked exactly like it,
//! `fake_vllm serve <model_id> --host H --port P [--max-model-len N] [...]`,
//! it records how it was launched and serves a small OpenAI-compatible API over HTTP/1.1:
//! one request per connection (always `Connection: close`), bodies by `Content-Length` only
//! (at most 32 MiB, else 413; `Transfer-Encoding` gets 411).
//!
//! - `GET /health`: 200, empty body.
//! - `GET /v1/models`: `{"object":"list","data":[{"id":MODEL,"object":"model","owned_by":"fake_vllm"}]}`.
//! - `POST /v1/chat/completions` (needs `messages`), `POST /v1/completions` (needs `prompt`):
//!   the text is `served by slot $HELIX_SLOT_ID pid PID token1 token2 ...`, `max_tokens`
//!   tokens in all (or `max_completion_tokens`; default 8, clamped to 1..=4096), the
//!   `served by ...` prefix being the first; `finish_reason` is always `stop`;
//!   `usage.prompt_tokens` counts the whitespace-separated words of the messages' contents
//!   (strings or text parts) or of the prompt. With `"stream": true`: SSE, one
//!   `data: {chunk}` per token (chat: `chat.completion.chunk`, `delta.role` in the first),
//!   a chunk with `usage` and no choices if `stream_options.include_usage`, then
//!   `data: [DONE]`. A client that goes away (EOF or write error) stops generation.
//! - `POST /v1/embeddings`: `input` a string or an array of strings; each gets 8 floats,
//!   the first 8 bytes of its sha256 / 255.
//! - `GET /metrics`: Prometheus text, gauges `vllm:num_requests_running` (R),
//!   `vllm:num_requests_waiting` (W) and `vllm:kv_cache_usage_perc` (K), each labelled
//!   `{model_name="MODEL"}`: with I the requests in flight (chat, completions, embeddings),
//!   R = min(I, max running), W = I - R + queue, K = min(1, R / max running).
//! - Anything else: 404 `{"error":"not found"}` (405 for a known path with another method).
//!
//! Completion, chat and embedding answers, and every stream chunk, carry `helix_test_slot`
//! (`HELIX_SLOT_ID` or null) and `helix_test_pid`. Errors have vLLM's shape
//! `{"error":{"message":..,"type":..,"param":null,"code":N}}`: 400 `BadRequestError` for a
//! body that is not a JSON object or lacks a required field, 404 `NotFoundError` for a
//! `model` other than MODEL (an absent `model` means MODEL).
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
//! - `--fake-ttft-ms N` (default 0): wait before the first token (streaming), before a
//!   non-streaming answer (which then also waits N tokens x `--fake-token-ms`), and before
//!   an embeddings answer.
//! - `--fake-token-ms N` (default 0): wait between streamed tokens.
//! - `--fake-max-running N` (default 8): requests in flight beyond N count as waiting.
//! - `--fake-queue N` (default `$FAKE_VLLM_QUEUE`, else 0): N more waiting requests in
//!   `/metrics`, to look busy (the variable lets one node's replicas look busier).
//!
//! SIGTERM ends it with code 0; failing to bind, with code 1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde_json::{json, Map, Value};
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
    let server = Arc::new(Server {
        model: model.clone(),
        slot: std::env::var("HELIX_SLOT_ID").ok(),
        pid: std::process::id(),
        ttft: Duration::from_millis(number("--fake-ttft-ms").unwrap_or(0)),
        token: Duration::from_millis(number("--fake-token-ms").unwrap_or(0)),
        max_running: number("--fake-max-running").unwrap_or(8),
        queue: number("--fake-queue")
            .or_else(|| {
                std::env::var("FAKE_VLLM_QUEUE")
                    .ok()
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0),
    });
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

    // A blocking accept answers at once; SIGTERM is watched beside it.
    std::thread::spawn(|| loop {
        exit_if_terminated();
        std::thread::sleep(Duration::from_millis(10));
    });
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let server = Arc::clone(&server);
                std::thread::spawn(move || {
                    let _ = handle(conn, &server);
                });
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

/// What the double serves, and how slowly.
struct Server {
    model: String,
    slot: Option<String>,
    pid: u32,
    ttft: Duration,
    token: Duration,
    max_running: u64,
    queue: u64,
}

/// Completion, chat and embedding requests being served now.
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const MAX_BODY: u64 = 32 << 20;
const MAX_LINE: u64 = 16 << 10;
const JSON: &str = "application/json";

/// Counts one request in flight while it lives.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// An answer that ends a request early: status and message.
type Reject = (u16, String);

fn handle(mut conn: TcpStream, srv: &Server) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let req = match read_request(&mut conn)? {
        Ok(req) => req,
        Err((code, message)) => return respond_error(&mut conn, code, &message),
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => respond(&mut conn, 200, JSON, ""),
        ("GET", "/v1/models") => {
            let models = json!({
                "object": "list",
                "data": [{"id": srv.model, "object": "model", "owned_by": "fake_vllm"}],
            });
            respond(&mut conn, 200, JSON, &models.to_string())
        }
        ("GET", "/metrics") => respond(&mut conn, 200, "text/plain; version=0.0.4", &metrics(srv)),
        ("POST", "/v1/chat/completions") => complete(conn, srv, &req.body, true),
        ("POST", "/v1/completions") => complete(conn, srv, &req.body, false),
        ("POST", "/v1/embeddings") => embed(conn, srv, &req.body),
        (
            _,
            "/health"
            | "/v1/models"
            | "/metrics"
            | "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings",
        ) => respond(&mut conn, 405, JSON, r#"{"detail":"Method Not Allowed"}"#),
        _ => respond(&mut conn, 404, JSON, r#"{"error":"not found"}"#),
    }
}

/// Reads the request line, the headers and a `Content-Length` body.
fn read_request(conn: &mut TcpStream) -> std::io::Result<Result<Request, Reject>> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut read_line = |line: &mut String| -> std::io::Result<bool> {
        let n = (&mut reader).take(MAX_LINE).read_line(line)?;
        Ok(n as u64 == MAX_LINE && !line.ends_with('\n'))
    };
    let mut line = String::new();
    if read_line(&mut line)? {
        return Ok(Err((414, "request line too long".into())));
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(Err((400, "malformed request line".into())));
    };
    let (method, path) = (
        method.to_string(),
        target.split('?').next().unwrap_or("").to_string(),
    );
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut header = String::new();
        let too_long = read_line(&mut header)?;
        if too_long || headers.len() >= 100 {
            return Ok(Err((431, "request headers too large".into())));
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some() {
        return Ok(Err((
            411,
            "only Content-Length bodies are supported".into(),
        )));
    }
    let len = match header("content-length").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(len)) if len <= MAX_BODY => len,
        Some(Ok(len)) => return Ok(Err((413, format!("body of {len} bytes over {MAX_BODY}")))),
        Some(Err(_)) => return Ok(Err((400, "bad Content-Length".into()))),
    };
    if len > 0 && header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = vec![0; len as usize];
    reader.read_exact(&mut body)?;
    Ok(Ok(Request { method, path, body }))
}

fn respond(conn: &mut TcpStream, code: u16, content_type: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

/// An error in vLLM's (OpenAI's) shape.
fn respond_error(conn: &mut TcpStream, code: u16, message: &str) -> std::io::Result<()> {
    let kind = if code == 404 {
        "NotFoundError"
    } else {
        "BadRequestError"
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    respond(conn, code, JSON, &body.to_string())
}

/// The body as a JSON object for this server's model.
fn parse_body(body: &[u8], srv: &Server) -> Result<Map<String, Value>, Reject> {
    let Ok(Value::Object(obj)) = serde_json::from_slice(body) else {
        return Err((400, "the body must be a JSON object".into()));
    };
    match obj.get("model") {
        None | Some(Value::Null) => Ok(obj),
        Some(Value::String(m)) if *m == srv.model => Ok(obj),
        Some(Value::String(m)) => Err((404, format!("The model `{m}` does not exist."))),
        Some(_) => Err((400, "model must be a string".into())),
    }
}

/// Whitespace-separated words in a prompt, a message content or its text parts.
fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(items) => items.iter().map(words).sum(),
        Value::Object(part) => part.get("text").map_or(0, words),
        Value::Number(_) => 1,
        _ => 0,
    }
}

fn complete(mut conn: TcpStream, srv: &Server, body: &[u8], chat: bool) -> std::io::Result<()> {
    let parsed = parse_body(body, srv).and_then(|req| {
        let prompt_tokens = match (chat, req.get("messages"), req.get("prompt")) {
            (true, Some(Value::Array(msgs)), _) => msgs.iter().map(|m| words(&m["content"])).sum(),
            (true, ..) => return Err((400, "messages must be an array".into())),
            (false, _, Some(p)) if !p.is_null() => words(p),
            (false, ..) => return Err((400, "prompt is required".into())),
        };
        let given = |k: &str| req.get(k).filter(|v| !v.is_null());
        let max_tokens = match given("max_completion_tokens").or(given("max_tokens")) {
            None => 8,
            Some(v) => v
                .as_u64()
                .ok_or((400, "max_tokens must be an integer >= 0".into()))?,
        };
        let stream = match given("stream") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or((400, "stream must be a boolean".into()))?,
        };
        let include_usage = req
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok((
            prompt_tokens,
            max_tokens.clamp(1, 4096),
            stream,
            include_usage,
        ))
    });
    let (prompt_tokens, max_tokens, stream, include_usage) = match parsed {
        Ok(p) => p,
        Err((code, message)) => return respond_error(&mut conn, code, &message),
    };
    let _busy = InFlight::enter();
    let slot = srv.slot.as_deref().unwrap_or("unknown");
    let tokens: Vec<String> = (0..max_tokens)
        .map(|i| match i {
            0 => format!("served by slot {slot} pid {}", srv.pid),
            i => format!(" token{i}"),
        })
        .collect();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": max_tokens,
        "total_tokens": prompt_tokens + max_tokens,
    });
    let prefix = if chat { "chatcmpl" } else { "cmpl" };
    let id = format!(
        "{prefix}-{}-{}",
        srv.pid,
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    );
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let answer = |object: &str, choices: Value| {
        json!({
            "id": id,
            "object": object,
            "created": created,
            "model": srv.model,
            "choices": choices,
            "helix_test_slot": srv.slot,
            "helix_test_pid": srv.pid,
        })
    };

    if !stream {
        if !wait(&conn, srv.ttft + srv.token * max_tokens as u32) {
            return Ok(());
        }
        let text = tokens.concat();
        let (object, choice) = if chat {
            let message = json!({"role": "assistant", "content": text});
            let choice =
                json!({"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"});
            ("chat.completion", choice)
        } else {
            let choice =
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"});
            ("text_completion", choice)
        };
        let mut body = answer(object, json!([choice]));
        body["usage"] = usage;
        return respond(&mut conn, 200, JSON, &body.to_string());
    }

    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    conn.flush()?;
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    for (i, token) in tokens.iter().enumerate() {
        if !wait(&conn, if i == 0 { srv.ttft } else { srv.token }) {
            return Ok(());
        }
        let finish = if i + 1 == tokens.len() {
            json!("stop")
        } else {
            Value::Null
        };
        let choice = if chat {
            let mut delta = json!({"content": token});
            if i == 0 {
                delta["role"] = json!("assistant");
            }
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": token, "logprobs": null, "finish_reason": finish})
        };
        let mut chunk = answer(object, json!([choice]));
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        send_event(&mut conn, &chunk.to_string())?;
    }
    if include_usage {
        let mut chunk = answer(object, json!([]));
        chunk["usage"] = usage;
        send_event(&mut conn, &chunk.to_string())?;
    }
    send_event(&mut conn, "[DONE]")
}

fn send_event(conn: &mut TcpStream, data: &str) -> std::io::Result<()> {
    conn.write_all(format!("data: {data}\n\n").as_bytes())?;
    conn.flush()
}

/// Sleeps `d`, watching the client: false as soon as it has gone away.
fn wait(conn: &TcpStream, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if client_gone(conn) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

/// Whether the client closed its end (the request was read whole: any EOF means it left).
fn client_gone(conn: &TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return true;
    }
    let gone = match conn.peek(&mut [0u8; 1]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = conn.set_nonblocking(false);
    gone
}

fn embed(mut conn: TcpStream, srv: &Server, body: &[u8]) -> std::io::Result<()> {
    let inputs = parse_body(body, srv).and_then(|req| match req.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Ok(items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect())
        }
        _ => Err((
            400,
            "input must be a string or a non-empty array of strings".into(),
        )),
    });
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err((code, message)) => return respond_error(&mut conn, code, &message),
    };
    let _busy = InFlight::enter();
    if !wait(&conn, srv.ttft) {
        return Ok(());
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let digest = Sha256::digest(s.as_bytes());
            let embedding: Vec<f64> = digest[..8].iter().map(|&b| f64::from(b) / 255.0).collect();
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let n: usize = inputs.iter().map(|s| s.split_whitespace().count()).sum();
    let answer = json!({
        "object": "list",
        "data": data,
        "model": srv.model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
        "helix_test_slot": srv.slot,
        "helix_test_pid": srv.pid,
    });
    respond(&mut conn, 200, JSON, &answer.to_string())
}

fn metrics(srv: &Server) -> String {
    let in_flight = IN_FLIGHT.load(Ordering::SeqCst);
    let running = in_flight.min(srv.max_running);
    let waiting = in_flight - running + srv.queue;
    let kv = match srv.max_running {
        0 => 0.0,
        max => (running as f64 / max as f64).min(1.0),
    };
    let mut out = String::new();
    for (name, value) in [
        ("num_requests_running", running.to_string()),
        ("num_requests_waiting", waiting.to_string()),
        ("kv_cache_usage_perc", kv.to_string()),
    ] {
        out += &format!(
            "# TYPE vllm:{name} gauge\nvllm:{name}{{model_name=\"{}\"}} {value}\n",
            srv.model
        );
    }
    out
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
