//! `helix model ...`: the models the cluster runs.

use std::path::Path;

use serde_json::Value;

use super::args::{ModelCommand, ModelFlags, OutputFormat};
use super::client::Client;
use super::failure::{usage, Failure};
use super::output::{self, cell, Row};
use super::secret::read_secret_arg;
use crate::api::types::{Memory, ModelInput, ModelView, TokenSourceView};

const MODELS: &str = "/api/v1/helix-models";

impl Row for ModelView {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "type",
        "memory",
        "context_length",
        "enabled",
        "prewarm",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.id),
            cell(&self.name),
            cell(&self.model_type),
            cell(&self.memory),
            cell(&self.context_length),
            cell(&self.enabled),
            cell(&self.prewarm),
        ]
    }
}

pub async fn run(cmd: ModelCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        ModelCommand::Create {
            model_id,
            file,
            fields,
        } => {
            let answer = match file {
                Some(path) => {
                    client
                        .post::<_, ModelView>(MODELS, &read_model_file(&path)?)
                        .await?
                }
                None => {
                    let input = ModelInput {
                        id: model_id,
                        ..model_input(fields)?
                    };
                    client.post::<_, ModelView>(MODELS, &input).await?
                }
            };
            output::object(out, &answer);
        }
        ModelCommand::List => {
            let answer = client.get::<Vec<ModelView>>(MODELS).await?;
            output::list(out, &answer);
        }
        ModelCommand::Get { id } => {
            let answer = client.get::<ModelView>(&model_path(&id)).await?;
            output::object(out, &answer);
        }
        ModelCommand::Update { id, fields } => {
            let answer = client
                .put::<_, ModelView>(&model_path(&id), &model_input(fields)?)
                .await?;
            output::object(out, &answer);
        }
        ModelCommand::TokenSource { id } => {
            let path = format!("{}/token-source", model_path(&id));
            let answer = client.get::<TokenSourceView>(&path).await?;
            output::object(out, &answer);
        }
        ModelCommand::Delete { id } => {
            client.delete::<()>(&model_path(&id)).await?;
            if out == OutputFormat::Table {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

/// The file's JSON as it is, not read into [`ModelInput`]: the server judges it and names
/// a bad or unknown field, as it does for any other client.
fn read_model_file(path: &Path) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| usage(format!("{} is not valid JSON: {e}", path.display())))
}

/// Only the flags that were given, so an update changes nothing else.
fn model_input(flags: ModelFlags) -> Result<ModelInput, Failure> {
    let huggingface_token = flags.huggingface_token.map(read_secret_arg).transpose()?;
    let runtime_args = flags
        .runtime_args
        .map(|text| {
            serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                usage(format!(
                    "--runtime-args must be a JSON array of strings: {e}"
                ))
            })
        })
        .transpose()?;
    Ok(ModelInput {
        name: flags.name,
        model_type: flags.model_type,
        runtime: flags.runtime,
        // Sizes such as "39GB" go as given: the server reads the units.
        memory: flags.memory.map(Memory::Size),
        context_length: flags.context,
        description: flags.description,
        enabled: flags.enabled,
        prewarm: flags.prewarm,
        auto_pull: flags.auto_pull,
        runtime_args,
        huggingface_token,
        ..ModelInput::default()
    })
}

fn model_path(id: &str) -> String {
    format!("{MODELS}/{}", path_segment(id))
}

/// A model id in a URL path: `/` stays (ids like `org/name` are routed as such), anything
/// outside the unreserved set is percent-encoded.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
