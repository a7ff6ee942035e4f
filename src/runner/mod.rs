//! The GPU runner side of a node: it acts on applied state, never on requests.
//!
//! - `gpus`: what GPUs this node has (NVML, or declared);
//! - `scheduler`: on the leader, which node and GPUs run each model (committed);
//! - `reconciler`: on every node, make local vLLM processes match what is committed here;
//!   `report`: its reports on each slot, written into the replicated state; `fence`: when a
//!   node out of touch with the quorum stops its slots;
//! - `launch`: the exact vLLM command line; `process`: supervising one vLLM process;
//! - `gated`: whether a failed vLLM's log says the model is gated (reconciler policy);
//! - `tokens`: the Hugging Face tokens, decrypted into memory only, and their resolution;
//! - `metrics`: slots by state and GPU memory, for `/metrics`.

pub mod fence;
pub mod gated;
pub mod gpus;
pub mod launch;
pub mod metrics;
pub mod process;
pub mod reconciler;
mod report;
pub mod scheduler;
pub mod tokens;
