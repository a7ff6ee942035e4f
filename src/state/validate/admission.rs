//! Rules for a model as a client writes it from now on. The API checks them where a create
//! or update enters; `apply` does not, because models and log entries written before these
//! rules (a model without its memory, say) must still replay to the same state on every
//! node, old or new.

use super::{invalid, MEMORY_MIN};
use crate::state::catalog::Model;
use crate::state::command::StateError;

impl Model {
    /// Can a client write this model now? [`Model::validate`] comes first.
    pub fn check_admission(&self) -> Result<(), StateError> {
        if self.memory == 0 {
            return Err(invalid(
                "memory",
                "is required: the GPU memory the model needs, e.g. \"39GB\"",
            ));
        }
        if self.memory < MEMORY_MIN {
            return Err(invalid(
                "memory",
                format!(
                    "{} bytes is under 1 MiB, likely a size without its unit: write e.g. \"39GB\"",
                    self.memory
                ),
            ));
        }
        if let (Some(context), Some(arg)) = (self.context_length, self.max_model_len_arg()) {
            if arg.parse::<u64>() != Ok(context) {
                return Err(invalid(
                    "runtime_args",
                    format!(
                        "--max-model-len {arg} conflicts with context_length {context}, which \
                         helix passes to vLLM as --max-model-len: give one of them"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(memory: u64, context: Option<u64>, args: &[&str]) -> Model {
        let mut m = Model::new("acme/m".into());
        m.memory = memory;
        m.context_length = context;
        m.runtime_args = args.iter().map(|a| a.to_string()).collect();
        m
    }

    fn refusal(m: &Model) -> String {
        m.check_admission().unwrap_err().to_string()
    }

    #[test]
    fn memory_is_required_and_must_carry_a_unit() {
        assert!(refusal(&model(0, None, &[])).contains("`memory`: is required"));
        assert!(refusal(&model(39, None, &[])).contains("39 bytes is under 1 MiB"));
        assert!(model(1 << 20, None, &[]).check_admission().is_ok());
        assert!(model(39_000_000_000, None, &[]).check_admission().is_ok());
    }

    #[test]
    fn context_length_and_max_model_len_do_not_disagree() {
        const GB: u64 = 1_000_000_000;
        for args in [&["--max-model-len", "4096"][..], &["--max-model-len=4096"]] {
            assert!(refusal(&model(GB, Some(8192), args)).contains("conflicts with context_length"));
            assert!(model(GB, None, args).check_admission().is_ok());
            // The seed's own model.json says the same twice.
            assert!(model(GB, Some(4096), args).check_admission().is_ok());
        }
        assert!(refusal(&model(GB, Some(8192), &["--max-model-len"])).contains("conflicts"));
        assert!(model(GB, Some(8192), &["--trust-remote-code"])
            .check_admission()
            .is_ok());
    }
}
