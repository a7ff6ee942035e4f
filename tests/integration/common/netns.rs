//! A lab of network namespaces, so that network faults are real: every node is a host of
//! its own (`ip netns`), wired by a veth pair to a bridge inside the lab's own namespace, on
//! a private /24 of 10.0.0.0/8 that no other lab of this machine uses. The test process
//! reaches every host through one more veth from its own namespace to the bridge (address
//! .254), like a client outside the cluster whose links never fail.
//!
//! Faults are nftables rules in a host's own namespace (table `inet chaos`), so they drop
//! packets silently as a cut cable does: a partition, a one-way link, random loss. This
//! kernel has no `sch_netem` (`tc netem` is refused), so delay is not among them.
//!
//! Needs root, iproute2 and nftables (installed with apt-get when missing); a lab that
//! cannot be built fails the test with the command and its output, it never skips. Dropping the [`Lab`] deletes every namespace it
//! made (their veths go with them); one left behind by a killed test run is deleted by the
//! next lab whose process finds its owner gone.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::packages::ensure_packages;
use super::process::pid_alive;

/// The prefix of every namespace a lab makes: `hxlab-<pid>-<n>`.
const PREFIX: &str = "hxlab-";

/// The address of the test process on every lab's subnet.
const CLIENT_HOST: u8 = 254;

/// A set of hosts (network namespaces) on one bridge, with the faults between them.
pub struct Lab {
    /// `hxlab-<pid>-<n>`: the bridge's namespace; host `k` is `<name>-h<k>`.
    name: String,
    /// The first two octets after 10: the lab's subnet is 10.a.b.0/24.
    subnet: (u8, u8),
    /// Hosts made so far (1-based: host `k` has address 10.a.b.k).
    hosts: usize,
}

impl Lab {
    /// Builds the bridge namespace and the test process's link to it.
    pub fn new() -> Lab {
        ensure_packages(
            "a lab of network namespaces",
            &["iproute2", "nftables"],
            || answers(&["ip", "-V"]) && answers(&["nft", "--version"]),
        );
        remove_orphans();
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let subnet = free_subnet();
        let lab = Lab {
            name,
            subnet,
            hosts: 0,
        };
        run(&["ip", "netns", "add", &lab.name]);
        lab.exec(&lab.name, &["ip", "link", "set", "lo", "up"]);
        lab.exec(&lab.name, &["ip", "link", "add", "br0", "type", "bridge"]);
        lab.exec(&lab.name, &["ip", "link", "set", "br0", "up"]);
        // The test process's end lives in our namespace under a name unique on this machine
        // (interface names have at most 15 bytes): `hxc` and the subnet.
        let outside = format!("hxc{}x{}", subnet.0, subnet.1);
        run(&[
            "ip", "link", "add", &outside, "type", "veth", "peer", "name", "client", "netns",
            &lab.name,
        ]);
        lab.exec(&lab.name, &["ip", "link", "set", "client", "master", "br0"]);
        lab.exec(&lab.name, &["ip", "link", "set", "client", "up"]);
        let cidr = format!("{}/24", lab.addr_of(CLIENT_HOST));
        run(&["ip", "addr", "add", &cidr, "dev", &outside]);
        run(&["ip", "link", "set", &outside, "up"]);
        lab
    }

    /// Adds host `k` (the next one) and returns its address. Its namespace has loopback
    /// (vLLM test doubles bind 127.0.0.1 there), one link to the bridge, and an empty
    /// `inet chaos` table for the faults.
    pub fn add_host(&mut self) -> Ipv4Addr {
        self.hosts += 1;
        let k = self.hosts;
        let host = self.host(k);
        let port = format!("h{k}");
        run(&["ip", "netns", "add", &host]);
        self.exec(&host, &["ip", "link", "set", "lo", "up"]);
        self.exec(
            &self.name,
            &[
                "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host,
            ],
        );
        self.exec(&self.name, &["ip", "link", "set", &port, "master", "br0"]);
        self.exec(&self.name, &["ip", "link", "set", &port, "up"]);
        let addr = self.addr_of(k as u8);
        self.exec(
            &host,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        );
        self.exec(&host, &["ip", "link", "set", "eth0", "up"]);
        self.nft(
            k,
            "add table inet chaos\n\
             add chain inet chaos input { type filter hook input priority 0; policy accept; }\n\
             add chain inet chaos output { type filter hook output priority 0; policy accept; }",
        );
        addr
    }

    /// Host `k`'s namespace, for `ip netns exec`.
    pub fn host(&self, k: usize) -> String {
        format!("{}-h{k}", self.name)
    }

    /// Host `k`'s address.
    pub fn addr(&self, k: usize) -> Ipv4Addr {
        self.addr_of(k as u8)
    }

    /// Cuts every link between the two groups, both ways: packets are dropped silently.
    pub fn partition(&self, one: &[usize], other: &[usize]) {
        for &a in one {
            for &b in other {
                self.drop_between(a, b);
            }
        }
    }

    /// Cuts host `k` off from every other host (the test process still reaches it).
    pub fn isolate(&self, k: usize) {
        let others: Vec<usize> = (1..=self.hosts).filter(|&h| h != k).collect();
        self.partition(&[k], &others);
    }

    /// Drops what `from` sends to `to`; what `to` sends to `from` still arrives.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let to_addr = self.addr(to);
        self.nft(
            from,
            &format!("add rule inet chaos output ip daddr {to_addr} drop"),
        );
    }

    /// Drops `percent` of the packets host `k` receives from the other hosts.
    pub fn loss(&self, k: usize, percent: u8) {
        let peers = self.peer_set(k);
        self.nft(
            k,
            &format!(
                "add rule inet chaos input ip saddr {peers} numgen random mod 100 < {percent} drop"
            ),
        );
    }

    /// Removes every fault from every host.
    pub fn heal(&self) {
        for k in 1..=self.hosts {
            self.nft(
                k,
                "flush chain inet chaos input\nflush chain inet chaos output",
            );
        }
    }

    fn drop_between(&self, a: usize, b: usize) {
        let b_addr = self.addr(b);
        self.nft(
            a,
            &format!(
                "add rule inet chaos output ip daddr {b_addr} drop\n\
                 add rule inet chaos input ip saddr {b_addr} drop"
            ),
        );
    }

    /// `{ 10.a.b.1, ... }`: every host but `k` (never the test process).
    fn peer_set(&self, k: usize) -> String {
        let peers: Vec<String> = (1..=self.hosts)
            .filter(|&h| h != k)
            .map(|h| self.addr(h).to_string())
            .collect();
        format!("{{ {} }}", peers.join(", "))
    }

    fn addr_of(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, host)
    }

    fn nft(&self, k: usize, script: &str) {
        let host = self.host(k);
        let out = Command::new("ip")
            .args(["netns", "exec", &host, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap_or_else(|e| panic!("lab: run nft in {host}: {e} (is nftables installed?)"));
        assert!(
            out.status.success(),
            "lab: nft in {host} refused\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn exec(&self, namespace: &str, command: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", namespace];
        full.extend_from_slice(command);
        run(&full);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for k in 1..=self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.host(k)])
                .status();
        }
        // The bridge's namespace takes the test process's veth with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The command runs and succeeds.
fn answers(command: &[&str]) -> bool {
    Command::new(command[0])
        .args(&command[1..])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs a setup command; a failure names the command, its output and what the lab needs.
fn run(command: &[&str]) {
    let out = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("lab: run {}: {e} (needs iproute2)", command.join(" ")));
    assert!(
        out.status.success(),
        "lab: `{}` failed (the lab needs root, iproute2 and nftables): {}",
        command.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Namespaces of this machine whose name starts with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("lab: run ip netns list (needs iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Deletes the namespaces of labs whose test process is gone (a run killed before its
/// labs were dropped).
fn remove_orphans() {
    for ns in namespaces(PREFIX) {
        let owner = ns[PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| !pid_alive(pid)) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// A 10.a.b.0/24 that no address of this namespace is in yet. Two labs starting at once in
/// different test processes could still draw the same one; the draw is random over ~38,000
/// subnets, and the second lab's address then fails to add, loudly.
fn free_subnet() -> (u8, u8) {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("lab: run ip addr show (needs iproute2)");
    let used: BTreeSet<(u8, u8)> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| {
            let mut o = w.split(['.', '/']);
            (o.next()? == "10").then_some(())?;
            Some((o.next()?.parse().ok()?, o.next()?.parse().ok()?))
        })
        .collect();
    loop {
        let r = super::net::pseudo_random();
        let subnet = (100 + (r % 150) as u8, ((r >> 8) % 256) as u8);
        if !used.contains(&subnet) {
            return subnet;
        }
    }
}
