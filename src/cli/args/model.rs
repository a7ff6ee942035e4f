//! The flags of `helix model` and `helix slot`. Model flags not given are left as they are
//! (update) or take the server's defaults (create), shown as "on create".

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::api_name;
use crate::state::{ModelType, Runtime};

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Create a model from flags or from a JSON file.
    Create {
        /// The Hugging Face model id, e.g. Qwen/Qwen2.5-VL-7B-Instruct.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        model_id: Option<String>,
        /// JSON as in the seed's model.json, instead of flags.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        fields: ModelFlags,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// The models and their main fields.
    List,
    /// One model, every field.
    Get {
        /// The model id, as in `helix model list`.
        id: String,
    },
    /// Change the fields given; the others stay as they are.
    Update {
        /// The model id, as in `helix model list`.
        id: String,
        #[command(flatten)]
        fields: ModelFlags,
    },
    /// Delete a model; its slots stop.
    Delete {
        /// The model id, as in `helix model list`.
        id: String,
    },
    /// Which level a launch of the model takes its token from (never the token).
    TokenSource {
        /// The model id, as in `helix model list`.
        id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ModelFlags {
    /// A display name [on create: the model id].
    #[arg(long)]
    pub name: Option<String>,
    /// What it serves [on create: chat].
    #[arg(long = "type", value_parser = api_name::<ModelType>(&["chat", "embed", "image"]))]
    pub model_type: Option<ModelType>,
    /// What runs it [on create: vllm].
    #[arg(long, value_parser = api_name::<Runtime>(&["vllm"]))]
    pub runtime: Option<Runtime>,
    /// GPU memory it needs: 39GB, 36GiB (or bytes, at least 1 MiB). Needed to place a
    /// prewarm model.
    #[arg(long)]
    pub memory: Option<String>,
    /// Context length in tokens, passed to vLLM as --max-model-len [on create: vLLM's].
    #[arg(long)]
    pub context: Option<u64>,
    /// Free text shown with the model [on create: empty].
    #[arg(long)]
    pub description: Option<String>,
    /// Whether it may run and be asked [on create: true].
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Keep it running (`--prewarm` or `--prewarm true|false`) [on create: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub prewarm: Option<bool>,
    /// Download the weights ahead (`--auto-pull` or `--auto-pull true|false`) [on create:
    /// false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub auto_pull: Option<bool>,
    /// Extra vLLM arguments, a JSON array of strings, e.g. '["--trust-remote-code"]'.
    #[arg(long)]
    pub runtime_args: Option<String>,
    /// The model's own Hugging Face token (write-only; `-` reads stdin, "" clears).
    #[arg(long)]
    pub huggingface_token: Option<String>,
    /// How many slots run it (prewarm models), on distinct GPUs, preferably distinct nodes
    /// [on create: 1].
    #[arg(long)]
    pub replicas: Option<u32>,
}

/// `--wait`: follow the model's slots until they run or fail.
#[derive(Args, Debug, Clone, Copy)]
pub struct WaitFlags {
    /// Show progress until every slot of the model runs (exit 0) or one fails or stays
    /// pending past --timeout (exit 1, with the reason).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits: 90s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum SlotCommand {
    /// Model instances: model, node, GPUs, state, why pending, last error.
    List,
    /// A slot's vLLM log (redacted), read from the node that runs it, through any node.
    /// Admins and the owner of the slot's model may read it.
    Logs {
        /// The slot id, as in `helix slot list`.
        slot: String,
        /// Keep printing new lines as they come, until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines [default: the last MiB].
        #[arg(long)]
        tail: Option<usize>,
    },
}

/// `90s`, `10m`, `1h`, `2d`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 1h"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: use s, m, h or d, e.g. 10m")),
    };
    Ok(Duration::from_secs(n * seconds))
}
