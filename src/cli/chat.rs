//! `helix chat MODEL "prompt"`: the smallest way to try a model. The answer is streamed to
//! the terminal as the replica produces it.

use std::io::Write;

use serde_json::{json, Value};

use super::client::Client;
use super::failure::{self, Failure};

pub async fn run(
    model: String,
    prompt: String,
    max_tokens: Option<u32>,
    client: &Client,
) -> Result<(), Failure> {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
    });
    if let Some(max_tokens) = max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    let mut answer = client.post_stream("/v1/chat/completions", &body).await?;
    let mut pending = String::new();
    let mut out = std::io::stdout();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| failure::failed(format!("the answer broke off: {e}")))?
    {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Server-sent events end with an empty line; a partial one waits for the rest.
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    println!();
                    return Ok(());
                }
                let chunk: Value = serde_json::from_str(data)
                    .map_err(|e| failure::failed(format!("unexpected event {data:?}: {e}")))?;
                if let Some(error) = chunk.get("error") {
                    println!();
                    let message = error["message"].as_str().unwrap_or("unknown error");
                    return Err(failure::failed(format!("the model failed: {message}")));
                }
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                    print!("{text}");
                    let _ = out.flush();
                }
            }
        }
    }
    println!();
    Ok(())
}
