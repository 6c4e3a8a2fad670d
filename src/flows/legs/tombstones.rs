//! Closed TCP tuples during TIME_WAIT, in 12 bytes each and a 4-byte index entry: a packet of
//! the old connection arriving then is a straggler, counted, not a new connection.

use super::{fold, TCP_TIME_WAIT_NS};
use crate::flows::ConnKey;
use crate::topology::Proto;
use hashbrown::HashTable;
use std::collections::VecDeque;
use std::net::IpAddr;

/// The identity of a closed connection's tuple, in 8 bytes: tombstones are many (every
/// connection closed in the last minute) and need no more than to be recognised. Fixed
/// constants, so that reports are the same in every run; folded multiplies, a handful per
/// closed connection, where SipHash took a few hundred instructions.
fn tuple_hash(k: &ConnKey) -> u64 {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(a) => (u128::from(a.to_bits()), 1),
        IpAddr::V6(a) => (a.to_bits(), 0),
    };
    let ((client, client_v4), (vip, vip_v4)) = (bits(k.client.ip()), bits(k.vip.ip()));
    let rest = u64::from(k.client.port()) << 32
        | u64::from(k.vip.port()) << 16
        | u64::from(k.proto.0) << 8
        | client_v4 << 1
        | vip_v4;
    let h = fold(
        (client >> 64) as u64 ^ 0x243f_6a88_85a3_08d3,
        client as u64 ^ 0x1319_8a2e_0370_7344,
    ) ^ fold(
        (vip >> 64) as u64 ^ 0xa409_3822_299f_31d0,
        vip as u64 ^ 0x082e_fa98_ec4e_6c89,
    );
    fold(h ^ 0x4528_21e6_38d0_1377, rest ^ 0xbe54_66cf_34e9_0c6c)
}

/// A tombstone: its tuple's hash (63 bits; the top bit says whether the client's ISN is
/// known) and that ISN, in 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    hash: [u32; 2],
    isn: u32,
}

const ISN_KNOWN: u64 = 1 << 63;

impl Entry {
    fn new(tuple: u64, isn: Option<u32>) -> Entry {
        let word = tuple | if isn.is_some() { ISN_KNOWN } else { 0 };
        Entry {
            hash: [word as u32, (word >> 32) as u32],
            isn: isn.unwrap_or(0),
        }
    }
    fn word(&self) -> u64 {
        u64::from(self.hash[0]) | u64::from(self.hash[1]) << 32
    }
    /// The tuple's hash, what the index is keyed by.
    fn tuple(&self) -> u64 {
        self.word() & !ISN_KNOWN
    }
    fn isn(&self) -> Option<u32> {
        (self.word() & ISN_KNOWN != 0).then_some(self.isn)
    }
}

/// The tuple hash of `key` as the index keys it.
fn tuple_of(key: &ConnKey) -> u64 {
    tuple_hash(key) & !ISN_KNOWN
}

/// The tombstones of one vantage point: a ring in the order they were made (their TIME_WAIT
/// ends in that order), the whole seconds they were made in alongside, and an index of 4-byte
/// positions into the ring, one per tuple, hashed by the entry it points at. About 18 bytes a
/// tombstone with the ring's and the index's room, where a map of tuples beside a queue of
/// expiries took ~50: they are every TCP connection closed in the last minute, three times
/// over (client, director, real server).
#[derive(Default)]
pub(super) struct Tombstones {
    ring: VecDeque<Entry>,
    /// Sequence number of the ring's front (wrapping).
    first: u32,
    /// The ring's entries by the second they were made in: (second since `base_ns`, entries).
    seconds: VecDeque<(u32, u32)>,
    /// The live tombstone of each tuple: the sequence number of its entry.
    index: HashTable<u32>,
    /// Where the seconds count from (this capture's clock).
    base_ns: Option<i64>,
    late_packets: u64,
}

impl Tombstones {
    /// Packets that came during TIME_WAIT ([`Tombstones::straggler`]).
    pub(super) fn late_packets(&self) -> u64 {
        self.late_packets
    }

    /// A packet for a tuple with no state, that does not open a new connection because the
    /// tuple is in TIME_WAIT: a straggler, counted. A new SYN (another ISN) ends TIME_WAIT.
    pub(super) fn straggler(&mut self, key: &ConnKey, new_isn: Option<u32>) -> bool {
        if key.proto != Proto::TCP || self.index.is_empty() {
            return false;
        }
        let h = tuple_of(key);
        let (ring, first) = (&self.ring, self.first);
        let at = |seq: u32| &ring[seq.wrapping_sub(first) as usize];
        let Ok(found) = self.index.find_entry(h, |&seq| at(seq).tuple() == h) else {
            return false;
        };
        let isn = at(*found.get()).isn();
        match new_isn {
            // A new SYN: the tuple is reused.
            Some(new) if isn != Some(new) => {
                found.remove();
                false
            }
            _ => {
                self.late_packets += 1;
                true
            }
        }
    }

    /// A TCP connection closed, its last packet at `last_ts`.
    pub(super) fn bury(&mut self, key: &ConnKey, last_ts: i64, isn: Option<u32>) {
        let h = tuple_of(key);
        let second = self.second_of(last_ts);
        let seq = self.first.wrapping_add(self.ring.len() as u32);
        self.ring.push_back(Entry::new(h, isn));
        match self.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.seconds.push_back((second, 1)),
        }
        let (ring, first) = (&self.ring, self.first);
        let at = |seq: u32| &ring[seq.wrapping_sub(first) as usize];
        match self.index.find_mut(h, |&s| at(s).tuple() == h) {
            // The tuple closed again: its newer tombstone is the live one.
            Some(live) => *live = seq,
            None => {
                self.index.insert_unique(h, seq, |&s| at(s).tuple());
            }
        }
    }

    /// Whole seconds since the first tombstone (0 before it, or for a time before it).
    fn second_of(&mut self, ts: i64) -> u32 {
        let base = *self.base_ns.get_or_insert(ts);
        (ts.saturating_sub(base).max(0) / 1_000_000_000).min(i64::from(u32::MAX >> 1)) as u32
    }

    /// When the oldest tombstone's TIME_WAIT is over.
    pub(super) fn due_ns(&self) -> Option<i64> {
        let &(second, _) = self.seconds.front()?;
        let wait_s = TCP_TIME_WAIT_NS / 1_000_000_000;
        let base = self.base_ns?;
        Some(base.saturating_add((i64::from(second) + wait_s + 1) * 1_000_000_000))
    }

    /// Forgets the tombstones whose TIME_WAIT is over at `now`, in the order they came; a
    /// tuple closed again since has a newer one, which stays.
    pub(super) fn expire(&mut self, now: i64) {
        let now_s = self.second_of(now);
        let wait_s = (TCP_TIME_WAIT_NS / 1_000_000_000) as u32;
        while let Some(&(second, n)) = self.seconds.front() {
            if now_s.saturating_sub(second) <= wait_s {
                break;
            }
            self.seconds.pop_front();
            for _ in 0..n {
                let seq = self.first;
                let e = self.ring.pop_front().expect("a second counts its entries");
                self.first = self.first.wrapping_add(1);
                if let Ok(live) = self.index.find_entry(e.tuple(), |&s| s == seq) {
                    live.remove();
                }
            }
        }
        if self.index.capacity() > 1024 && self.index.len() < self.index.capacity() / 4 {
            let (ring, first) = (&self.ring, self.first);
            self.index
                .shrink_to_fit(|&s| ring[s.wrapping_sub(first) as usize].tuple());
        }
        if self.ring.capacity() > 1024 && self.ring.len() < self.ring.capacity() / 4 {
            self.ring.shrink_to_fit();
            self.seconds.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, vip: &str) -> ConnKey {
        ConnKey {
            proto: Proto::TCP,
            client: client.parse().expect("client"),
            vip: vip.parse().expect("vip"),
        }
    }

    #[test]
    fn tuples_that_differ_anywhere_hash_apart() {
        let keys = [
            key("10.0.0.1:1000", "10.0.0.9:80"),
            key("10.0.0.1:1001", "10.0.0.9:80"),
            key("10.0.0.1:1000", "10.0.0.9:81"),
            key("10.0.0.2:1000", "10.0.0.9:80"),
            key("10.0.0.9:1000", "10.0.0.1:80"),
            key("[::ffff:10.0.0.1]:1000", "[::ffff:10.0.0.9]:80"),
            ConnKey {
                proto: Proto::UDP,
                ..key("10.0.0.1:1000", "10.0.0.9:80")
            },
        ];
        let mut hashes: Vec<u64> = keys.iter().map(tuple_hash).collect();
        assert_eq!(tuple_hash(&keys[0]), tuple_hash(&keys[0].clone()));
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), keys.len());
    }

    #[test]
    fn a_straggler_is_counted_until_time_wait_is_over_or_a_new_syn() {
        let k = key("10.0.0.1:1000", "10.0.0.9:80");
        let mut t = Tombstones::default();
        assert!(!t.straggler(&k, None));
        t.bury(&k, 5_000_000_000, Some(7));
        assert!(t.straggler(&k, None));
        assert!(t.straggler(&k, Some(7)), "the old SYN again");
        assert_eq!(t.late_packets(), 2);
        t.expire(5_000_000_000 + TCP_TIME_WAIT_NS);
        assert!(t.straggler(&k, None), "TIME_WAIT not over yet");
        t.expire(5_000_000_000 + TCP_TIME_WAIT_NS + 2_000_000_000);
        assert!(!t.straggler(&k, None));
        t.bury(&k, 70_000_000_000, Some(7));
        assert!(!t.straggler(&k, Some(8)), "a new ISN reuses the tuple");
        assert!(!t.straggler(&k, None));
    }

    #[test]
    fn a_tuple_closed_again_keeps_its_newer_tombstone() {
        let k = key("10.0.0.1:1000", "10.0.0.9:80");
        let other = key("10.0.0.2:1000", "10.0.0.9:80");
        let mut t = Tombstones::default();
        t.bury(&k, 5_000_000_000, Some(7));
        t.bury(&other, 6_000_000_000, None);
        t.bury(&k, 30_000_000_000, Some(9));
        // The first tombstone's TIME_WAIT is over, the second's not.
        t.expire(30_000_000_000 + TCP_TIME_WAIT_NS - 20_000_000_000);
        assert!(!t.straggler(&other, None), "other's TIME_WAIT is over");
        assert!(t.straggler(&k, Some(9)), "the newer tombstone, its own ISN");
        assert!(!t.straggler(&k, Some(7)), "the older ISN is a new SYN now");
        assert!(!t.straggler(&k, None), "a new SYN ended TIME_WAIT");
        assert_eq!(t.late_packets(), 1);
        // Its entry leaves the ring when its time comes, without touching anything else.
        t.bury(&other, 40_000_000_000, Some(1));
        t.expire(31_000_000_000 + TCP_TIME_WAIT_NS + 1_000_000_000);
        assert!(t.straggler(&other, None));
        assert_eq!(t.ring.len(), 1);
    }

    #[test]
    fn the_ring_and_index_shrink_after_a_burst() {
        let mut t = Tombstones::default();
        for port in 0..20_000u16 {
            t.bury(
                &key(&format!("10.0.0.1:{port}"), "10.0.0.9:80"),
                1_000_000_000,
                None,
            );
        }
        let (ring, index) = (t.ring.capacity(), t.index.capacity());
        t.bury(&key("10.0.0.2:1", "10.0.0.9:80"), 100_000_000_000, None);
        t.expire(100_000_000_000);
        assert_eq!(t.index.len(), 1);
        assert!(t.ring.capacity() < ring / 4 && t.index.capacity() < index / 4);
        assert!(t.straggler(&key("10.0.0.2:1", "10.0.0.9:80"), None));
    }
}
