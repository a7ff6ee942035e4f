//! The CLI's HTTP client: tries each `--url` in turn on a connection failure, like
//! `etcdctl --endpoints`, and turns `{"error": ...}` answers into a readable failure.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: {message}")]
    Server { status: u16, message: String },
    #[error("no endpoint answered: {0}")]
    Unreachable(String),
}

pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    api_key: Option<String>,
}

impl Client {
    pub fn new(urls: &str, api_key: Option<String>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("static client configuration"),
            urls: urls
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty())
                .collect(),
            api_key,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut failures = Vec::new();
        for url in &self.urls {
            let mut req = self.http.request(method.clone(), format!("{url}{path}"));
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    let value: Value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if status.is_success() {
                        return Ok(value);
                    }
                    let message = value
                        .get("error")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| value.to_string());
                    return Err(ClientError::Server {
                        status: status.as_u16(),
                        message,
                    });
                }
                // Only a failure to connect moves on: a request that reached a server may
                // have been carried out.
                Err(e) if e.is_connect() => failures.push(format!("{url}: {e}")),
                Err(e) => return Err(ClientError::Unreachable(format!("{url}: {e}"))),
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }
}
