//! Closed TCP tuples during TIME_WAIT, in 8 bytes each (and 12 in the order they expire): a
//! packet of the old connection arriving then is a straggler, counted, not a new connection.

use super::{fold, TCP_TIME_WAIT_NS};
use crate::flows::ConnKey;
use crate::topology::Proto;
use rustc_hash::FxHashMap as HashMap;
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

/// A closed connection's tuple during TIME_WAIT: the client's ISN and when the connection's
/// last packet was seen, in whole seconds since the tracker's first tombstone (31 bits, 68
/// years), with the top bit set when the ISN is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tombstone {
    isn: u32,
    closed_s: u32,
}

const ISN_KNOWN: u32 = 1 << 31;

impl Tombstone {
    fn isn(&self) -> Option<u32> {
        (self.closed_s & ISN_KNOWN != 0).then_some(self.isn)
    }
    fn second(&self) -> u32 {
        self.closed_s & !ISN_KNOWN
    }
}

#[derive(Default)]
pub(super) struct Tombstones {
    /// By [`tuple_hash`].
    by_tuple: HashMap<u64, Tombstone>,
    /// (second, tuple hash as two halves): in the order they came.
    order: VecDeque<(u32, [u32; 2])>,
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
        if key.proto != Proto::TCP || self.by_tuple.is_empty() {
            return false;
        }
        let h = tuple_hash(key);
        let Some(t) = self.by_tuple.get(&h) else {
            return false;
        };
        match new_isn {
            // A new SYN: the tuple is reused.
            Some(isn) if t.isn() != Some(isn) => {
                self.by_tuple.remove(&h);
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
        let h = tuple_hash(key);
        let second = self.second_of(last_ts);
        let t = Tombstone {
            isn: isn.unwrap_or(0),
            closed_s: second | if isn.is_some() { ISN_KNOWN } else { 0 },
        };
        self.by_tuple.insert(h, t);
        self.order.push_back((second, [(h >> 32) as u32, h as u32]));
    }

    /// Whole seconds since the first tombstone (0 before it, or for a time before it).
    fn second_of(&mut self, ts: i64) -> u32 {
        let base = *self.base_ns.get_or_insert(ts);
        (ts.saturating_sub(base).max(0) / 1_000_000_000).min(i64::from(!ISN_KNOWN)) as u32
    }

    /// When the oldest tombstone's TIME_WAIT is over.
    pub(super) fn due_ns(&self) -> Option<i64> {
        let &(second, _) = self.order.front()?;
        let wait_s = TCP_TIME_WAIT_NS / 1_000_000_000;
        let base = self.base_ns?;
        Some(base.saturating_add((i64::from(second) + wait_s + 1) * 1_000_000_000))
    }

    /// Forgets the tombstones whose TIME_WAIT is over at `now`, in the order they came; a
    /// tuple closed again since has a newer one, which stays.
    pub(super) fn expire(&mut self, now: i64) {
        let now_s = self.second_of(now);
        let wait_s = (TCP_TIME_WAIT_NS / 1_000_000_000) as u32;
        while let Some(&(second, [hi, lo])) = self.order.front() {
            if now_s.saturating_sub(second) <= wait_s {
                break;
            }
            self.order.pop_front();
            let h = (u64::from(hi) << 32) | u64::from(lo);
            if self.by_tuple.get(&h).is_some_and(|t| t.second() == second) {
                self.by_tuple.remove(&h);
            }
        }
        if self.by_tuple.capacity() > 1024 && self.by_tuple.len() < self.by_tuple.capacity() / 4 {
            self.by_tuple.shrink_to_fit();
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
}
