//! `helix chat MODEL "prompt"`: the smallest way to try a model. The answer is streamed to
//! the terminal as the replica produces it; under `-o json` it is printed whole at the end,
//! `{"model": ..., "content": ...}`.

use std::io::Write;

use serde_json::{json, Value};

use super::args::OutputFormat;
use super::client::Client;
use super::failure::{self, Failure};
use super::output;

pub async fn run(
    model: String,
    prompt: String,
    max_tokens: Option<u32>,
    client: &Client,
    out: OutputFormat,
) -> Result<(), Failure> {
    let mut content = String::new();
    let streamed = stream(&model, prompt, max_tokens, client, |text| match out {
        OutputFormat::Json => content.push_str(text),
        OutputFormat::Table => {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
    })
    .await;
    match out {
        OutputFormat::Table => println!(),
        OutputFormat::Json if streamed.is_ok() => {
            output::json(&json!({"model": model, "content": content}))
        }
        OutputFormat::Json => {}
    }
    streamed
}

/// Send the prompt and hand each piece of the answer to `show` as it comes.
async fn stream(
    model: &str,
    prompt: String,
    max_tokens: Option<u32>,
    client: &Client,
    mut show: impl FnMut(&str),
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
                    return Ok(());
                }
                let chunk: Value = serde_json::from_str(data)
                    .map_err(|e| failure::failed(format!("unexpected event {data:?}: {e}")))?;
                if let Some(error) = chunk.get("error") {
                    let message = error["message"].as_str().unwrap_or("unknown error");
                    return Err(failure::failed(format!("the model failed: {message}")));
                }
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                    show(text);
                }
            }
        }
    }
    Ok(())
}
