//! How one write looks on each system: a helix model, or an etcd key through the v3 gateway.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::json;

use super::args::{Target, WriteMode};

/// Builds the write requests of one run.
pub(super) struct Writes {
    pub(super) http: reqwest::Client,
    pub(super) target: Target,
    pub(super) mode: WriteMode,
    pub(super) api_key: Option<String>,
}

impl Writes {
    /// One write of `key`. `create` forces a creation (setup of `--mode update`).
    pub(super) fn request(
        &self,
        endpoint: &str,
        key: &str,
        value: &str,
        create: bool,
    ) -> reqwest::RequestBuilder {
        match self.target {
            // etcd's gateway takes keys and values in standard base64 with padding.
            Target::Etcd => self
                .http
                .post(format!("{endpoint}/v3/kv/put"))
                .json(&json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) })),
            Target::Helix => {
                let req = if create || self.mode == WriteMode::Create {
                    self.http
                        .post(format!("{endpoint}/api/v1/helix-models"))
                        .json(&json!({ "id": key, "name": "bench", "description": value }))
                } else {
                    self.http
                        .put(format!("{endpoint}/api/v1/helix-models/{key}"))
                        .json(&json!({ "description": value }))
                };
                req.bearer_auth(self.api_key.as_deref().unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn writes(target: Target, mode: WriteMode) -> Writes {
        Writes {
            http: reqwest::Client::new(),
            target,
            mode,
            api_key: Some("k".into()),
        }
    }

    /// Method, URL, bearer header and JSON body of a built request.
    fn parts(req: reqwest::RequestBuilder) -> (String, String, Option<String>, Value) {
        let req = req.build().unwrap();
        let auth = req
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = serde_json::from_slice(req.body().unwrap().as_bytes().unwrap()).unwrap();
        (req.method().to_string(), req.url().to_string(), auth, body)
    }

    #[test]
    fn etcd_puts_keys_and_values_in_padded_standard_base64() {
        let w = writes(Target::Etcd, WriteMode::Update);
        let (method, url, auth, body) = parts(w.request("http://e:2379", "fo", "?~~~", false));
        assert_eq!(
            (method.as_str(), url.as_str()),
            ("POST", "http://e:2379/v3/kv/put")
        );
        assert_eq!(auth, None);
        assert_eq!(body, json!({ "key": "Zm8=", "value": "P35+fg==" }));
    }

    #[test]
    fn helix_creates_or_updates_a_model_with_the_api_key() {
        let create = writes(Target::Helix, WriteMode::Create);
        let (method, url, auth, body) = parts(create.request("http://h", "p/c0-1", "v", false));
        assert_eq!(
            (method.as_str(), url.as_str()),
            ("POST", "http://h/api/v1/helix-models")
        );
        assert_eq!(auth.as_deref(), Some("Bearer k"));
        assert_eq!(
            body,
            json!({ "id": "p/c0-1", "name": "bench", "description": "v" })
        );

        let update = writes(Target::Helix, WriteMode::Update);
        let (method, url, _, body) = parts(update.request("http://h", "p/k3", "v", false));
        assert_eq!(
            (method.as_str(), url.as_str()),
            ("PUT", "http://h/api/v1/helix-models/p/k3")
        );
        assert_eq!(body, json!({ "description": "v" }));
        // The setup of `--mode update` creates the keys first.
        let (method, _, _, _) = parts(update.request("http://h", "p/k3", "v", true));
        assert_eq!(method, "POST");
    }
}
