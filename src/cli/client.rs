//! The CLI's HTTP client: tries each `--url` in turn on a connection failure, like
//! `etcdctl --endpoints`, and turns `{"error": ...}` answers into a readable failure.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: {message}")]
    Server { status: u16, message: String },
    #[error("no endpoint answered: {0}")]
    Unreachable(String),
    #[error("unexpected answer from {url}: {message}")]
    Unexpected { url: String, message: String },
    /// `--ca-cert` names no usable CA certificate: the command line is wrong.
    #[error("{0}")]
    BadCaCert(String),
    /// A `--url` that is not an http(s) URL.
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Setup(String),
}

/// A successful answer, twice: as sent and as read.
pub struct Answer<T> {
    /// The JSON as the server sent it: what `--output json` and key/value tables print, so
    /// they show every field, even one this CLI does not know yet.
    pub json: Value,
    /// The same answer read as its API type, for the fields a command uses.
    pub body: T,
}

/// How long a download (a snapshot of a large state) may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    api_key: Option<String>,
    /// Why `--url` cannot be used, if it cannot.
    bad_url: Option<String>,
}

impl Client {
    /// A client for the API at `urls`; https:// addresses are verified with the CA in
    /// `ca_cert` when given, else with the system's trusted roots.
    pub fn new(
        urls: &str,
        api_key: Option<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30));
        if let Some(path) = ca_cert {
            let bad = |why: String| ClientError::BadCaCert(format!("{}: {why}", path.display()));
            let pem = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read the CA certificate: {e}")))?;
            let tls = crate::tls::ca_client_config(&pem)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
            builder = builder.use_preconfigured_tls(tls);
        }
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        // Said when a request is made: commands that send none (`node start`) do not care.
        let bad_url = urls
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
            .map(|bare| {
                format!("--url {bare} has no scheme: write http://{bare} (or https://{bare})")
            });
        Ok(Client {
            http: builder
                .build()
                .map_err(|e| ClientError::Setup(e.to_string()))?,
            urls,
            api_key,
            bad_url,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<Answer<T>, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::POST, path, Some(body)).await
    }

    /// A POST whose path says it all (no body at all, not even `{}`).
    pub async fn post_empty<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Answer<T>, ClientError> {
        self.send(Method::POST, path, None::<&()>).await
    }

    pub async fn put<B, T>(&self, path: &str, body: &B) -> Result<Answer<T>, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(Method::DELETE, path, None::<&()>).await
    }

    /// A binary answer (a snapshot), read in chunks: `progress` sees the bytes so far. A
    /// large state may take longer than a JSON answer's timeout.
    pub async fn download(
        &self,
        path: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<u8>, ClientError> {
        let (url, mut resp) = self.start(Method::GET, path, None::<&()>).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ClientError::Unexpected {
            url: url.clone(),
            message: causes(&e),
        })? {
            bytes.extend_from_slice(&chunk);
            progress(bytes.len() as u64);
        }
        Ok(bytes)
    }

    /// A POST whose answer is read as it comes (a streamed chat answer).
    pub async fn post_stream<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, ClientError> {
        Ok(self.start(Method::POST, path, Some(body)).await?.1)
    }

    /// A request with a long timeout whose answer, once successful, is left to be read.
    async fn start<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(String, reqwest::Response), ClientError> {
        if let Some(bad) = &self.bad_url {
            return Err(ClientError::BadUrl(bad.clone()));
        }
        let mut failures = Vec::new();
        for url in &self.urls {
            let mut req = self
                .http
                .request(method.clone(), format!("{url}{path}"))
                .timeout(DOWNLOAD_TIMEOUT);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) if e.is_connect() => {
                    failures.push(format!("{url}: {}", causes(&e)));
                    continue;
                }
                Err(e) => return Err(ClientError::Unreachable(format!("{url}: {}", causes(&e)))),
            };
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                return Err(self.refusal(status.as_u16(), error_message(&text)));
            }
            return Ok((url.clone(), resp));
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    /// A refusal as the server worded it; a 401 to a command that sent no key says where
    /// one comes from.
    fn refusal(&self, status: u16, message: String) -> ClientError {
        let message = match (status, &self.api_key) {
            (401, None) => format!(
                "{message} (no API key was given: pass --api-key KEY or set HELIX_API_KEY; \
                 the first admin's key is in the bootstrap node's DATA_DIR/admin.key)"
            ),
            _ => message,
        };
        ClientError::Server { status, message }
    }

    async fn send<B, T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer<T>, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        if let Some(bad) = &self.bad_url {
            return Err(ClientError::BadUrl(bad.clone()));
        }
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
                    // An empty answer (204) reads as `null`, which is what `()` expects.
                    let json: Value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if !status.is_success() {
                        let message = json
                            .get("error")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| json.to_string());
                        return Err(self.refusal(status.as_u16(), message));
                    }
                    let body = T::deserialize(&json).map_err(|e| ClientError::Unexpected {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
                    return Ok(Answer { json, body });
                }
                // Only a failure to connect moves on: a request that reached a server may
                // have been carried out.
                Err(e) if e.is_connect() => failures.push(format!("{url}: {}", causes(&e))),
                Err(e) => return Err(ClientError::Unreachable(format!("{url}: {}", causes(&e)))),
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }
}

/// An error with its causes: reqwest's own message names only the URL, the reason (refused
/// connection, untrusted certificate, ...) is further down.
/// The message of an error answer: helix's `{"error": "..."}`, OpenAI's `{"error":
/// {"message": ...}}`, or the text itself.
fn error_message(text: &str) -> String {
    let json = serde_json::from_str::<Value>(text).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    error
        .and_then(|e| e.as_str().or_else(|| e.get("message")?.as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| text.to_string())
}

fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}
