//! The rig: a test's cluster of real `helix` nodes, each on its own loopback address
//! 127.0.0.N, in its own temp dir; or, built `in_lab()`, each on a host of its own in a lab
//! of network namespaces (`netns.rs`), where the test can cut links and the API speaks TLS
//! (the test's client trusts the cluster CA).
//!
//! - Node K keeps its data in `tmp/nodeK/data`, its process output in `tmp/nodeK.log`, its
//!   config in `tmp/nodeK.toml` and the vLLM test double's launch records in
//!   `tmp/nodeK/records`. Every node gets its own config file (the test's `[raft]` and
//!   `[server]` lines, a short `fence_after_ms`, `node_lost_after_ms` and `stop_grace_ms`, its own vLLM
//!   `port_range`).
//! - A node with declared GPUs runs the vLLM test double (`examples/fake_vllm.rs`).
//! - Dropping a [`Cluster`] SIGKILLs every node it started and then every vLLM test double
//!   they left behind; when the test is panicking it first prints the tail of every log.
//!   `HELIX_TEST_KEEP=1` keeps the temp dir for a look afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::fake_vllm::{fake_vllm, reap_fakes};
use super::http::{tls_client, Client, Transcript};
use super::net::{alloc_ip, alloc_port_range, free_port};
use super::netns::Lab;
use super::process::{tail, NodeProcess};
use super::secrets::read_secret;
use super::wait::{wait_for, WAIT};

/// How long the leader waits before it moves the slots of a node it cannot reach (with the
/// default Raft timing; a test that slows Raft down gets what the fence needs, see
/// [`runner_config`]).
pub const NODE_LOST_AFTER_MS: u64 = 3000;

/// The rig's vLLM stop grace: the test double stops at once on SIGTERM.
const STOP_GRACE_MS: u64 = 100;

/// helix's `config::FENCE_TICK`: the fence's slack is that and a leader lease.
const FENCE_TICK_MS: u64 = 250;

/// The `[runner]` lines for the test's `[raft]` lines: the shortest fence helix accepts (the
/// stall tolerance, 4 × `election_timeout_max_ms`), and a node lost after
/// [`NODE_LOST_AFTER_MS`], or as late as the fence needs: fence + tolerance + slack + grace.
fn runner_config(raft: &[String]) -> String {
    let setting = |name: &str, default: u64| {
        raft.iter()
            .find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or(default)
    };
    let tolerance = 4 * setting("election_timeout_max_ms", 300);
    let slack = FENCE_TICK_MS + setting("election_timeout_min_ms", 150);
    let lost = NODE_LOST_AFTER_MS.max(2 * tolerance + slack + STOP_GRACE_MS);
    format!(
        "node_lost_after_ms = {lost}\nfence_after_ms = {tolerance}\nstop_grace_ms = {STOP_GRACE_MS}"
    )
}

/// How one node is started.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `--gpus`: `none`, or declared GPUs such as `80GB,80GB`.
    pub gpus: String,
    /// Environment of this node's process, e.g. its own `HF_TOKEN`.
    pub env: Vec<(String, String)>,
    /// More flags for `helix node start|join`, e.g. `--api-tls`.
    pub args: Vec<String>,
}

impl NodeSpec {
    /// A node without GPUs: a Raft member that runs no model.
    pub fn none() -> NodeSpec {
        NodeSpec::gpus("none")
    }

    /// A node with declared GPUs (`80GB,80GB`) that runs the vLLM test double.
    pub fn gpus(list: &str) -> NodeSpec {
        NodeSpec {
            gpus: list.to_string(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, flag: &str) -> NodeSpec {
        self.args.push(flag.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> NodeSpec {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn has_gpus(&self) -> bool {
        self.gpus != "none"
    }
}

pub struct Node {
    /// 1-based index inside the test (`nodeK`).
    pub k: usize,
    pub api_addr: String,
    pub peer_addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Where the vLLM test double records this node's launches.
    pub records_dir: PathBuf,
    config_path: PathBuf,
    pub spec: NodeSpec,
    /// The Raft node id, once known.
    pub id: Option<u64>,
    process: Option<NodeProcess>,
}

/// A cluster to be started: every node's spec, and what all of them share.
#[derive(Default)]
pub struct ClusterBuilder {
    raft: Vec<String>,
    sections: Vec<String>,
    server: Vec<String>,
    env: Vec<(String, String)>,
    nodes: Vec<NodeSpec>,
    in_lab: bool,
}

impl ClusterBuilder {
    /// A line of every node's `[raft]` config section, e.g. `snapshot_every = 50`.
    pub fn raft(mut self, line: &str) -> Self {
        self.raft.push(line.to_string());
        self
    }

    /// A section of every node's config file besides `[raft]`, `[server]` and `[runner]`, e.g.
    /// `"[tls]\ncertificate_lifetime_s = 12"`.
    pub fn config(mut self, section: &str) -> Self {
        self.sections.push(section.to_string());
        self
    }

    /// A line of every node's `[server]` config section, e.g. `max_connections = 64`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_string());
        self
    }

    /// Environment for every node's process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn node(mut self, spec: NodeSpec) -> Self {
        self.nodes.push(spec);
        self
    }

    /// Every node on a host of its own in a [`Lab`] of network namespaces, so that the
    /// test can cut links ([`Cluster::partition`] and friends). Needs root and nftables.
    pub fn in_lab(mut self) -> Self {
        self.in_lab = true;
        self
    }

    /// `n` nodes without GPUs.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes.extend((0..n).map(|_| NodeSpec::none()));
        self
    }

    /// Bootstraps the first node, joins the others through it, and waits until all are
    /// voting members (the first five) and every declared GPU is published.
    pub fn start(self) -> Cluster {
        assert!(!self.nodes.is_empty(), "test setup: a cluster needs a node");
        let tmp = tempfile::Builder::new()
            .prefix("helix-it-")
            .tempdir()
            .expect("tempdir");
        let mut c = Cluster {
            tmp,
            nodes: Vec::new(),
            admin_key: String::new(),
            join_token: String::new(),
            raft_config: self.raft,
            config_sections: self.sections,
            server_config: self.server,
            env: self.env,
            transcript: Transcript::default(),
            lab: self.in_lab.then(Lab::new),
            api_tls: None,
        };
        let mut specs = self.nodes.into_iter();
        let first = c.add_node(specs.next().unwrap());
        c.bootstrap(first);
        for spec in specs {
            let k = c.add_node(spec);
            c.join(k, first);
        }
        // A joiner is `ready` as a learner; the leader promotes it shortly after.
        c.wait_members_settled();
        c.wait_gpus_published();
        c
    }
}

/// A test's cluster. Nodes are numbered from 1 in the order they were added.
pub struct Cluster {
    tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub admin_key: String,
    pub join_token: String,
    raft_config: Vec<String>,
    config_sections: Vec<String>,
    server_config: Vec<String>,
    env: Vec<(String, String)>,
    /// Every response body the test's clients received.
    pub transcript: Transcript,
    /// The network namespaces the nodes run in, when the test asked for them. Dropped after
    /// the nodes are killed (fields drop after `Drop::drop`).
    lab: Option<Lab>,
    /// In a lab the API speaks TLS (it is not on loopback): the test's HTTPS client, which
    /// trusts the cluster CA, once the first node made it.
    api_tls: Option<reqwest::blocking::Client>,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// `n` nodes without GPUs, started and settled.
    pub fn new(n: usize) -> Cluster {
        Cluster::builder().nodes(n).start()
    }

    /// The test's temp dir: every file any node or vLLM test double wrote is under it.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Allocates node `K` (addresses, directories, config file) without starting it.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        let k = self.nodes.len() + 1;
        let (ip, api_port, peer_port) = match self.lab.as_mut() {
            // A host of its own: every port is free there.
            Some(lab) => (lab.add_host(), 7080, 7090),
            None => {
                let ip = alloc_ip();
                let api_port = free_port(ip);
                let mut peer_port = free_port(ip);
                while peer_port == api_port {
                    peer_port = free_port(ip);
                }
                (ip, api_port, peer_port)
            }
        };
        let root = self.root().to_path_buf();
        let node_dir = root.join(format!("node{k}"));
        let records_dir = node_dir.join("records");
        fs::create_dir_all(&records_dir).unwrap();
        let (low, high) = alloc_port_range();
        let mut config = format!(
            "[raft]\n{}\n[server]\n{}\n[runner]\n{}\nport_range = \"{low}-{high}\"\n",
            self.raft_config.join("\n"),
            self.server_config.join("\n"),
            runner_config(&self.raft_config)
        );
        for section in &self.config_sections {
            config.push_str(section);
            config.push('\n');
        }
        let config_path = root.join(format!("node{k}.toml"));
        fs::write(&config_path, config).unwrap();
        self.nodes.push(Node {
            k,
            api_addr: format!("{ip}:{api_port}"),
            peer_addr: format!("{ip}:{peer_port}"),
            data_dir: node_dir.join("data"),
            log_path: root.join(format!("node{k}.log")),
            records_dir,
            config_path,
            spec,
            id: None,
            process: None,
        });
        k
    }

    pub fn node(&self, k: usize) -> &Node {
        &self.nodes[k - 1]
    }

    /// Node `k`'s Raft id.
    pub fn id(&self, k: usize) -> u64 {
        self.node(k)
            .id
            .unwrap_or_else(|| panic!("node{k}'s id is not known yet"))
    }

    /// The node index whose Raft id is `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().find(|n| n.id == Some(id)).map(|n| n.k)
    }

    // ----- starting ---------------------------------------------------------------------------

    /// `helix node start` on an empty data dir, waits for `ready`, reads the admin key and
    /// the join token, and learns the node id.
    pub fn bootstrap(&mut self, k: usize) {
        self.spawn_restart(k);
        self.wait_ready(k);
        let dd = self.node(k).data_dir.clone();
        self.admin_key = read_secret(&dd.join("admin.key"));
        self.join_token = read_secret(&dd.join("join.token"));
        if self.lab.is_some() {
            let ca = fs::read(dd.join("ca.pem")).expect("the first node wrote ca.pem");
            self.api_tls = Some(tls_client(&ca));
        }
        self.learn_id(k);
    }

    /// `helix node join http://<node via> --token T`, waits for `ready`, learns the id.
    pub fn join(&mut self, k: usize, via: usize) {
        let token = self.join_token.clone();
        self.spawn_join(k, via, &token);
        self.wait_ready(k);
        self.learn_id(k);
    }

    /// Starts `helix node join` with the given token without waiting for anything.
    pub fn spawn_join(&mut self, k: usize, via: usize, token: &str) {
        let scheme = if self.lab.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", self.node(via).api_addr);
        let mut args = vec![
            "node".into(),
            "join".into(),
            url,
            "--token".into(),
            token.into(),
        ];
        args.extend(self.node_args(k));
        self.spawn(k, &args);
    }

    /// `helix node start` with node `k`'s data dir and addresses, without waiting.
    pub fn spawn_restart(&mut self, k: usize) {
        let mut args = vec!["node".into(), "start".into()];
        args.extend(self.node_args(k));
        self.spawn(k, &args);
    }

    /// Restarts node `k` (same data dir and addresses), waits for `ready`, checks its id.
    pub fn restart(&mut self, k: usize) {
        self.spawn_restart(k);
        self.wait_ready(k);
        self.learn_id(k);
    }

    /// Waits until node `k`'s current process prints a line containing `ready`.
    pub fn wait_ready(&mut self, k: usize) {
        self.process_mut(k).wait_ready();
    }

    /// `--data-dir --api-addr --peer-addr --config --gpus [--vllm-command]`
    pub fn node_args(&self, k: usize) -> Vec<String> {
        let n = self.node(k);
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            n.data_dir.display().to_string(),
            "--api-addr".into(),
            n.api_addr.clone(),
            "--peer-addr".into(),
            n.peer_addr.clone(),
            "--config".into(),
            n.config_path.display().to_string(),
            "--gpus".into(),
            n.spec.gpus.clone(),
        ];
        if n.spec.has_gpus() {
            args.push("--vllm-command".into());
            args.push(fake_vllm().display().to_string());
        }
        args.extend(n.spec.args.iter().cloned());
        args
    }

    fn spawn(&mut self, k: usize, args: &[String]) {
        assert!(
            self.node(k).process.is_none(),
            "node{k} already has a process"
        );
        let n = self.node(k);
        let mut env = self.env.clone();
        env.push((
            "FAKE_VLLM_RECORD_DIR".into(),
            n.records_dir.display().to_string(),
        ));
        env.extend(n.spec.env.iter().cloned());
        let netns = self.lab.as_ref().map(|lab| lab.host(k));
        let process = NodeProcess::spawn(
            &format!("node{k}"),
            netns.as_deref(),
            args,
            &env,
            &n.log_path,
        );
        self.nodes[k - 1].process = Some(process);
    }

    fn learn_id(&mut self, k: usize) {
        let c = self.client(k);
        let id = wait_for(WAIT, &format!("node{k} reports its node id"), || {
            let v = c.poll_json("/api/v1/system/config")?;
            v["node_id"]
                .as_u64()
                .ok_or_else(|| format!("no node_id in {v}"))
        });
        if let Some(old) = self.node(k).id {
            assert_eq!(old, id, "node{k} changed its node id");
        }
        self.nodes[k - 1].id = Some(id);
    }

    // ----- signals ----------------------------------------------------------------------------

    fn process_mut(&mut self, k: usize) -> &mut NodeProcess {
        self.nodes[k - 1]
            .process
            .as_mut()
            .unwrap_or_else(|| panic!("node{k} is not running"))
    }

    fn take_process(&mut self, k: usize) -> NodeProcess {
        self.nodes[k - 1]
            .process
            .take()
            .unwrap_or_else(|| panic!("node{k} is not running"))
    }

    pub fn is_running(&mut self, k: usize) -> bool {
        self.nodes[k - 1]
            .process
            .as_mut()
            .is_some_and(|p| p.is_running())
    }

    /// SIGKILL node `k` and reap it.
    pub fn kill9(&mut self, k: usize) {
        self.take_process(k).kill9();
    }

    /// SIGSTOP node `k`: it stays a member but answers nothing, like a node stalled on I/O.
    pub fn pause(&mut self, k: usize) {
        self.process_mut(k).signal(Signal::SIGSTOP);
    }

    /// SIGCONT node `k` after [`Cluster::pause`].
    pub fn resume(&mut self, k: usize) {
        self.process_mut(k).signal(Signal::SIGCONT);
    }

    /// SIGTERM node `k` and assert it exits with status 0.
    pub fn stop(&mut self, k: usize) {
        let st = self.take_process(k).sigterm();
        assert_eq!(
            st.code(),
            Some(0),
            "node{k} should exit 0 after SIGTERM, got {st}"
        );
    }

    /// SIGTERM node `k` and wait for it to exit, at most `timeout` (SIGKILL and panic after).
    pub fn terminate(&mut self, k: usize, timeout: Duration) -> ExitStatus {
        let mut process = self.take_process(k);
        process.signal(Signal::SIGTERM);
        process.wait_exit(timeout)
    }

    /// Waits for node `k`'s process to exit on its own and lets it go, so that node `k` can
    /// be started again.
    pub fn wait_gone(&mut self, k: usize, timeout: Duration) -> ExitStatus {
        self.take_process(k).wait_exit(timeout)
    }

    /// Waits for node `k`'s process to exit on its own.
    pub fn wait_exit(&mut self, k: usize, timeout: Duration) -> ExitStatus {
        self.process_mut(k).wait_exit(timeout)
    }

    pub fn printed_ready(&self, k: usize) -> bool {
        self.node(k)
            .process
            .as_ref()
            .is_some_and(|p| p.printed_ready())
    }

    /// What node `k`'s current process printed on stdout.
    pub fn stdout_lines(&self, k: usize) -> Vec<String> {
        self.node(k)
            .process
            .as_ref()
            .map(|p| p.stdout_lines())
            .unwrap_or_default()
    }

    // ----- network faults (a cluster built `in_lab`) ------------------------------------------

    fn lab(&self) -> &Lab {
        self.lab
            .as_ref()
            .expect("test setup: network faults need Cluster::builder().in_lab()")
    }

    /// Cuts every link between the two groups of nodes, both ways.
    pub fn partition(&self, one: &[usize], other: &[usize]) {
        self.lab().partition(one, other);
    }

    /// Cuts node `k` off from every other node (the test still reaches it).
    pub fn isolate(&self, k: usize) {
        self.lab().isolate(k);
    }

    /// Drops what node `from` sends to node `to`, not the other way.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        self.lab().cut_one_way(from, to);
    }

    /// Drops `percent` of what node `k` receives from other nodes.
    pub fn loss(&self, k: usize, percent: u8) {
        self.lab().loss(k, percent);
    }

    /// Removes every network fault.
    pub fn heal(&self) {
        self.lab().heal();
    }

    // ----- talking to it ----------------------------------------------------------------------

    /// A client for node `k` with the admin key, recording into the transcript.
    pub fn client(&self, k: usize) -> Client {
        self.caller(k, Some(&self.admin_key), &format!("admin@node{k}"))
    }

    /// A client for node `k` with `key` (or none), recording into the transcript.
    pub fn caller(&self, k: usize, key: Option<&str>, who: &str) -> Client {
        let mut c = Client::new(&self.node(k).api_addr)
            .who(who)
            .recording(&self.transcript);
        if let Some(tls) = &self.api_tls {
            c = c.over_tls(tls);
        }
        match key {
            Some(key) => c.key(key),
            None => c,
        }
    }

    /// Node `k`'s output so far.
    pub fn log(&self, k: usize) -> String {
        String::from_utf8_lossy(&fs::read(&self.node(k).log_path).unwrap_or_default()).into_owned()
    }

    /// Tails of every node's log, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "\n----- node{} (api {}, peer {}, id {:?}) last {n} lines of {} -----\n{}\n",
                node.k,
                node.api_addr,
                node.peer_addr,
                node.id,
                node.log_path.display(),
                tail(&node.log_path, n)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let states: Vec<String> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.process.take())
            .map(NodeProcess::end)
            .collect();
        reap_fakes(self.tmp.path());
        if thread::panicking() {
            eprintln!("{}", self.log_tails(60));
            eprintln!("process states at the end of the test: {states:#?}");
        }
        if std::env::var_os("HELIX_TEST_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.tmp, tempfile::tempdir().expect("tempdir"));
            eprintln!("kept test directory {}", kept.keep().display());
        }
    }
}
