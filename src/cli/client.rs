//! The CLI's HTTP client: tries each `--url` in turn, like `etcdctl --endpoints`, past
//! endpoints that cannot serve (`failover.rs` says which and why), and turns `{"error":
//! ...}` answers into a readable failure.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::failover::{glimpse, is_json, may_retry, says_helix, why, Skip};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: {message}")]
    Server { status: u16, message: String },
    /// Every endpoint was passed over; why, one line each.
    #[error("{}", no_endpoint(.0))]
    NoEndpoint(Vec<Skip>),
    /// A write broke off after it was sent: it may have been carried out.
    #[error("{0}")]
    Uncertain(String),
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

fn no_endpoint(skipped: &[Skip]) -> String {
    match skipped {
        [one] => format!("cannot use {one}"),
        many => {
            let lines: Vec<String> = many.iter().map(|s| format!("\n  {s}")).collect();
            format!("no endpoint could serve the request:{}", lines.concat())
        }
    }
}

impl ClientError {
    /// The HTTP status behind the failure, when an endpoint answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            ClientError::NoEndpoint(skipped) => skipped.last().and_then(|s| s.status),
            _ => None,
        }
    }
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
    /// Reads may come from the answering node's replica as it is (`?stale=true`).
    stale: bool,
}

impl Client {
    /// A client for the API at `urls`; https:// addresses are verified with the CA in
    /// `ca_cert` when given, else with the system's trusted roots.
    pub fn new(
        urls: &str,
        api_key: Option<String>,
        ca_cert: Option<&Path>,
        stale: bool,
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
            stale,
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
            message: why(&e),
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
        let path = self.checked_path(&method, path)?;
        let mut skipped = Vec::new();
        for url in &self.urls {
            let resp = match self
                .attempt(url, &method, &path, body, true, &mut skipped)
                .await?
            {
                Some(resp) => resp,
                None => continue,
            };
            let status = resp.status();
            let resp_headers = resp.headers().clone();
            let helix = says_helix(&resp_headers) || is_json(&resp_headers);
            if status.is_success() && helix {
                report(&skipped);
                return Ok((url.clone(), resp));
            }
            let text = resp.text().await.unwrap_or_default();
            let refusal = match helix_error(&text) {
                Some(message) if !status.is_success() => Some(message),
                None if !status.is_success() && says_helix(&resp_headers) => Some(text.clone()),
                _ => None,
            };
            match refusal {
                Some(message) => {
                    report(&skipped);
                    return Err(self.refusal(status.as_u16(), message));
                }
                None => skipped.push(foreign(url, status.as_u16(), &text)),
            }
        }
        Err(ClientError::NoEndpoint(skipped))
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
        let path = self.checked_path(&method, path)?;
        let mut skipped = Vec::new();
        for url in &self.urls {
            let resp = match self
                .attempt(url, &method, &path, body, false, &mut skipped)
                .await?
            {
                Some(resp) => resp,
                None => continue,
            };
            let status = resp.status();
            let helix = says_helix(resp.headers());
            let text = match resp.text().await {
                Ok(text) => text,
                Err(e) => {
                    skipped.push(Skip {
                        url: url.clone(),
                        reason: format!("the answer broke off: {}", why(&e)),
                        status: Some(status.as_u16()),
                    });
                    continue;
                }
            };
            // An empty answer (204) reads as `null`, which is what `()` expects.
            let json: Option<Value> = match text.is_empty() {
                true => Some(Value::Null),
                false => serde_json::from_str(&text).ok(),
            };
            if !status.is_success() {
                match helix_error(&text) {
                    Some(message) => {
                        report(&skipped);
                        return Err(self.refusal(status.as_u16(), message));
                    }
                    None if helix => {
                        report(&skipped);
                        return Err(self.refusal(status.as_u16(), text));
                    }
                    None => skipped.push(foreign(url, status.as_u16(), &text)),
                }
                continue;
            }
            let read = json.map(|json| (T::deserialize(&json), json));
            match read {
                Some((Ok(body), json)) => {
                    report(&skipped);
                    return Ok(Answer { json, body });
                }
                // Helix said so, yet the answer is not what this CLI expects.
                Some((Err(e), _)) if helix => {
                    report(&skipped);
                    return Err(ClientError::Unexpected {
                        url: url.clone(),
                        message: e.to_string(),
                    });
                }
                _ => skipped.push(foreign(url, status.as_u16(), &text)),
            }
        }
        Err(ClientError::NoEndpoint(skipped))
    }

    /// `path` for `method`, once `--url` is known to be usable: reads carry `stale=true`
    /// under `--stale`.
    fn checked_path(&self, method: &Method, path: &str) -> Result<String, ClientError> {
        if let Some(bad) = &self.bad_url {
            return Err(ClientError::BadUrl(bad.clone()));
        }
        Ok(match (self.stale, *method == Method::GET) {
            (true, true) if path.contains('?') => format!("{path}&stale=true"),
            (true, true) => format!("{path}?stale=true"),
            _ => path.to_string(),
        })
    }

    /// Send the request to `url`. `None` (the reason added to `skipped`) when the next
    /// endpoint should be tried: it could not be reached, timed out, or answered 503.
    async fn attempt<B: Serialize + ?Sized>(
        &self,
        url: &str,
        method: &Method,
        path: &str,
        body: Option<&B>,
        long: bool,
        skipped: &mut Vec<Skip>,
    ) -> Result<Option<reqwest::Response>, ClientError> {
        let mut req = self.http.request(method.clone(), format!("{url}{path}"));
        if long {
            req = req.timeout(DOWNLOAD_TIMEOUT);
        }
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let skip = |reason: String, status: Option<u16>| Skip {
            url: url.to_string(),
            reason,
            status,
        };
        match req.send().await {
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                let text = resp.text().await.unwrap_or_default();
                let message = helix_error(&text).unwrap_or_else(|| glimpse(&text));
                skipped.push(skip(format!("503 {message}"), Some(503)));
                Ok(None)
            }
            Ok(resp) => Ok(Some(resp)),
            Err(e) if may_retry(method, &e) => {
                skipped.push(skip(why(&e), None));
                Ok(None)
            }
            Err(e) => {
                report(skipped);
                Err(ClientError::Uncertain(format!(
                    "{url}: {}; the request may or may not have been carried out",
                    why(&e)
                )))
            }
        }
    }
}

/// An id (a model id, a slot id) in a URL path: `/` stays (ids like `org/name` are routed as such), anything
/// outside the unreserved set is percent-encoded.
pub fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The endpoints passed over before one answered, one line each on standard error.
fn report(skipped: &[Skip]) {
    for skip in skipped {
        eprintln!("skipped {skip}");
    }
}

/// An answer from something that is not helix: what it said, briefly.
fn foreign(url: &str, status: u16, text: &str) -> Skip {
    Skip {
        url: url.to_string(),
        reason: format!(
            "answered {status} {} without helix's Server header: not a helix API",
            glimpse(text)
        ),
        status: Some(status),
    }
}

/// The message of helix's `{"error": "..."}`, or of OpenAI's `{"error": {"message": ...}}`
/// from the inference routes; `None` for anything else.
fn helix_error(text: &str) -> Option<String> {
    let json = serde_json::from_str::<Value>(text).ok()?;
    let error = json.get("error")?;
    error
        .as_str()
        .or_else(|| error.get("message")?.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use reqwest::Method;

    use super::{path_segment, Client};

    #[test]
    fn stale_marks_reads_only() {
        let client = Client::new("http://127.0.0.1:1", None, None, true).unwrap();
        let path = |method, p| client.checked_path(&method, p).unwrap();
        assert_eq!(
            path(Method::GET, "/api/v1/slots"),
            "/api/v1/slots?stale=true"
        );
        assert_eq!(
            path(Method::GET, "/api/v1/audit?kind=x"),
            "/api/v1/audit?kind=x&stale=true"
        );
        assert_eq!(path(Method::POST, "/api/v1/orgs"), "/api/v1/orgs");
        let fresh = Client::new("http://127.0.0.1:1", None, None, false).unwrap();
        assert_eq!(
            fresh.checked_path(&Method::GET, "/api/v1/slots").unwrap(),
            "/api/v1/slots"
        );
    }

    #[test]
    fn model_ids_keep_slashes_and_encode_the_rest() {
        assert_eq!(path_segment("Qwen/Qwen2.5-7B_x~"), "Qwen/Qwen2.5-7B_x~");
        assert_eq!(path_segment("a b?#%"), "a%20b%3F%23%25");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
