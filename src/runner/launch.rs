//! The launch contract: the exact vLLM command line and the port it listens on.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

use crate::state::Model;

/// `<vllm-command...> serve <model_id> --host 127.0.0.1 --port <port>
///  [--max-model-len <context_length>, unless runtime_args give it] [--tensor-parallel-size <n, when n > 1>] <runtime_args...>`
///
/// No secret ever goes here: the token travels in the environment only.
pub fn vllm_argv(command: &[String], model: &Model, port: u16, gpu_count: usize) -> Vec<String> {
    let mut argv: Vec<String> = command.to_vec();
    argv.extend([
        "serve".to_string(),
        model.id.clone(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ]);
    // Given in the runtime arguments too (the seed's model.json does), it is passed once.
    if let Some(context) = model
        .context_length
        .filter(|_| model.max_model_len_arg().is_none())
    {
        argv.extend(["--max-model-len".into(), context.to_string()]);
    }
    if gpu_count > 1 {
        argv.extend(["--tensor-parallel-size".into(), gpu_count.to_string()]);
    }
    argv.extend(model.runtime_args.iter().cloned());
    argv
}

/// `CUDA_VISIBLE_DEVICES` for the assigned GPU indices.
pub fn cuda_visible_devices(gpu_indices: &[u32]) -> String {
    gpu_indices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A free port in `range` for a new vLLM process: `preferred` (its previous port) when still
/// free, else the lowest free one. `taken` are ports of this node's own slots, so two slots
/// never race for one port; a probe bind skips ports other programs hold.
pub fn pick_port(range: (u16, u16), taken: &BTreeSet<u16>, preferred: Option<u16>) -> Option<u16> {
    let free = |p: u16| !taken.contains(&p) && TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
    if let Some(p) = preferred.filter(|p| (range.0..=range.1).contains(p)) {
        if free(p) {
            return Some(p);
        }
    }
    (range.0..=range.1).find(|p| free(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_follows_the_contract() {
        let mut m = Model::new("Qwen/Qwen2.5-VL-7B-Instruct".into());
        m.context_length = Some(32768);
        m.runtime_args = vec!["--trust-remote-code".into()];
        let argv = vllm_argv(&["vllm".into()], &m, 20001, 2);
        assert_eq!(
            argv.join(" "),
            "vllm serve Qwen/Qwen2.5-VL-7B-Instruct --host 127.0.0.1 --port 20001 \
             --max-model-len 32768 --tensor-parallel-size 2 --trust-remote-code"
        );
        m.runtime_args = vec!["--max-model-len".into(), "32768".into()];
        let argv = vllm_argv(&["vllm".into()], &m, 20001, 1);
        let given = argv.iter().filter(|a| *a == "--max-model-len").count();
        assert_eq!(
            given, 1,
            "passed once when the runtime arguments give it: {argv:?}"
        );
        let one = vllm_argv(&["vllm".into()], &Model::new("m".into()), 5, 1);
        assert!(!one.contains(&"--tensor-parallel-size".to_string()));
        assert_eq!(cuda_visible_devices(&[0, 1]), "0,1");
    }

    #[test]
    fn ports_skip_taken_and_bound_ones() {
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = holder.local_addr().unwrap().port();
        let range = (busy, busy.saturating_add(3));
        let picked = pick_port(range, &BTreeSet::from([busy + 1]), Some(busy)).unwrap();
        assert!(picked != busy && picked != busy + 1);
    }
}
