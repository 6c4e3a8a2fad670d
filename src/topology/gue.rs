//! GUE tunnels nobody named, found in the first pass and confirmed by the clients' packets.
//!
//! GUE has no port of its own (`ipvsadm --tun-port` picks one), and the shape of a GUE header is
//! no proof: a DNS query whose ID starts with 6 and a SunRPC call whose XID does both pass
//! [`crate::decode::looks_like_gue`]. So a UDP port carries GUE when the user says so
//! (`--gue-port`, the rules' `--tun-port`), or when the captures show a director doing what
//! IPVS does: sending a client's packet, whole, inside GUE-shaped UDP from itself to another
//! host. The decoder notes what a GUE-shaped datagram would carry
//! (`Packet::gue_shaped`, with `DecodeOptions::gue_probe`); [`GueEvidence`] keeps per vantage
//! point those datagrams and the 5-tuples of the plain TCP/UDP packets seen; [`judge`] looks
//! across all captures for a datagram that carries the 5-tuple of a plain packet, and confirms
//! its (source, port) pair, which the second read then decodes as GUE.
//!
//! Memory is bounded, not by packets or connections: both sides keep a sample of 5-tuples
//! chosen by the tuple's hash (kept when its hash has `level` low zero bits; a full sample
//! takes one bit more and drops the rest), the same rule at every vantage point, so that a
//! tuple kept where the director wrapped it is kept wherever the client's packet was seen (the
//! clock sample of `flows::clock` works the same way). Up to [`MAX_PLAIN_TUPLES`] connections
//! per vantage point the comparison is exact.

use super::{FrameRef, VantageId};
use crate::decode::packet::{DecodedFrame, FiveTuple, Net};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Plain 5-tuples kept per vantage point before the sample thins.
pub const MAX_PLAIN_TUPLES: usize = 1 << 14;
/// Carried 5-tuples kept per GUE-shaped flow before its sample thins.
pub const MAX_CARRIED_TUPLES: usize = 256;
/// GUE-shaped flows (source, destination, port) kept per vantage point; more are counted only.
pub const MAX_SHAPED_FLOWS: usize = 1024;

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An address as two words (an IPv4 address in the low one, tagged so that it differs from the
/// IPv6 address with the same bits).
fn words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(a) => (u64::from(u32::from(a)) | 1 << 32, 0),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b as u64, (b >> 64) as u64)
        }
    }
}

/// A 5-tuple's hash, the same on every run and machine, with uniform low bits (it decides the
/// sample). Computed for every plain packet of pass 1: a few multiplies, no hasher state.
fn tuple_hash(t: &FiveTuple) -> u64 {
    let (s0, s1) = words(t.src);
    let (d0, d1) = words(t.dst);
    let ports = u64::from(t.src_port) << 24 | u64::from(t.dst_port) << 8 | u64::from(t.protocol);
    mix(mix(mix(s0 ^ s1.rotate_left(29)) ^ d0 ^ d1.rotate_left(29)) ^ ports)
}

fn sampled(hash: u64, level: u32) -> bool {
    level == 0 || hash.trailing_zeros() >= level
}

/// Tuples kept by their hash, at most `cap` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
struct Sample<V> {
    level: u32,
    #[serde(with = "crate::full_state::pairs")]
    kept: FxHashMap<u64, V>,
}

impl<V> Default for Sample<V> {
    fn default() -> Self {
        Sample {
            level: 0,
            kept: FxHashMap::default(),
        }
    }
}

impl<V> Sample<V> {
    fn insert(&mut self, hash: u64, value: impl FnOnce() -> V, cap: usize) {
        if !sampled(hash, self.level) {
            return;
        }
        self.kept.entry(hash).or_insert_with(value);
        while self.kept.len() > cap {
            self.level += 1;
            let level = self.level;
            self.kept.retain(|h, _| sampled(*h, level));
        }
    }

    /// The entries every sample at `level` would hold.
    fn at(&self, level: u32) -> impl Iterator<Item = (&u64, &V)> {
        self.kept.iter().filter(move |(h, _)| sampled(**h, level))
    }
}

/// GUE-shaped datagrams from one host to another on one port, seen at one vantage point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shaped {
    datagrams: u64,
    /// Of them, those whose inner packet is no TCP or UDP packet (or none at all).
    no_ports: u64,
    first: FrameRef,
    /// The packets they would carry.
    carried: Sample<FiveTuple>,
}

/// What one vantage point shows about GUE that nobody named. Its JSON is the full state's
/// ([`crate::full_state`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GueEvidence {
    /// Whether plain packets are sampled (see [`GueEvidence::shaped_only`]).
    with_plain: bool,
    /// By (source, destination, UDP destination port).
    #[serde(with = "crate::full_state::pairs")]
    shaped: HashMap<(IpAddr, IpAddr, u16), Shaped>,
    /// GUE-shaped datagrams of flows past [`MAX_SHAPED_FLOWS`].
    shaped_not_kept: u64,
    /// Plain (not tunnelled) TCP and UDP packets.
    plain: Sample<()>,
    /// The hashes of recent plain tuples, by their top bits: the packets of the few flows in
    /// flight skip the sample's table.
    recent: Vec<u64>,
}

/// Slots of [`GueEvidence::recent`] (a power of two).
const RECENT: usize = 64;

impl Default for GueEvidence {
    fn default() -> Self {
        GueEvidence {
            with_plain: true,
            shaped: HashMap::new(),
            shaped_not_kept: 0,
            plain: Sample::default(),
            recent: Vec::new(),
        }
    }
}

impl GueEvidence {
    /// Evidence that keeps the GUE-shaped datagrams only, not the plain packets' sample, which
    /// costs a little on every packet: for a read that looks first whether there is anything
    /// to compare ([`GueEvidence::carries_packets`]).
    pub fn shaped_only() -> GueEvidence {
        GueEvidence {
            with_plain: false,
            ..GueEvidence::default()
        }
    }

    /// Whether a GUE-shaped datagram seen here would carry a TCP or UDP packet: only then can
    /// the plain packets confirm anything.
    pub fn carries_packets(&self) -> bool {
        self.shaped.values().any(|s| !s.carried.kept.is_empty())
    }

    /// Inlined into the per-frame gather, where the call alone was a fifth of its cost: a plain
    /// packet of a flow seen a moment ago is a hash and a compare.
    #[inline]
    pub fn push(&mut self, f: &DecodedFrame) {
        if f.packet.gue_shaped.is_some() {
            self.push_shaped(f);
            return;
        }
        if !self.with_plain {
            return;
        }
        let Net::Ip(p) = &f.packet.net else {
            return;
        };
        let Some(plain) = p.five_tuple() else {
            return;
        };
        let hash = tuple_hash(&plain);
        // The top bits pick the slot: the low ones decide the sample.
        let slot = (hash >> (64 - RECENT.trailing_zeros())) as usize;
        if self.recent.get(slot) != Some(&hash) {
            self.insert_plain(hash, slot);
        }
    }

    /// [`GueEvidence::push`] of a plain tuple not among the recent ones.
    #[inline(never)]
    fn insert_plain(&mut self, hash: u64, slot: usize) {
        if self.recent.is_empty() {
            self.recent = vec![0; RECENT];
        }
        self.recent[slot] = hash;
        self.plain.insert(hash, || (), MAX_PLAIN_TUPLES);
    }

    /// [`GueEvidence::push`] of a GUE-shaped datagram.
    #[inline(never)]
    fn push_shaped(&mut self, f: &DecodedFrame) {
        let Net::Ip(p) = &f.packet.net else {
            return;
        };
        let (Some(shape), Some(outer)) = (f.packet.gue_shaped, p.five_tuple()) else {
            return;
        };
        let key = (outer.src, outer.dst, outer.dst_port);
        if !self.shaped.contains_key(&key) && self.shaped.len() >= MAX_SHAPED_FLOWS {
            self.shaped_not_kept += 1;
            return;
        }
        let s = self.shaped.entry(key).or_insert_with(|| Shaped {
            datagrams: 0,
            no_ports: 0,
            first: FrameRef::of(f),
            carried: Sample::default(),
        });
        s.datagrams += 1;
        match shape.carried {
            Some(t) => s.carried.insert(tuple_hash(&t), || t, MAX_CARRIED_TUPLES),
            None => s.no_ports += 1,
        }
    }

    /// Whether any GUE-shaped datagram was seen here.
    pub fn is_empty(&self) -> bool {
        self.shaped.is_empty() && self.shaped_not_kept == 0
    }
}

/// GUE-shaped UDP from one source to one port, over all captures, and whether it is a tunnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GueTunnel {
    /// The datagrams' source: the director, when confirmed.
    pub source: IpAddr,
    /// Their UDP destination port: the tunnel port, when confirmed.
    pub port: u16,
    /// Their destinations: the real servers, when confirmed.
    pub destinations: Vec<IpAddr>,
    /// GUE-shaped datagrams seen, over all captures (a datagram seen in two counts twice).
    pub datagrams: u64,
    /// The first one, in the first capture that saw it.
    pub first: FrameRef,
    /// Where they were seen.
    pub vantages: Vec<VantageId>,
    /// Some of them would carry a TCP or UDP packet (only those can be a director's tunnel).
    pub carries_packets: bool,
    /// A client's packet seen plain in the captures travels inside: decoded as a tunnel.
    pub confirmed: bool,
    /// Why, in words.
    pub reason: String,
}

impl GueTunnel {
    /// What this is, in a few words, for a report line.
    pub fn describe(&self) -> String {
        let to = self
            .destinations
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let n = self.datagrams;
        let s = if n == 1 { "" } else { "s" };
        if self.confirmed {
            format!(
                "GUE on UDP port {} from {} to {to} ({n} datagram{s}), confirmed: {}",
                self.port, self.source, self.reason
            )
        } else {
            format!(
                "GUE-shaped UDP on port {} from {} to {to} ({n} datagram{s}), not confirmed: {}",
                self.port, self.source, self.reason
            )
        }
    }
}

/// Judges every GUE-shaped flow of the captures (the evidence of every vantage point, with its
/// id): confirmed where it carries a plain packet's 5-tuple. Sorted by source and port.
pub fn judge(evidence: &[(VantageId, &GueEvidence)]) -> Vec<GueTunnel> {
    if evidence.iter().all(|(_, e)| e.is_empty()) {
        return Vec::new();
    }
    // Only tuples that every sample would have kept can be compared.
    let level = evidence
        .iter()
        .flat_map(|(_, e)| {
            std::iter::once(e.plain.level).chain(e.shaped.values().map(|s| s.carried.level))
        })
        .max()
        .unwrap_or(0);
    let plain: FxHashSet<u64> = evidence
        .iter()
        .flat_map(|(_, e)| e.plain.at(level).map(|(h, _)| *h))
        .collect();

    struct Group {
        destinations: BTreeSet<IpAddr>,
        datagrams: u64,
        no_ports: u64,
        first: FrameRef,
        vantages: BTreeSet<VantageId>,
        compared: FxHashSet<u64>,
        matched: Option<FiveTuple>,
    }
    let mut groups: BTreeMap<(IpAddr, u16), Group> = BTreeMap::new();
    for (vantage, e) in evidence {
        for (&(src, dst, port), s) in &e.shaped {
            let g = groups.entry((src, port)).or_insert_with(|| Group {
                destinations: BTreeSet::new(),
                datagrams: 0,
                no_ports: 0,
                first: s.first,
                vantages: BTreeSet::new(),
                compared: FxHashSet::default(),
                matched: None,
            });
            g.destinations.insert(dst);
            g.datagrams += s.datagrams;
            g.no_ports += s.no_ports;
            if (s.first.capture, s.first.frame) < (g.first.capture, g.first.frame) {
                g.first = s.first;
            }
            g.vantages.insert(*vantage);
            for (h, t) in s.carried.at(level) {
                g.compared.insert(*h);
                // The datagram's own source wrapping itself proves nothing. The smallest
                // match is named, so that the reason is the same on every run.
                if plain.contains(h) && t.src != src && g.matched.is_none_or(|m| *t < m) {
                    g.matched = Some(*t);
                }
            }
        }
    }
    let not_kept: u64 = evidence.iter().map(|(_, e)| e.shaped_not_kept).sum();
    groups
        .into_iter()
        .map(|((source, port), g)| {
            let reason = match g.matched {
                Some(t) => format!(
                    "it carries packets seen plain in the captures, such as {t}: {source} wraps \
                     the clients' packets as a director does; decoded as a tunnel"
                ),
                None => {
                    let mut r = if g.no_ports == g.datagrams {
                        "what it would carry is no TCP or UDP packet a client could have sent; \
                         left plain UDP"
                            .to_string()
                    } else {
                        format!(
                            "no capture shows a packet it would carry ({} compared) arriving \
                             plain, as a client's packet reaches the director; left plain UDP \
                             (if it is a tunnel, give the director's capture, --gue-port {port} \
                             or --rules)",
                            g.compared.len()
                        )
                    };
                    if not_kept > 0 {
                        r.push_str(&format!(
                            "; {not_kept} more GUE-shaped datagrams of other flows not compared"
                        ));
                    }
                    r
                }
            };
            GueTunnel {
                source,
                port,
                destinations: g.destinations.into_iter().collect(),
                datagrams: g.datagrams,
                first: g.first,
                vantages: g.vantages.into_iter().collect(),
                carries_packets: g.no_ports < g.datagrams,
                confirmed: g.matched.is_some(),
                reason,
            }
        })
        .collect()
}

/// What the topology's limits say of GUE-shaped UDP that could be a tunnel but was not
/// confirmed (a real server's capture without the director's or the client's): it was left
/// plain UDP, and how to say it is a tunnel.
pub fn limits(tunnels: &[GueTunnel]) -> Vec<String> {
    tunnels
        .iter()
        .filter(|t| t.carries_packets && !t.confirmed)
        .map(|t| t.describe())
        .collect()
}

/// The (source, port) pairs confirmed as GUE tunnels.
pub fn confirmed(tunnels: &[GueTunnel]) -> Vec<(IpAddr, u16)> {
    tunnels
        .iter()
        .filter(|t| t.confirmed)
        .map(|t| (t.source, t.port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::packet::{GueShape, IpHeader, IpPacket, Link, Packet, Transport, Udp};
    use std::net::Ipv4Addr;

    const CLIENT: [u8; 4] = [198, 51, 100, 7];
    const VIP: [u8; 4] = [192, 0, 2, 100];
    const DIRECTOR: [u8; 4] = [192, 0, 2, 1];
    const RS: [u8; 4] = [192, 0, 2, 11];

    fn ip(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn tuple(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FiveTuple {
        FiveTuple {
            src: ip(src),
            dst: ip(dst),
            protocol: 17,
            src_port: sport,
            dst_port: dport,
        }
    }

    /// A UDP frame with that 5-tuple, GUE-shaped when `carried` is given.
    fn frame(number: u64, t: FiveTuple, carried: Option<Option<FiveTuple>>) -> DecodedFrame {
        let header = IpHeader {
            src: t.src,
            dst: t.dst,
            protocol: 17,
            ttl: 64,
            id: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            total_len: 60,
            captured_len: 60,
        };
        DecodedFrame {
            capture: 0,
            interface: 0,
            number,
            ts_ns: number as i64,
            wire_len: 74,
            packet: Packet {
                link: Link::default(),
                net: Net::Ip(IpPacket {
                    ip: header,
                    transport: Transport::Udp(Udp {
                        src_port: t.src_port,
                        dst_port: t.dst_port,
                        payload_len: 32,
                        payload_hash: 0,
                    }),
                }),
                gue_shaped: carried.map(|carried| GueShape { carried }),
                control: None,
            },
        }
    }

    fn vantage(capture: u32) -> VantageId {
        VantageId {
            capture,
            interface: 0,
        }
    }

    #[test]
    fn a_client_packet_seen_elsewhere_confirms_the_pair() {
        let query = tuple(CLIENT, 40000, VIP, 53);
        let outer = tuple(DIRECTOR, 51000, RS, 6080);
        let mut client = GueEvidence::default();
        client.push(&frame(1, query, None));
        let mut rs = GueEvidence::default();
        rs.push(&frame(1, outer, Some(Some(query))));
        rs.push(&frame(2, outer, Some(Some(query))));

        let alone = judge(&[(vantage(1), &rs)]);
        assert_eq!(alone.len(), 1);
        assert!(!alone[0].confirmed);
        assert_eq!(alone[0].datagrams, 2);
        assert!(
            alone[0].reason.contains("--gue-port 6080"),
            "{}",
            alone[0].reason
        );
        assert!(confirmed(&alone).is_empty());

        let both = judge(&[(vantage(0), &client), (vantage(1), &rs)]);
        assert!(both[0].confirmed, "{}", both[0].reason);
        assert_eq!(confirmed(&both), [(ip(DIRECTOR), 6080)]);
        assert_eq!(both[0].destinations, [ip(RS)]);
        assert_eq!(both[0].vantages, [vantage(1)]);
        assert!(both[0].reason.contains("198.51.100.7:40000"));
    }

    #[test]
    fn the_shape_alone_confirms_nothing() {
        // A DNS query that looks like GUE carrying no TCP/UDP packet, and one whose "inner"
        // packet is the query itself (its own source): neither is a director's work.
        let query = tuple(CLIENT, 40000, VIP, 53);
        let mut e = GueEvidence::default();
        e.push(&frame(1, query, Some(None)));
        let own = tuple(CLIENT, 40001, VIP, 53);
        e.push(&frame(2, own, None));
        e.push(&frame(3, tuple(CLIENT, 40002, VIP, 53), Some(Some(own))));
        let judged = judge(&[(vantage(0), &e)]);
        assert_eq!(judged.len(), 1, "one source and port");
        assert!(!judged[0].confirmed);
        assert_eq!(judged[0].datagrams, 2);
        assert!(judge(&[]).is_empty());
    }

    #[test]
    fn samples_thin_consistently() {
        // The same tuples pushed in two orders, more than the sample holds: both keep the
        // same ones, so a tuple kept at one vantage point is kept at the other.
        let tuples: Vec<FiveTuple> = (0..3 * MAX_CARRIED_TUPLES as u16)
            .map(|p| tuple(CLIENT, 1000 + p, VIP, 53))
            .collect();
        let mut a: Sample<FiveTuple> = Sample::default();
        let mut b: Sample<FiveTuple> = Sample::default();
        for t in &tuples {
            a.insert(tuple_hash(t), || *t, MAX_CARRIED_TUPLES);
        }
        for t in tuples.iter().rev() {
            b.insert(tuple_hash(t), || *t, MAX_CARRIED_TUPLES);
        }
        assert!(a.level > 0);
        assert!(a.kept.len() <= MAX_CARRIED_TUPLES);
        assert_eq!(a.level, b.level);
        let mut ka: Vec<u64> = a.kept.keys().copied().collect();
        let mut kb: Vec<u64> = b.kept.keys().copied().collect();
        ka.sort_unstable();
        kb.sort_unstable();
        assert_eq!(ka, kb);
    }
}
