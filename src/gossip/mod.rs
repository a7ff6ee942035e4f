//! Peer-to-peer gossip (foca's SWIM, over UDP at the peer address): fast-changing facts
//! that need no consensus and survive nothing: which nodes are alive, which replicas are
//! ready on them and how loaded each is. Placement and configuration stay in Raft; the
//! gateway routes on both.
//!
//! Every datagram is authenticated with a key only members hold (`auth.rs`). A node that
//! stops answering probes is suspected, then declared down about two seconds after it went
//! silent, long before Raft's `node_lost_after` moves its slots.

mod auth;
mod facts;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::auth::Dropped;
use self::auth::{GossipKeys, Nonces, OVERHEAD};
use self::facts::{Broadcast, FactsBook, FactsKey};
pub use self::facts::{NodeFacts, SlotFacts};
use crate::cluster::Cluster;
use crate::loopback::Loopback;
use crate::metrics::names;
use crate::state::{Sealer, SlotState, State};

/// How often each node probes one other; a silent node is suspected after a failed probe
/// and declared down `SUSPECT_FOR` later.
const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_RTT: Duration = Duration::from_millis(200);
const SUSPECT_FOR: Duration = Duration::from_millis(1000);
/// Local replicas' load is read and published this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
const METRICS_TIMEOUT: Duration = Duration::from_millis(500);
/// Facts this old are no longer believed (their node stopped publishing).
const FACTS_EXPIRE_AFTER: Duration = Duration::from_secs(5);
/// Largest foca packet: facts of some hundreds of replicas fit.
const MAX_PACKET: usize = 16 * 1024;

/// Every local replica's gateway requests in flight, read when publishing.
pub type InFlightCounts = Arc<dyn Fn() -> BTreeMap<String, u64> + Send + Sync>;

/// A member as gossip knows it: its Raft node id, its gossip address, and an incarnation
/// that grows each time the process starts, so a restarted node is a new identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: u64,
    pub addr: SocketAddr,
    pub incarnation: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Member {
            incarnation: self.incarnation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// What gossip says now. `running` is false until this node gossips (it needs the keyring's
/// key): routing then falls back to the committed state alone.
#[derive(Debug, Clone, Default)]
pub struct GossipView {
    pub running: bool,
    /// Live nodes (this one included) and what they last said about their replicas.
    pub nodes: BTreeMap<u64, NodeFacts>,
    /// Nodes gossip declared down (and that have not come back since).
    pub down: BTreeSet<u64>,
}

impl GossipView {
    /// A node gossip has not declared down: alive, or not heard of yet (a node that just
    /// joined), in which case the committed state is believed.
    pub fn maybe_alive(&self, node: u64) -> bool {
        !self.down.contains(&node)
    }

    /// What `node` last said about replica `slot`, if anything.
    pub fn slot(&self, node: u64, slot: &str) -> Option<&SlotFacts> {
        self.nodes.get(&node)?.slots.get(slot)
    }
}

/// This node's gossip. Cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    /// Replaced whole on each change, so a reader takes a cheap `Arc` of it.
    view: Arc<RwLock<Arc<GossipView>>>,
    dropped: Arc<Dropped>,
}

impl Gossip {
    /// What gossip says now: read on every inference request, so a shared snapshot.
    pub fn view(&self) -> Arc<GossipView> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Datagrams dropped as forged, stale, replayed or malformed.
    pub fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    /// Gossip on UDP `addr` (the peer address) until `shutdown`.
    pub async fn start(
        cluster: Cluster,
        sealer: Sealer,
        addr: SocketAddr,
        loopback: Loopback,
        in_flight: InFlightCounts,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Gossip> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {addr}/udp for gossip: {e}"))?;
        let keys = Arc::new(RwLock::new(GossipKeys::default()));
        follow_keys(&cluster, &sealer, &keys, shutdown.clone());
        let gossip = Gossip {
            view: Arc::default(),
            dropped: Arc::default(),
        };
        let agent = Agent {
            me: Member {
                node: cluster.node_id(),
                addr,
                incarnation: crate::time::now_ms().max(0) as u64,
            },
            cluster,
            socket,
            keys,
            seen: Nonces::default(),
            loopback,
            in_flight,
            gossip: gossip.clone(),
            scraped: BTreeMap::new(),
        };
        tokio::spawn(agent.run(shutdown));
        Ok(gossip)
    }
}

fn config() -> Config {
    let mut config = Config::new_lan(NonZeroU32::new(16).expect("not zero"));
    config.probe_period = PROBE_EVERY;
    config.probe_rtt = PROBE_RTT;
    config.suspect_to_down_after = SUSPECT_FOR;
    config.max_packet_size = NonZeroUsize::new(MAX_PACKET - OVERHEAD).expect("not zero");
    // A node declared down stays known as down (not "never heard of") for this long.
    config.remove_down_after = Some(Duration::from_secs(3600));
    config
}

/// The task that owns foca, the socket and the timers.
struct Agent {
    me: Member,
    cluster: Cluster,
    socket: UdpSocket,
    keys: Arc<RwLock<GossipKeys>>,
    seen: Nonces,
    loopback: Loopback,
    in_flight: InFlightCounts,
    gossip: Gossip,
    /// Each local replica's last successful `/metrics` read: a replica busy enough to miss
    /// one read is still ready, with its last known load.
    scraped: BTreeMap<String, (SlotFacts, Instant)>,
}

type Swim = Foca<Member, PostcardCodec, rand_foca::rngs::StdRng, FactsBook>;

impl Agent {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let book = FactsBook::default();
        let mut foca: Swim = Foca::with_custom_broadcast(
            self.me.clone(),
            config(),
            rand_foca::make_rng(),
            PostcardCodec,
            book.clone(),
        );
        let mut runtime = AccumulatingRuntime::new();
        let mut timers: Vec<(Instant, Timer<Member>)> = Vec::new();
        let mut buffer = vec![0u8; MAX_PACKET];
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        // Until a member answers, keep announcing to every one the state knows.
        let mut announce = tokio::time::interval(Duration::from_secs(2));
        loop {
            let next_timer = timers.iter().map(|(at, _)| *at).min();
            let result = tokio::select! {
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((len, _)) => self.receive(&mut foca, &buffer[..len], &mut runtime),
                    Err(e) => {
                        tracing::debug!(error = %e, "gossip receive failed");
                        Ok(())
                    }
                },
                _ = sleep_until(next_timer) => {
                    let now = Instant::now();
                    let (due, later): (Vec<_>, Vec<_>) =
                        timers.drain(..).partition(|(at, _)| *at <= now);
                    timers = later;
                    due.into_iter()
                        .try_for_each(|(_, timer)| foca.handle_timer(timer, &mut runtime))
                }
                _ = publish.tick() => self.publish(&mut foca).await,
                _ = announce.tick(), if foca.num_members() == 0 => {
                    self.announce(&mut foca, &mut runtime)
                }
                _ = shutdown.changed() => break,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "gossip: ignored a foca error");
            }
            self.drain(&mut runtime, &mut timers).await;
            self.refresh_view(&foca, &book);
        }
        let _ = foca.leave_cluster(&mut runtime);
        self.drain(&mut runtime, &mut timers).await;
    }

    fn receive(
        &mut self,
        foca: &mut Swim,
        datagram: &[u8],
        runtime: &mut AccumulatingRuntime<Member>,
    ) -> Result<(), foca::Error> {
        let opened = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            auth::open(&keys, &mut self.seen, now_ms(), datagram)
        };
        match opened {
            Ok(packet) => foca.handle_data(packet, runtime),
            Err(refusal) => {
                self.gossip.dropped.count(refusal);
                Ok(())
            }
        }
    }

    fn announce(
        &self,
        foca: &mut Swim,
        runtime: &mut AccumulatingRuntime<Member>,
    ) -> Result<(), foca::Error> {
        let me = self.me.node;
        let peers: Vec<(u64, SocketAddr)> = self.cluster.replica().read(|s| {
            s.nodes
                .values()
                .filter(|n| n.id != me)
                .filter_map(|n| Some((n.id, n.peer_addr.parse().ok()?)))
                .collect()
        });
        for (node, addr) in peers {
            foca.announce(
                Member {
                    node,
                    addr,
                    incarnation: 0,
                },
                &mut *runtime,
            )?;
        }
        Ok(())
    }

    /// Read the local replicas' load and broadcast it.
    async fn publish(&mut self, foca: &mut Swim) -> Result<(), foca::Error> {
        let in_flight = (self.in_flight)();
        let facts = local_facts(&self.cluster, &self.loopback, &mut self.scraped, in_flight).await;
        let broadcast = Broadcast {
            key: FactsKey {
                node: self.me.node,
                version: now_ms(),
            },
            facts,
        };
        match postcard::to_allocvec(&broadcast) {
            Ok(bytes) => foca.add_broadcast(&bytes).map(drop),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode this node's gossip facts");
                Ok(())
            }
        }
    }

    /// Send what foca wants sent (authenticated), and schedule its timers.
    async fn drain(
        &self,
        runtime: &mut AccumulatingRuntime<Member>,
        timers: &mut Vec<(Instant, Timer<Member>)>,
    ) {
        let key = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current();
        while let Some((to, packet)) = runtime.to_send() {
            // Without the keyring's key a node does not gossip, and others do not hear it.
            let Some((key_id, key)) = key else { continue };
            let datagram = auth::seal(key_id, &key, now_ms(), &packet);
            if let Err(e) = self.socket.send_to(&datagram, to.addr).await {
                tracing::debug!(to = %to.addr, error = %e, "gossip datagram not sent");
            }
        }
        let now = Instant::now();
        while let Some((delay, timer)) = runtime.to_schedule() {
            timers.push((now + delay, timer));
        }
        while let Some(notification) = runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(m) => {
                    tracing::info!(node = m.node, "gossip: member up")
                }
                OwnedNotification::MemberDown(m) => {
                    tracing::info!(node = m.node, "gossip: member down")
                }
                _ => {}
            }
        }
    }

    fn refresh_view(&self, foca: &Swim, book: &FactsBook) {
        let running = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current()
            .is_some();
        let alive: BTreeSet<u64> = foca
            .iter_members()
            .map(|m| m.id().node)
            .chain([self.me.node])
            .collect();
        let down: BTreeSet<u64> = foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Down)
            .map(|m| m.id().node)
            .filter(|node| !alive.contains(node))
            .collect();
        ::metrics::gauge!(names::GOSSIP_MEMBERS, "state" => "alive").set(alive.len() as f64);
        ::metrics::gauge!(names::GOSSIP_MEMBERS, "state" => "down").set(down.len() as f64);
        let fresh_after = now_ms().saturating_sub(FACTS_EXPIRE_AFTER.as_millis() as u64);
        let latest = book.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let nodes = alive
            .into_iter()
            .map(|node| {
                let facts = latest
                    .get(&node)
                    .filter(|b| b.key.version >= fresh_after)
                    .map(|b| b.facts.clone())
                    .unwrap_or_default();
                (node, facts)
            })
            .collect();
        *self
            .gossip
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(GossipView {
            running,
            nodes,
            down,
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> u64 {
    crate::time::now_ms().max(0) as u64
}

/// Keep the gossip key the one the current keyring gives (the previous one stays accepted
/// while others catch up with a rotation).
fn follow_keys(
    cluster: &Cluster,
    sealer: &Sealer,
    keys: &Arc<RwLock<GossipKeys>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let view = cluster.replica().clone();
    let sealer = sealer.clone();
    let keys = keys.clone();
    let update = move |state: &State| {
        let key = sealer.gossip_key(state).ok();
        keys.write()
            .unwrap_or_else(PoisonError::into_inner)
            .set(key);
    };
    view.read(&update);
    let mut changes = view.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            view.read(&update);
        }
    });
}

/// This node's replicas as they are now: each committed as running here, and ready when
/// its vLLM answered `/metrics` within the last [`FACTS_EXPIRE_AFTER`].
async fn local_facts(
    cluster: &Cluster,
    loopback: &Loopback,
    scraped: &mut BTreeMap<String, (SlotFacts, Instant)>,
    in_flight: BTreeMap<String, u64>,
) -> NodeFacts {
    let me = cluster.node_id();
    let local: Vec<(String, Option<u16>)> = cluster.replica().read(|s| {
        s.slots
            .values()
            .filter(|slot| slot.placement.as_ref().is_some_and(|p| p.node_id == me))
            .filter(|slot| slot.status.state == SlotState::Running)
            .map(|slot| (slot.id.clone(), slot.status.port))
            .collect()
    });
    let mut facts = NodeFacts {
        in_flight,
        ..NodeFacts::default()
    };
    scraped.retain(|slot_id, _| local.iter().any(|(id, _)| id == slot_id));
    for (slot_id, port) in local {
        let read = match port {
            Some(port) => loopback.metrics(port, METRICS_TIMEOUT).await.ok(),
            None => None,
        };
        let slot = match read {
            Some(text) => {
                let slot = SlotFacts::from_metrics(&text);
                scraped.insert(slot_id.clone(), (slot, Instant::now()));
                slot
            }
            None => match scraped.get(&slot_id) {
                Some((last, at)) if at.elapsed() < FACTS_EXPIRE_AFTER => *last,
                _ => SlotFacts::default(),
            },
        };
        facts.slots.insert(slot_id, slot);
    }
    facts
}
