//! One slot's process, looked after: notice an exit, check health, launch or relaunch when
//! due (with exponential backoff), and tell a gated model from a crash.

use super::*;

impl Reconciler {
    /// One step for one slot: notice an exit, check health, or (re)launch when due.
    pub(super) async fn supervise(&mut self, slot_id: &str, want: &Desired) {
        let slot_dir = self.slots_dir.join(slot_id);
        let taken: BTreeSet<u16> = self
            .local
            .iter()
            .filter(|(id, s)| id.as_str() != slot_id && s.process.is_some())
            .filter_map(|(_, s)| s.status.port)
            .collect();
        let choice = self
            .cluster
            .replica()
            .read(|state| self.tokens.choose(&want.model, state));
        let slot = self.local.get_mut(slot_id).expect("inserted above");

        // A model update (arguments, context length) relaunches it now, without backoff.
        if slot.process.is_some() && slot.launched.as_ref() != Some(&LaunchedModel::of(&want.model))
        {
            if let Some(process) = slot.process.take() {
                tracing::info!(slot = %slot_id, pid = process.pid(), "model changed: relaunching vLLM");
                tokio::spawn(process.stop(self.tuning.stop_grace));
            }
            slot.retry_at = None;
            slot.gated_with = None;
        }

        if let Some(process) = slot.process.as_mut() {
            if let Some(exit) = process.try_exited() {
                slot.process = None;
                let ran_for = slot.launched_at.map(|t| t.elapsed()).unwrap_or_default();
                if ran_for >= STABLE_AFTER {
                    slot.consecutive_failures = 0;
                }
                slot.consecutive_failures += 1;
                slot.status.restarts += 1;
                ::metrics::counter!(names::RUNNER_RESTARTS).increment(1);
                let tail = log_tail(&slot_dir, 8192);
                let last_line = tail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                slot.status.state = SlotState::Failed;
                if looks_gated(&tail) {
                    // Judged against the token it was launched with: one set while it was
                    // still starting is a change, and is tried at once.
                    slot.gated_with = slot.launched_with.clone().or(Some(choice.clone()));
                    slot.status.last_error = Some(format!(
                        "gated model: Hugging Face refused access ({exit}); set a token that has access to {}",
                        want.model.id
                    ));
                    tracing::warn!(slot = %slot_id, model = %want.model.id, "vLLM failed: the model is gated; waiting for a token change");
                } else {
                    let backoff = backoff(slot.consecutive_failures);
                    slot.retry_at = Some(Instant::now() + backoff);
                    slot.status.last_error = Some(format!("{exit}: {}", truncate(last_line, 300)));
                    tracing::warn!(slot = %slot_id, %exit, retry_in = ?backoff, "vLLM exited; restarting after backoff");
                }
                return;
            }
            if slot.status.state == SlotState::Starting {
                if let Some(port) = slot.status.port {
                    if healthy(port).await {
                        if let Some(launched) = slot.launched_at {
                            ::metrics::histogram!(names::RUNNER_LAUNCH_TO_READY)
                                .record(launched.elapsed().as_secs_f64());
                        }
                        slot.status.state = SlotState::Running;
                        slot.status.last_error = None;
                        tracing::info!(slot = %slot_id, port, "vLLM is ready");
                    }
                }
            }
            return;
        }

        // Not running: launch when due.
        let due = match &slot.gated_with {
            Some(failed_with) => *failed_with != choice,
            None => slot.retry_at.is_none_or(|t| Instant::now() >= t),
        };
        if !due {
            return;
        }
        let Some(port) = pick_port(self.tuning.port_range, &taken, slot.status.port) else {
            slot.status.state = SlotState::Failed;
            slot.status.last_error = Some(format!(
                "no free port in {}-{}",
                self.tuning.port_range.0, self.tuning.port_range.1
            ));
            slot.retry_at = Some(Instant::now() + FIRST_BACKOFF);
            return;
        };
        let argv = vllm_argv(
            &self.vllm_command,
            &want.model,
            port,
            want.gpu_indices.len(),
        );
        let source = choice.source;
        let opened = self
            .cluster
            .replica()
            .read(|state| self.tokens.open(&choice, state));
        let token = match opened {
            Ok(token) => token,
            Err(e) => {
                // Never launched without the token it should get: a gated model would fail,
                // and a node without the seal key must not run what needs a secret.
                slot.consecutive_failures += 1;
                slot.retry_at = Some(Instant::now() + backoff(slot.consecutive_failures));
                slot.status.state = SlotState::Failed;
                slot.status.last_error = Some(format!("cannot open its Hugging Face token: {e}"));
                tracing::error!(slot = %slot_id, level = ?source, error = %e, "not launching vLLM: cannot open its token");
                return;
            }
        };
        tracing::info!(
            model = %want.model.id,
            hf_token_provided = token.is_some(),
            hf_token_source = ?source,
            "NewVLLMRuntime received args"
        );
        let spawned = VllmProcess::spawn(LaunchSpec {
            slot_id: slot_id.to_string(),
            argv,
            cuda_visible_devices: cuda_visible_devices(&want.gpu_indices),
            hf_token: token,
            slot_dir,
        });
        slot.gated_with = None;
        match spawned {
            Ok(process) => {
                tracing::info!(slot = %slot_id, pid = process.pid(), port, "started vLLM");
                slot.process = Some(process);
                slot.launched = Some(LaunchedModel::of(&want.model));
                slot.launched_at = Some(Instant::now());
                slot.launched_with = Some(choice.clone());
                slot.status.state = SlotState::Starting;
                slot.status.port = Some(port);
                slot.status.hf_token_source = Some(source);
            }
            Err(e) => {
                slot.consecutive_failures += 1;
                slot.retry_at = Some(Instant::now() + backoff(slot.consecutive_failures));
                slot.status.state = SlotState::Failed;
                slot.status.last_error = Some(format!("cannot start vLLM: {e}"));
                tracing::error!(slot = %slot_id, error = %e, "cannot start vLLM");
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn healthy(port: u16) -> bool {
    let client = reqwest::Client::new();
    client
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
