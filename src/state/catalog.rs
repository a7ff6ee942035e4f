//! The models the cluster knows: what to run and how.

use serde::{Deserialize, Serialize};

use crate::crypto::SealedSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Chat,
    Embed,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Vllm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub model_type: ModelType,
    pub runtime: Runtime,
    /// GPU memory the model needs, in bytes.
    pub memory: u64,
    pub context_length: Option<u64>,
    pub description: String,
    pub enabled: bool,
    pub auto_pull: bool,
    pub prewarm: bool,
    pub runtime_args: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub owner_user_id: Option<String>,
    pub organization_id: Option<String>,
    /// Sealed for [`super::TokenScope::Model`]; write-only through the API.
    pub hf_token: Option<SealedSecret>,
    /// How many slots run the model (prewarm models only), on distinct GPUs.
    pub replicas: u32,
}

/// A model as stored and proposed before models had `replicas`: read as one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelV1 {
    pub id: String,
    pub name: String,
    pub model_type: ModelType,
    pub runtime: Runtime,
    pub memory: u64,
    pub context_length: Option<u64>,
    pub description: String,
    pub enabled: bool,
    pub auto_pull: bool,
    pub prewarm: bool,
    pub runtime_args: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub owner_user_id: Option<String>,
    pub organization_id: Option<String>,
    pub hf_token: Option<SealedSecret>,
}

impl From<ModelV1> for Model {
    fn from(m: ModelV1) -> Model {
        Model {
            id: m.id,
            name: m.name,
            model_type: m.model_type,
            runtime: m.runtime,
            memory: m.memory,
            context_length: m.context_length,
            description: m.description,
            enabled: m.enabled,
            auto_pull: m.auto_pull,
            prewarm: m.prewarm,
            runtime_args: m.runtime_args,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
            owner_user_id: m.owner_user_id,
            organization_id: m.organization_id,
            hf_token: m.hf_token,
            replicas: 1,
        }
    }
}

impl Model {
    /// The `--max-model-len` value the model's own runtime arguments give, if any
    /// (`--max-model-len N` or `--max-model-len=N`).
    pub fn max_model_len_arg(&self) -> Option<&str> {
        let mut args = self.runtime_args.iter();
        while let Some(arg) = args.next() {
            if arg == "--max-model-len" {
                return Some(args.next().map_or("", String::as_str));
            }
            if let Some(value) = arg.strip_prefix("--max-model-len=") {
                return Some(value);
            }
        }
        None
    }

    /// A model with every optional field at its default.
    pub fn new(id: String) -> Model {
        Model {
            name: id.clone(),
            id,
            model_type: ModelType::Chat,
            runtime: Runtime::Vllm,
            memory: 0,
            context_length: None,
            description: String::new(),
            enabled: true,
            auto_pull: false,
            prewarm: false,
            runtime_args: Vec::new(),
            created_ms: 0,
            updated_ms: 0,
            owner_user_id: None,
            organization_id: None,
            hf_token: None,
            replicas: 1,
        }
    }
}

/// The old shape of a model, for tests that write what older versions wrote.
#[cfg(test)]
impl From<&Model> for ModelV1 {
    fn from(m: &Model) -> ModelV1 {
        let m = m.clone();
        ModelV1 {
            id: m.id,
            name: m.name,
            model_type: m.model_type,
            runtime: m.runtime,
            memory: m.memory,
            context_length: m.context_length,
            description: m.description,
            enabled: m.enabled,
            auto_pull: m.auto_pull,
            prewarm: m.prewarm,
            runtime_args: m.runtime_args,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
            owner_user_id: m.owner_user_id,
            organization_id: m.organization_id,
            hf_token: m.hf_token,
        }
    }
}

/// Parse a memory size: a number of bytes, or a number with a decimal (KB MB GB TB) or binary
/// (KiB MiB GiB TiB) unit. Fractions are allowed ("1.5GB").
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 39GB, 36GiB or a number of bytes"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("39GB").unwrap(), 39_000_000_000);
        assert_eq!(parse_memory("36GiB").unwrap(), 36 * (1 << 30));
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert_eq!(parse_memory("1.5KB").unwrap(), 1500);
        assert!(parse_memory("12XB").is_err());
        assert!(parse_memory("GB").is_err());
        assert!(parse_memory("").is_err());
    }
}
