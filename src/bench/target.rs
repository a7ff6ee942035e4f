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
                        .json(&json!({ "id": key, "memory": "1GB", "name": "bench", "description": value }))
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

    /// The write of key `fo`, value `?~~~` to `http://h`, with API key `k`.
    fn built(target: Target, mode: WriteMode, create: bool) -> reqwest::Request {
        let writes = Writes {
            http: reqwest::Client::new(),
            target,
            mode,
            api_key: Some("k".into()),
        };
        let request = writes.request("http://h", "fo", "?~~~", create);
        request.build().unwrap()
    }

    fn line(r: &reqwest::Request) -> String {
        format!("{} {}", r.method(), r.url())
    }

    fn body(r: &reqwest::Request) -> Value {
        serde_json::from_slice(r.body().unwrap().as_bytes().unwrap()).unwrap()
    }

    fn auth(r: &reqwest::Request) -> Option<&str> {
        let value = r.headers().get(reqwest::header::AUTHORIZATION)?;
        Some(value.to_str().unwrap())
    }

    #[test]
    fn etcd_puts_keys_and_values_in_padded_standard_base64() {
        let put = built(Target::Etcd, WriteMode::Update, false);
        assert_eq!(line(&put), "POST http://h/v3/kv/put");
        assert_eq!(auth(&put), None);
        // "+" and "=" show the standard alphabet with padding.
        assert_eq!(body(&put), json!({ "key": "Zm8=", "value": "P35+fg==" }));
    }

    #[test]
    fn helix_creates_or_updates_a_model_with_the_api_key() {
        let create = built(Target::Helix, WriteMode::Create, false);
        let update = built(Target::Helix, WriteMode::Update, false);
        // The setup of `--mode update` creates the keys first.
        let setup = built(Target::Helix, WriteMode::Update, true);
        let model = json!({ "id": "fo", "memory": "1GB", "name": "bench", "description": "?~~~" });
        assert_eq!(line(&create), "POST http://h/api/v1/helix-models");
        assert_eq!(body(&create), model);
        assert_eq!(line(&update), "PUT http://h/api/v1/helix-models/fo");
        assert_eq!(body(&update), json!({ "description": "?~~~" }));
        assert_eq!((line(&setup), body(&setup)), (line(&create), model));
        for r in [&create, &update, &setup] {
            assert_eq!(auth(r), Some("Bearer k"));
        }
    }
}
