//! Every gossip datagram authenticated: a tag made with the keyring's gossip key (which only
//! members that open the keyring hold), the sender's clock and a random nonce. A datagram
//! with a wrong tag, an unknown key, a time too far from ours, or a nonce seen before is
//! dropped and counted. Nothing in gossip is secret, so it is not encrypted.
//!
//! Wire form: `"hxg1" | key id (u32) | sent at, ms (u64) | nonce (12 bytes) | foca's
//! packet | HMAC-SHA256 tag over all before it, first 16 bytes`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::metrics::names;

const MAGIC: &[u8; 4] = b"hxg1";
const HEADER_LEN: usize = 4 + 4 + 8 + 12;
const TAG_LEN: usize = 16;
/// What authentication adds to a packet.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// A datagram sent longer ago than this (or this far in the future, by our clock) is
/// refused; nonces are remembered this long, so a replay inside it is refused too.
const FRESH_FOR: Duration = Duration::from_secs(10);
/// A bound on remembered nonces, whatever the traffic.
const NONCES_KEPT: usize = 200_000;

/// The gossip keys in use: the current one, and the one before it while nodes move over
/// after a keyring rotation.
#[derive(Default)]
pub struct GossipKeys {
    current: Option<(u32, [u8; 32])>,
    previous: Option<(u32, [u8; 32])>,
}

impl GossipKeys {
    /// Start using `key`; the one it replaces is still accepted.
    pub fn set(&mut self, key: Option<(u32, [u8; 32])>) {
        if key.map(|k| k.0) == self.current.map(|k| k.0) {
            return;
        }
        self.previous = self.current.take();
        self.current = key;
    }

    pub fn current(&self) -> Option<(u32, [u8; 32])> {
        self.current
    }

    fn for_id(&self, id: u32) -> Option<&[u8; 32]> {
        [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, key)| key)
    }
}

/// Why datagrams were dropped, counted for `system/config`.
#[derive(Default, Debug)]
pub struct Dropped {
    pub unauthenticated: AtomicU64,
    pub stale: AtomicU64,
    pub replayed: AtomicU64,
    pub malformed: AtomicU64,
}

impl Dropped {
    /// Counted here for `system/config`, and by reason for `/metrics`.
    pub fn count(&self, refusal: Refusal) {
        let (counter, reason) = match refusal {
            Refusal::Unauthenticated => (&self.unauthenticated, "unauthenticated"),
            Refusal::Stale => (&self.stale, "stale"),
            Refusal::Replayed => (&self.replayed, "replayed"),
            Refusal::Malformed => (&self.malformed, "malformed"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!(names::GOSSIP_DROPPED, "reason" => reason).increment(1);
    }

    pub fn total(&self) -> u64 {
        [
            &self.unauthenticated,
            &self.stale,
            &self.replayed,
            &self.malformed,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

fn tag(key: &[u8; 32], signed: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(signed);
    mac.finalize().into_bytes()[..TAG_LEN]
        .try_into()
        .expect("16 bytes")
}

/// `packet` as a datagram authenticated with `key`.
pub fn seal(key_id: u32, key: &[u8; 32], sent_ms: u64, packet: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(HEADER_LEN + packet.len() + TAG_LEN);
    datagram.extend_from_slice(MAGIC);
    datagram.extend_from_slice(&key_id.to_be_bytes());
    datagram.extend_from_slice(&sent_ms.to_be_bytes());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    datagram.extend_from_slice(&nonce);
    datagram.extend_from_slice(packet);
    let tag = tag(key, &datagram);
    datagram.extend_from_slice(&tag);
    datagram
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    Stale,
    Replayed,
    Malformed,
}

/// The packet in `datagram`, if it is authentic, fresh and new.
pub fn open<'a>(
    keys: &GossipKeys,
    seen: &mut Nonces,
    now_ms: u64,
    datagram: &'a [u8],
) -> Result<&'a [u8], Refusal> {
    if datagram.len() < HEADER_LEN + TAG_LEN || &datagram[..4] != MAGIC {
        return Err(Refusal::Unauthenticated);
    }
    let (signed, received_tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let key_id = u32::from_be_bytes(signed[4..8].try_into().expect("4 bytes"));
    let key = keys.for_id(key_id).ok_or(Refusal::Unauthenticated)?;
    if !bool::from(tag(key, signed).ct_eq(received_tag)) {
        return Err(Refusal::Unauthenticated);
    }
    let sent_ms = u64::from_be_bytes(signed[8..16].try_into().expect("8 bytes"));
    if now_ms.abs_diff(sent_ms) > FRESH_FOR.as_millis() as u64 {
        return Err(Refusal::Stale);
    }
    let nonce: [u8; 12] = signed[16..HEADER_LEN].try_into().expect("12 bytes");
    if !seen.insert(nonce, now_ms) {
        return Err(Refusal::Replayed);
    }
    Ok(&signed[HEADER_LEN..])
}

/// Nonces of the last [`FRESH_FOR`], oldest first.
#[derive(Default)]
pub struct Nonces {
    order: VecDeque<(u64, [u8; 12])>,
    set: HashSet<[u8; 12]>,
}

impl Nonces {
    /// `false` when `nonce` was seen within the window.
    pub fn insert(&mut self, nonce: [u8; 12], now_ms: u64) -> bool {
        let window = FRESH_FOR.as_millis() as u64 * 2;
        while let Some((at, old)) = self.order.front() {
            if now_ms.saturating_sub(*at) <= window && self.order.len() < NONCES_KEPT {
                break;
            }
            self.set.remove(old);
            self.order.pop_front();
        }
        if !self.set.insert(nonce) {
            return false;
        }
        self.order.push_back((now_ms, nonce));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: &[u8] = b"a foca packet";

    fn keys(id: u32, key: [u8; 32]) -> GossipKeys {
        let mut keys = GossipKeys::default();
        keys.set(Some((id, key)));
        keys
    }

    #[test]
    fn an_authentic_datagram_opens_once() {
        let keys = keys(1, [7; 32]);
        let mut seen = Nonces::default();
        let datagram = seal(1, &[7; 32], 1_000_000, PACKET);
        assert_eq!(open(&keys, &mut seen, 1_000_500, &datagram), Ok(PACKET));
        assert_eq!(
            open(&keys, &mut seen, 1_000_600, &datagram),
            Err(Refusal::Replayed)
        );
    }

    #[test]
    fn forged_tampered_stale_and_foreign_datagrams_are_refused() {
        let keys = keys(1, [7; 32]);
        let mut seen = Nonces::default();
        let forged = seal(1, &[8; 32], 1_000_000, PACKET);
        assert_eq!(
            open(&keys, &mut seen, 1_000_000, &forged),
            Err(Refusal::Unauthenticated)
        );
        let mut tampered = seal(1, &[7; 32], 1_000_000, PACKET);
        tampered[HEADER_LEN] ^= 1;
        assert_eq!(
            open(&keys, &mut seen, 1_000_000, &tampered),
            Err(Refusal::Unauthenticated)
        );
        let old = seal(1, &[7; 32], 1_000_000, PACKET);
        assert_eq!(
            open(&keys, &mut seen, 1_000_000 + 11_000, &old),
            Err(Refusal::Stale)
        );
        let unknown_key = seal(2, &[7; 32], 1_000_000, PACKET);
        assert_eq!(
            open(&keys, &mut seen, 1_000_000, &unknown_key),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            open(&keys, &mut seen, 1_000_000, b"plain chitchat bytes"),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn after_a_rotation_the_previous_key_is_still_accepted() {
        let mut keys = keys(1, [7; 32]);
        keys.set(Some((2, [9; 32])));
        let mut seen = Nonces::default();
        let old = seal(1, &[7; 32], 5_000, PACKET);
        let new = seal(2, &[9; 32], 5_000, PACKET);
        assert!(open(&keys, &mut seen, 5_000, &old).is_ok());
        assert!(open(&keys, &mut seen, 5_000, &new).is_ok());
        keys.set(Some((3, [1; 32])));
        let older = seal(1, &[7; 32], 5_000, PACKET);
        assert_eq!(
            open(&keys, &mut seen, 5_000, &older),
            Err(Refusal::Unauthenticated)
        );
    }
}
