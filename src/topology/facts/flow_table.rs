//! The groups of packets of one vantage point ([`FlowFact`]s), looked up for every IP frame.
//!
//! A frame is keyed by its group's fields packed into words straight from the decoded frame
//! ([`PackedFlow::of`]); the group's [`FlowFact`] is built only when the group is new. A few
//! recent groups sit in front of the hash table: the frames of the connections in flight go to
//! a handful of groups (client ports are folded away), and comparing twelve words costs a
//! fraction of hashing them.
//!
//! Its JSON (the full state, [`crate::full_state`]) is the list of groups, each `[fact,
//! count]`, in the order first seen; the index is rebuilt from the facts when read.

use super::{FlowCount, FlowFact};
use crate::decode::packet::{IpHeader, IpPacket, Link, Mac, Transport, TunnelKind};
use crate::topology::view::{IpView, Outer};
use crate::topology::{FrameRef, MacAddr};
use rustc_hash::FxHashMap as HashMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Groups a debug build compares a new group with, one by one (see [`FlowTable::look_up`]).
const DEBUG_CHECKED_GROUPS: usize = 4096;

/// Slots of [`FlowTable::recent`] (a power of two).
const RECENT_GROUPS: usize = 256;

/// A group's fields as words, equal exactly when the [`FlowFact`]s are: compared and hashed in
/// a few instructions where the fields' own comparison (enums in options) took a few hundred
/// per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PackedFlow([u64; 12]);

impl Hash for PackedFlow {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for w in self.0 {
            h.write_u64(w);
        }
    }
}

/// An address as two words and whether it is IPv6.
fn ip_words(a: IpAddr) -> (u64, u64, u64) {
    match a {
        IpAddr::V4(a) => (u64::from(u32::from(a)), 0, 0),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b as u64, (b >> 64) as u64, 1)
        }
    }
}

impl PackedFlow {
    /// The key of the group a frame's packet belongs to (the fields of [`FlowFact::of`]).
    #[inline]
    pub(super) fn of(link: &Link, v: &IpView, server_port: u16, to_server: bool) -> PackedFlow {
        let mac = |m: Option<Mac>| m.map_or(0, |m| MacAddr(m).as_u64() | 1 << 48);
        let (s0, s1, s6) = ip_words(v.ip.src);
        let (d0, d1, d6) = ip_words(v.ip.dst);
        let (t0, t1, t2, t3, tunnel) = match v.outer {
            Some(o) => {
                let (a0, a1, a6) = ip_words(o.ip.src);
                let (b0, b1, b6) = ip_words(o.ip.dst);
                let bits = 1 | a6 << 1 | b6 << 2 | u64::from(o.ip.protocol) << 8;
                (a0, a1, b0, b1, bits)
            }
            None => (0, 0, 0, 0, 0),
        };
        let sll = link.sll_packet_type.map_or(0, |t| u64::from(t) | 1 << 16);
        let misc = u64::from(server_port)
            | u64::from(v.ip.protocol) << 16
            | u64::from(to_server) << 24
            | s6 << 25
            | d6 << 26
            | sll << 32;
        PackedFlow([
            s0,
            s1,
            d0,
            d1,
            mac(link.src_mac),
            mac(link.dst_mac),
            misc,
            tunnel,
            t0,
            t1,
            t2,
            t3,
        ])
    }

    /// The key of a group read back from JSON: [`PackedFlow::of`] of a frame with the group's
    /// fields (what `of` reads of them), so that one layout serves both.
    fn of_fact(f: &FlowFact) -> PackedFlow {
        let header = |src, dst, protocol| IpHeader {
            src,
            dst,
            protocol,
            ..IpPacket::BLANK.ip
        };
        let inner = header(f.src, f.dst, f.proto.0);
        let outer = f
            .tunnel
            .map(|t| header(t.outer_src, t.outer_dst, t.outer_proto));
        let link = Link {
            src_mac: f.src_mac.map(|m| m.0),
            dst_mac: f.dst_mac.map(|m| m.0),
            sll_packet_type: f.sll_packet_type,
            ..Link::default()
        };
        let view = IpView {
            outer: outer.as_ref().map(|ip| Outer {
                ip,
                kind: TunnelKind::IpIp,
            }),
            ip: &inner,
            transport: &Transport::Fragment,
        };
        PackedFlow::of(&link, &view, f.server_port, f.to_server)
    }

    /// No frame's key: the misc word of a real one leaves its top 15 bits clear.
    const NONE: PackedFlow = PackedFlow([u64::MAX; 12]);

    /// The slot of [`FlowTable::recent`]: the words that tell groups apart, multiplied so that
    /// the top bits depend on all of them.
    fn recent_slot(&self) -> usize {
        let w = &self.0;
        let x = w[0] ^ w[2].rotate_left(32) ^ w[6].rotate_left(13) ^ w[8] ^ w[10].rotate_left(32);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - RECENT_GROUPS.trailing_zeros())) as usize
    }
}

/// The groups of packets of one vantage point, in the order first seen.
#[derive(Debug, Clone, Default)]
pub struct FlowTable {
    index: HashMap<PackedFlow, u32>,
    keys: Vec<FlowFact>,
    counts: Vec<FlowCount>,
    /// Recently seen keys and their groups, by [`PackedFlow::recent_slot`] (allocated with the
    /// first group).
    recent: Vec<(PackedFlow, u32)>,
}

impl FlowTable {
    /// Counts one packet of the group `key`; `fact` and `first` describe the group when it is
    /// new. Inlined: a hit in [`FlowTable::recent`] is a few instructions, where a call and the
    /// key's copy into it were as many again.
    #[inline]
    pub(super) fn add(
        &mut self,
        key: &PackedFlow,
        syn: bool,
        fact: impl FnOnce() -> FlowFact,
        first: impl FnOnce() -> FrameRef,
    ) {
        let slot = key.recent_slot();
        let i = match self.recent.get(slot) {
            Some((k, i)) if k == key => {
                let i = *i;
                if cfg!(debug_assertions) {
                    self.check_same_group(i, fact());
                }
                i
            }
            _ => self.look_up(key, slot, fact, first),
        };
        let c = &mut self.counts[i as usize];
        c.packets += 1;
        c.syns += u64::from(syn);
    }

    /// [`FlowTable::add`] past the recent groups: the hash table, and a new group.
    #[inline(never)]
    fn look_up(
        &mut self,
        key: &PackedFlow,
        slot: usize,
        fact: impl FnOnce() -> FlowFact,
        first: impl FnOnce() -> FrameRef,
    ) -> u32 {
        if self.recent.is_empty() {
            self.recent = vec![(PackedFlow::NONE, 0); RECENT_GROUPS];
        }
        let next = self.keys.len() as u32;
        let i = *self.index.entry(*key).or_insert(next);
        if i == next {
            let fact = fact();
            // The packed key is written apart from the FlowFact it stands for: in debug builds
            // (the tests), check that it tells groups apart exactly as the facts do.
            debug_assert!(
                self.keys.len() > DEBUG_CHECKED_GROUPS || !self.keys.contains(&fact),
                "two packed keys for one group: {fact:?}"
            );
            self.keys.push(fact);
            self.counts.push(FlowCount {
                packets: 0,
                syns: 0,
                first: first(),
            });
        } else if cfg!(debug_assertions) {
            self.check_same_group(i, fact());
        }
        self.recent[slot] = (*key, i);
        i
    }

    /// Debug builds: a frame whose packed key found group `i` is of that group.
    fn check_same_group(&self, i: u32, fact: FlowFact) {
        assert_eq!(self.keys[i as usize], fact, "one packed key for two groups");
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FlowFact, &FlowCount)> {
        self.keys.iter().zip(&self.counts)
    }

    pub fn keys(&self) -> impl Iterator<Item = &FlowFact> {
        self.keys.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Equal groups, counts and index; the recent groups are a cache of the index and differ
/// with the order of lookups, not with what the table holds.
impl PartialEq for FlowTable {
    fn eq(&self, other: &FlowTable) -> bool {
        self.keys == other.keys && self.counts == other.counts && self.index == other.index
    }
}

impl Serialize for FlowTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for FlowTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FlowTable, D::Error> {
        let groups: Vec<(FlowFact, FlowCount)> = Vec::deserialize(d)?;
        let mut table = FlowTable::default();
        for (fact, count) in groups {
            let i = table.keys.len() as u32;
            if table.index.insert(PackedFlow::of_fact(&fact), i).is_some() {
                return Err(D::Error::custom(format!(
                    "a flow group given twice: {fact:?}"
                )));
            }
            table.keys.push(fact);
            table.counts.push(count);
        }
        Ok(table)
    }
}

impl<'a> IntoIterator for &'a FlowTable {
    type Item = (&'a FlowFact, &'a FlowCount);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, FlowFact>, std::slice::Iter<'a, FlowCount>>;
    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter().zip(&self.counts)
    }
}
