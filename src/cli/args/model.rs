//! The flags of `helix model` and `helix slot`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::api_name;
use crate::state::{ModelType, Runtime};

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Create a model from flags or from a JSON file.
    Create {
        /// e.g. Qwen/Qwen2.5-VL-7B-Instruct
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        model_id: Option<String>,
        /// JSON as in the seed's model.json.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        fields: ModelFlags,
    },
    List,
    Get {
        id: String,
    },
    Update {
        id: String,
        #[command(flatten)]
        fields: ModelFlags,
    },
    Delete {
        id: String,
    },
    /// Which level a launch of the model takes its token from (never the token).
    TokenSource {
        id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ModelFlags {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long = "type", value_parser = api_name::<ModelType>(&["chat", "embed", "image"]))]
    pub model_type: Option<ModelType>,
    #[arg(long, value_parser = api_name::<Runtime>(&["vllm"]))]
    pub runtime: Option<Runtime>,
    /// e.g. 39GB, 36GiB or bytes.
    #[arg(long)]
    pub memory: Option<String>,
    /// Context length in tokens.
    #[arg(long)]
    pub context: Option<u64>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Keep it running (`--prewarm` or `--prewarm true|false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub prewarm: Option<bool>,
    /// `--auto-pull` or `--auto-pull true|false`.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub auto_pull: Option<bool>,
    /// A JSON array of strings, e.g. '["--trust-remote-code"]'.
    #[arg(long)]
    pub runtime_args: Option<String>,
    /// The model's own Hugging Face token (write-only; `-` reads stdin, "" clears).
    #[arg(long)]
    pub huggingface_token: Option<String>,
    /// How many slots run it (prewarm models), on distinct GPUs, preferably distinct nodes.
    #[arg(long)]
    pub replicas: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum SlotCommand {
    List,
}

