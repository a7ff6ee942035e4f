//! `helix model ...`: the models the cluster runs.

use std::path::Path;

use serde_json::Value;

use super::args::{ModelCommand, ModelFlags, OutputFormat};
use super::client::{path_segment, Client};
use super::failure::{usage, Failure};
use super::output::{self, cell, size, Row};
use super::secret::read_secret_arg;
use crate::api::types::{Memory, ModelInput, ModelView, TokenSourceView};
use crate::state::MEMORY_MIN;

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
        "replicas",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            cell(&self.id),
            cell(&self.name),
            cell(&self.model_type),
            size(self.memory),
            cell(&self.context_length),
            cell(&self.enabled),
            cell(&self.prewarm),
            cell(&self.replicas),
        ]
    }
}

pub async fn run(cmd: ModelCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        ModelCommand::Create {
            model_id,
            file,
            fields,
            wait,
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
            if !wait.wait {
                output::object(out, &answer);
                return Ok(());
            }
            let slots = super::wait::until_running(client, &answer.body, wait.timeout).await?;
            match out {
                OutputFormat::Json => {
                    output::json(&serde_json::json!({"model": answer.json, "slots": slots}))
                }
                OutputFormat::Table => output::object(out, &answer),
            }
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
            output::done(out, "deleted", &id);
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
        memory: flags.memory.map(checked_memory).transpose()?,
        context_length: flags.context,
        description: flags.description,
        enabled: flags.enabled,
        prewarm: flags.prewarm,
        auto_pull: flags.auto_pull,
        runtime_args,
        huggingface_token,
        replicas: flags.replicas,
        ..ModelInput::default()
    })
}

/// `--memory` as given; a bare number below 1 MiB is refused here, naming the flag (the
/// server refuses it too, for every client).
fn checked_memory(text: String) -> Result<Memory, Failure> {
    match text.trim().parse::<u64>() {
        Ok(bytes) if bytes < MEMORY_MIN => Err(usage(format!(
            "--memory {bytes} means {bytes} bytes, surely a mistake: give the unit, \
             e.g. --memory {bytes}GB or --memory {bytes}GiB"
        ))),
        _ => Ok(Memory::Size(text)),
    }
}

fn model_path(id: &str) -> String {
    format!("{MODELS}/{}", path_segment(id))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        flags: ModelFlags,
    }

    fn body(args: &[&str]) -> Value {
        let flags = Flags::try_parse_from(std::iter::once("model").chain(args.iter().copied()))
            .expect("flags parse")
            .flags;
        serde_json::to_value(model_input(flags).expect("flags make a body"))
            .expect("a body serializes")
    }

    #[test]
    fn a_body_names_only_the_given_flags() {
        assert_eq!(body(&[]), json!({}));
        assert_eq!(
            body(&["--description", "d", "--prewarm", "--enabled", "false"]),
            json!({"description": "d", "prewarm": true, "enabled": false})
        );
    }

    #[test]
    fn flags_take_the_api_spelling() {
        assert_eq!(
            body(&[
                "--type",
                "embed",
                "--runtime",
                "vllm",
                "--memory",
                "39GB",
                "--context",
                "8192",
                "--auto-pull",
                "false",
                "--runtime-args",
                r#"["--trust-remote-code"]"#,
                "--huggingface-token",
                "hf_x",
            ]),
            json!({
                "type": "embed",
                "runtime": "vllm",
                "memory": "39GB",
                "context_length": 8192,
                "auto_pull": false,
                "runtime_args": ["--trust-remote-code"],
                "huggingface_token": "hf_x",
            })
        );
    }

    #[test]
    fn a_bare_small_memory_is_refused_naming_the_flag() {
        let flags = Flags::try_parse_from(["model", "--memory", "39"])
            .expect("flags parse")
            .flags;
        let failure = model_input(flags).expect_err("refused");
        assert_eq!(failure.code, 2);
        assert!(
            failure.message.contains("--memory 39GB"),
            "{}",
            failure.message
        );
        assert_eq!(body(&["--memory", "39GiB"]), json!({"memory": "39GiB"}));
        assert_eq!(body(&["--memory", "2000000"]), json!({"memory": "2000000"}));
    }

    #[test]
    fn runtime_args_must_be_a_json_array_of_strings() {
        let flags = Flags::try_parse_from(["model", "--runtime-args=--x"])
            .expect("flags parse")
            .flags;
        let failure = model_input(flags).expect_err("refused");
        assert_eq!(failure.code, 2);
        assert!(
            failure.message.contains("--runtime-args"),
            "{}",
            failure.message
        );
    }
}
