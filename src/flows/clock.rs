//! Clock offsets between captures, from packets seen in two of them.
//!
//! A packet seen at A and later on its path at B gives `t_B - t_A = off_B - off_A + delay`,
//! delay >= 0. Which capture is earlier on the path comes from the roles, never from the
//! timestamps: a request leaves the client, reaches the director, leaves it wrapped, reaches the
//! real server; a reply leaves the real server and reaches the client. With packets both ways
//! between two captures the offset is bracketed as NTP does (half the difference of the minimum
//! one-way times, uncertainty half their sum); with one direction only the fastest packet's
//! difference is taken, which still includes the smallest one-way delay (tens of microseconds on
//! one Ethernet segment), and its distance to the median difference is the uncertainty.
//! Captures not matched directly against the reference are reached through others, along the
//! pairs that give the smallest accumulated uncertainty. A packet seen at k vantage points gives
//! at most about 9k pairs ([`PAIRS_PER_SIGHTING`]), and the tree is grown with a heap, so a
//! merged file of thousands of interfaces or sections costs time linear in them.
//!
//! The packets compared are a sample ([`ClockSampler`]) taken in pass 1, before the topology is
//! known: at most [`MAX_CLOCK_SAMPLES`] per vantage point, chosen by the packet's identity so
//! that all captures keep the same ones.

use super::legs::fingerprint;
use super::Form;
use crate::decode::packet::DecodedFrame;
use crate::topology::view::IpView;
use crate::topology::{Role, Topology, VantageId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::IpAddr;

/// Packets kept per vantage point for the clock estimate, at most. The sample is thinned by
/// halves past this, so memory stays flat however long the capture is.
pub const MAX_CLOCK_SAMPLES: usize = 1 << 15;

/// One packet kept for the clock estimate: its identity, when it was seen here, and what is
/// needed to tell its form once the VIPs are known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// [`fingerprint`] without its two low bits, as [`super::Fingerprint::value`].
    pub value: u64,
    pub ts_ns: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub wrapped: bool,
}

/// A sample of one vantage point's TCP/UDP packets for matching against other captures, taken
/// while the topology is still unknown (pass 1).
///
/// The sample is chosen by the packet's identity, not by time or order: a packet is kept when
/// its mixed fingerprint has `level` low zero bits. Every capture applies the same rule, so the
/// packets sampled at one vantage point are sampled at every other one that saw them, and
/// thinning (one more bit) keeps a consistent subset. Memory is bounded by
/// [`MAX_CLOCK_SAMPLES`], not by packets or connections.
///
/// Its JSON is the full state's ([`crate::full_state`]): the level and the packets kept.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockSampler {
    level: u32,
    kept: Vec<Sighting>,
}

fn mix(value: u64) -> u64 {
    // splitmix64's finaliser: the fingerprint's low bits are not uniform enough on their own.
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn sampled(value: u64, level: u32) -> bool {
    level == 0 || mix(value).trailing_zeros() >= level
}

impl ClockSampler {
    pub fn push(&mut self, f: &DecodedFrame) {
        let Some(v) = IpView::of(&f.packet) else {
            return;
        };
        if !v.has_ports() {
            return;
        }
        let value = fingerprint(&v) >> 2;
        if !sampled(value, self.level) {
            return;
        }
        self.kept.push(Sighting {
            value,
            ts_ns: f.ts_ns,
            src: v.ip.src,
            dst: v.ip.dst,
            src_port: v.ports().0,
            wrapped: v.outer.is_some(),
        });
        while self.kept.len() > MAX_CLOCK_SAMPLES {
            self.level += 1;
            let level = self.level;
            self.kept.retain(|s| sampled(s.value, level));
        }
    }

    /// The sampling level (low zero bits a kept packet's mixed fingerprint has) and the packets
    /// kept: what the records of `extract` hold of the sample.
    pub fn parts(&self) -> (u32, &[Sighting]) {
        (self.level, &self.kept)
    }

    /// A sample as [`ClockSampler::parts`] gave it.
    pub fn from_parts(level: u32, kept: Vec<Sighting>) -> ClockSampler {
        ClockSampler { level, kept }
    }

    /// Packets kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// The form of a sampled packet, now that the VIPs are known; None for packets of no service.
fn form_of(s: &Sighting, topology: &Topology, service_ports: &HashSet<u16>) -> Option<Form> {
    if topology.is_vip(s.dst) {
        Some(if s.wrapped {
            Form::RequestWrapped
        } else {
            Form::Request
        })
    } else if topology.is_vip(s.src) {
        Some(Form::Reply)
    } else if topology.is_real_server(s.src) && service_ports.contains(&s.src_port) {
        Some(Form::ReplyOtherSource)
    } else {
        None
    }
}

/// Estimates every capture's offset against the reference from the packets sampled in pass 1.
pub fn estimate_from_samples(
    samplers: Vec<(VantageId, ClockSampler)>,
    topology: &Topology,
) -> Vec<ClockOffset> {
    let vantages: Vec<(VantageId, Role)> =
        topology.vantages.iter().map(|v| (v.id, v.role)).collect();
    let service_ports: HashSet<u16> = topology.services.iter().map(|s| s.port).collect();
    // The strictest rule any sampler had to take: only packets that every vantage point would
    // have kept can be compared.
    let level = samplers.iter().map(|(_, s)| s.level).max().unwrap_or(0);
    // Every sighting in one list, grouped by packet identity by a stable sort (so each
    // identity's sightings stay in capture order): where a map of lists made an allocation per
    // packet identity, tens of thousands on the main thread before the captures are streamed.
    let mut seen: Vec<(u64, VantageId, Form, i64)> = Vec::new();
    for (vantage, sampler) in samplers {
        let mut mine: Vec<(u64, Form, i64)> = sampler
            .kept
            .iter()
            .filter(|s| sampled(s.value, level))
            .filter_map(|s| Some((s.value, form_of(s, topology, &service_ports)?, s.ts_ns)))
            .collect();
        // A packet identity seen twice in one form here (a retransmission that repeats IP ID,
        // sequence numbers and payload) cannot say which copy another capture saw: dropped.
        mine.sort_unstable_by_key(|&(v, f, _)| (v, f));
        for run in mine.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if let [(value, form, ts)] = run {
                seen.push((*value, vantage, *form, *ts));
            }
        }
    }
    seen.sort_by_key(|s| s.0);
    let sightings: Vec<(VantageId, Form, i64)> =
        seen.iter().map(|&(_, v, f, ts)| (v, f, ts)).collect();
    let mut at = 0;
    let packets = seen.chunk_by(|a, b| a.0 == b.0).map(|run| {
        let packet = &sightings[at..at + run.len()];
        at += run.len();
        packet
    });
    estimate_from_sightings(packets, &vantages)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetMethod {
    /// This capture is the reference.
    Reference,
    /// Packets both ways against a neighbour: bracketed.
    TwoWay,
    /// Packets one way only: includes the one-way delay.
    OneWay,
    /// Packets whose order on the path is unknown (a capture of role `other`): assumed
    /// simultaneous.
    Unordered,
    /// No packet in common with any capture linked to the reference: offset unknown (0 used).
    Unmatched,
    /// Another hop of the same mirror capture ([`super::mirror`]): timed by the same clock.
    SameClock,
}

/// One capture's clock against the reference capture's.
#[derive(Debug, Clone, Serialize)]
pub struct ClockOffset {
    pub vantage: VantageId,
    pub reference: VantageId,
    /// Add this to the reference clock to get this capture's clock (this minus reference).
    pub offset_ns: i64,
    /// The true offset is within offset_ns +- uncertainty_ns (for `one_way`, plus the one-way
    /// delay, which one direction alone cannot separate).
    pub uncertainty_ns: i64,
    pub method: OffsetMethod,
    /// The capture it was measured against (the reference itself, or one on the way to it).
    pub via: Option<VantageId>,
    /// Packets matched against `via`.
    pub samples: u64,
    /// Median one-way delay to or from `via`, when packets went both ways.
    pub delay_ns: Option<i64>,
}

/// Position of a packet form seen at a role along the packet's path, when known.
fn position(role: Role, form: Form) -> Option<u8> {
    match (form, role) {
        (Form::Request, Role::Client) => Some(0),
        (Form::Request, Role::Director) => Some(1),
        (Form::RequestWrapped, Role::Director) => Some(2),
        (Form::RequestWrapped, Role::RealServer) => Some(3),
        (Form::Request, Role::RealServer) => Some(4),
        (Form::Reply | Form::ReplyOtherSource, Role::RealServer) => Some(10),
        (Form::Reply | Form::ReplyOtherSource, Role::Director) => Some(11),
        (Form::Reply | Form::ReplyOtherSource, Role::Client) => Some(12),
        _ => None,
    }
}

/// Time differences between two captures (a < b), each `t_b - t_a`.
#[derive(Default, Debug)]
struct Pair {
    /// a earlier on the path than b.
    forward: Vec<i64>,
    /// b earlier on the path than a.
    backward: Vec<i64>,
    unordered: Vec<i64>,
}

/// Time differences while they are gathered: every matched packet of every connection gives
/// one, and all of them are needed (medians), so they are kept as 32-bit distances from the
/// first one where they fit (the differences of one pair of captures stay within a few ms of
/// each other) and as full values otherwise.
#[derive(Default, Debug)]
struct Samples {
    base: i64,
    narrow: Vec<i32>,
    wide: Vec<i64>,
}

impl Samples {
    fn push(&mut self, d: i64) {
        if self.narrow.is_empty() && self.wide.is_empty() {
            self.base = d;
        }
        match d.checked_sub(self.base).map(i32::try_from) {
            Some(Ok(x)) => self.narrow.push(x),
            _ => self.wide.push(d),
        }
    }
    fn into_vec(self) -> Vec<i64> {
        let base = self.base;
        let mut v: Vec<i64> = Vec::with_capacity(self.narrow.len() + self.wide.len());
        v.extend(self.narrow.iter().map(|&x| base + i64::from(x)));
        v.extend(self.wide);
        v
    }
}

/// [`Pair`] while it is gathered.
#[derive(Default, Debug)]
struct PairSamples {
    forward: Samples,
    backward: Samples,
    unordered: Samples,
}

impl PairSamples {
    fn into_pair(self) -> Pair {
        Pair {
            forward: self.forward.into_vec(),
            backward: self.backward.into_vec(),
            unordered: self.unordered.into_vec(),
        }
    }
}

/// An estimate of off_b - off_a.
struct Edge {
    est: i64,
    unc: i64,
    method: OffsetMethod,
    samples: u64,
    delay: Option<i64>,
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

impl Pair {
    fn edge(&mut self) -> Option<Edge> {
        let n = (self.forward.len() + self.backward.len()) as u64;
        if !self.forward.is_empty() && !self.backward.is_empty() {
            // forward: t_b - t_a = off + d1; backward: t_b - t_a = off - d2.
            let min_f = *self.forward.iter().min()?;
            let max_b = *self.backward.iter().max()?;
            let est = (min_f + max_b) / 2;
            let unc = ((min_f - max_b) / 2).abs();
            let mf = median(&mut self.forward);
            let mb = median(&mut self.backward);
            return Some(Edge {
                est,
                unc,
                method: OffsetMethod::TwoWay,
                samples: n,
                delay: Some((mf - mb) / 2),
            });
        }
        if !self.forward.is_empty() || !self.backward.is_empty() {
            // One direction: every sample is the offset plus (forward) or minus (backward) a
            // delay >= 0, so the sample nearest the offset is the smallest delay's. Its distance
            // to the median (the typical delay) is given as the uncertainty.
            let forward = !self.forward.is_empty();
            let v = if forward {
                &mut self.forward
            } else {
                &mut self.backward
            };
            let m = median(v);
            let (best, unc) = if forward {
                (v[0], m - v[0])
            } else {
                (v[v.len() - 1], v[v.len() - 1] - m)
            };
            return Some(Edge {
                est: best,
                unc,
                method: OffsetMethod::OneWay,
                samples: n,
                delay: None,
            });
        }
        if !self.unordered.is_empty() {
            let v = &mut self.unordered;
            let m = median(v);
            let unc = (m - v[0]).max(v[v.len() - 1] - m);
            return Some(Edge {
                est: m,
                unc,
                method: OffsetMethod::Unordered,
                samples: v.len() as u64,
                delay: None,
            });
        }
        None
    }
}

/// A vantage point's offset among `offsets`, which [`estimate_from_samples`] returns sorted by
/// vantage point: found by bisection (asked per connection, with thousands of vantage points
/// a scan adds up), with a scan as a fallback for a list built otherwise.
pub fn offset_of(offsets: &[ClockOffset], v: VantageId) -> Option<&ClockOffset> {
    match offsets.binary_search_by_key(&v, |o| o.vantage) {
        Ok(i) => Some(&offsets[i]),
        Err(_) => offsets.iter().find(|o| o.vantage == v),
    }
}

/// Picks the reference: the first director capture, else the first client's, else the first.
pub fn reference(vantages: &[(VantageId, Role)]) -> Option<VantageId> {
    let first = |r: Role| vantages.iter().filter(|v| v.1 == r).map(|v| v.0).min();
    first(Role::Director)
        .or_else(|| first(Role::Client))
        .or_else(|| vantages.iter().map(|v| v.0).min())
}

/// Each sighting of a packet is compared with at most this many of the sightings after it along
/// the packet's path (and with the reference capture's). An LVS path has six places at most
/// (client, director in and out, real server's eth0 and tunl0, client again for the reply), so
/// on a real deployment every pair is compared; a packet seen at hundreds of interfaces (a
/// merged pcapng, one section per capture) costs a bounded number of pairs per sighting instead
/// of the square of them. The pairs kept are the nearest hops, which have the smallest delays
/// and so bound the offsets most tightly.
pub const PAIRS_PER_SIGHTING: usize = 8;

/// One packet's sighting as ordered along its path: position (unknown last), vantage point, time.
type Placed = (u8, VantageId, Form, i64);

/// The pairs of sightings of one packet that are compared: each with its next
/// [`PAIRS_PER_SIGHTING`] along the path, and each with the reference capture's. `placed` must
/// be sorted by position then vantage point.
fn compared_pairs(
    placed: &[Placed],
    reference: VantageId,
) -> impl Iterator<Item = (&Placed, &Placed)> {
    let near = placed.iter().enumerate().flat_map(|(i, x)| {
        let end = placed.len().min(i + 1 + PAIRS_PER_SIGHTING);
        placed[i + 1..end].iter().map(move |y| (x, y))
    });
    // Pairs with the reference that the window above did not already give.
    let to_reference = placed
        .iter()
        .enumerate()
        .filter(move |(_, r)| r.1 == reference)
        .flat_map(move |(i, r)| {
            placed
                .iter()
                .enumerate()
                .filter(move |(j, _)| j.abs_diff(i) > PAIRS_PER_SIGHTING)
                .map(move |(j, y)| if j < i { (y, r) } else { (r, y) })
        });
    near.chain(to_reference)
}

/// The time differences of every pair of captures that saw the same packets, keyed by the pair
/// (a < b). Linear in sightings: see [`PAIRS_PER_SIGHTING`].
fn gather_pairs<'s>(
    packets: impl Iterator<Item = &'s [(VantageId, Form, i64)]>,
    role: &HashMap<VantageId, Role>,
    reference: VantageId,
) -> BTreeMap<(VantageId, VantageId), PairSamples> {
    let mut pairs: BTreeMap<(VantageId, VantageId), PairSamples> = BTreeMap::new();
    let place = |&(v, form, ts): &(VantageId, Form, i64)| {
        let pos = position(role.get(&v).copied().unwrap_or(Role::Other), form);
        (pos.unwrap_or(u8::MAX), v, form, ts)
    };
    // One buffer for all packets: no allocation per packet.
    let mut placed: Vec<Placed> = Vec::new();
    for s in packets {
        placed.clear();
        placed.extend(s.iter().map(place));
        placed.sort_unstable_by_key(|p| (p.0, p.1));
        for (x, y) in compared_pairs(&placed, reference) {
            let (a, b) = if x.1 < y.1 { (x, y) } else { (y, x) };
            if a.1 == b.1 {
                continue;
            }
            let p = pairs.entry((a.1, b.1)).or_default();
            let d = b.3 - a.3;
            let (pa, pb) = (a.0, b.0);
            match (pa != u8::MAX && pb != u8::MAX, pa.cmp(&pb)) {
                (true, std::cmp::Ordering::Less) => p.forward.push(d),
                (true, std::cmp::Ordering::Greater) => p.backward.push(d),
                _ => p.unordered.push(d),
            }
        }
    }
    pairs
}

/// Estimates every capture's offset from packets seen at several vantage points: each item is
/// one packet's sightings (vantage point, form, time there).
pub fn estimate_from_sightings<'s>(
    packets: impl Iterator<Item = &'s [(VantageId, Form, i64)]>,
    vantages: &[(VantageId, Role)],
) -> Vec<ClockOffset> {
    let Some(reference) = reference(vantages) else {
        return Vec::new();
    };
    let role: HashMap<VantageId, Role> = vantages.iter().copied().collect();
    let edges: Vec<((VantageId, VantageId), Edge)> = gather_pairs(packets, &role, reference)
        .into_iter()
        .filter_map(|(k, p)| p.into_pair().edge().map(|e| (k, e)))
        .collect();
    let mut out = shortest_tree(reference, &edges);
    for (v, _) in vantages {
        out.entry(*v).or_insert(ClockOffset {
            vantage: *v,
            reference,
            offset_ns: 0,
            uncertainty_ns: 0,
            method: OffsetMethod::Unmatched,
            via: None,
            samples: 0,
            delay_ns: None,
        });
    }
    out.into_values().collect()
}

/// Grows a tree from the reference, each time adding the capture that can be reached with the
/// smallest accumulated uncertainty (then the most packets, then the first edge in key order):
/// Dijkstra's algorithm over the edges, with a heap, so O(E log E) rather than a scan of every
/// edge for every capture added.
fn shortest_tree(
    reference: VantageId,
    edges: &[((VantageId, VantageId), Edge)],
) -> BTreeMap<VantageId, ClockOffset> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut adjacent: HashMap<VantageId, Vec<usize>> = HashMap::default();
    for (i, ((a, b), _)) in edges.iter().enumerate() {
        adjacent.entry(*a).or_default().push(i);
        adjacent.entry(*b).or_default().push(i);
    }
    let mut out: BTreeMap<VantageId, ClockOffset> = BTreeMap::new();
    out.insert(
        reference,
        ClockOffset {
            vantage: reference,
            reference,
            offset_ns: 0,
            uncertainty_ns: 0,
            method: OffsetMethod::Reference,
            via: None,
            samples: 0,
            delay_ns: None,
        },
    );
    // (accumulated uncertainty, most packets first, edge index): the edge index breaks ties in
    // the edges' key order. An edge is queued when its first end is reached, once.
    let mut queue: BinaryHeap<Reverse<(i64, Reverse<u64>, usize)>> = BinaryHeap::new();
    let push_from =
        |known: VantageId,
         out: &BTreeMap<VantageId, ClockOffset>,
         queue: &mut BinaryHeap<Reverse<(i64, Reverse<u64>, usize)>>| {
            let base = out[&known].uncertainty_ns;
            for &i in adjacent.get(&known).map_or(&[][..], |v| v.as_slice()) {
                let ((a, b), e) = &edges[i];
                let other = if *a == known { b } else { a };
                if !out.contains_key(other) {
                    queue.push(Reverse((base + e.unc, Reverse(e.samples), i)));
                }
            }
        };
    push_from(reference, &out, &mut queue);
    while let Some(Reverse((_, _, i))) = queue.pop() {
        let ((a, b), e) = &edges[i];
        let (known, new, sign) = match (out.contains_key(a), out.contains_key(b)) {
            (true, false) => (*a, *b, 1),
            (false, true) => (*b, *a, -1),
            _ => continue,
        };
        let base = &out[&known];
        let off = ClockOffset {
            vantage: new,
            reference,
            offset_ns: base.offset_ns + sign * e.est,
            uncertainty_ns: base.uncertainty_ns + e.unc,
            method: e.method,
            via: Some(known),
            samples: e.samples,
            delay_ns: e.delay,
        };
        out.insert(new, off);
        push_from(new, &out, &mut queue);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_brackets_the_offset_like_ntp() {
        // b's clock is 1000 ahead; a->b delays 30, 50; b->a delays 10, 20.
        let mut p = Pair {
            forward: vec![1030, 1050],
            backward: vec![1000 - 10, 1000 - 20],
            unordered: vec![],
        };
        let e = p.edge().unwrap();
        assert_eq!(e.method, OffsetMethod::TwoWay);
        // min forward 1030, max backward 990: midpoint 1010, half-width 20.
        assert_eq!((e.est, e.unc), (1010, 20));
        assert_eq!(e.samples, 4);
    }

    #[test]
    fn one_way_takes_the_fastest_packet() {
        let mut p = Pair {
            forward: vec![530, 500, 900, 520],
            ..Pair::default()
        };
        let e = p.edge().unwrap();
        assert_eq!(e.method, OffsetMethod::OneWay);
        // fastest 500, median (520 + 530) / 2 = 525.
        assert_eq!((e.est, e.unc), (500, 25));
        let mut back = Pair {
            backward: vec![-530, -500, -900],
            ..Pair::default()
        };
        let e = back.edge().unwrap();
        assert_eq!((e.est, e.unc), (-500, 30));
    }

    #[test]
    fn samples_come_back_whole_near_or_far() {
        let values = [
            5_000_000_000_i64,
            5_000_000_030,
            4_999_999_990,
            -7,
            i64::MAX,
            5,
        ];
        let mut s = Samples::default();
        for v in values {
            s.push(v);
        }
        let mut back = s.into_vec();
        back.sort_unstable();
        let mut expected = values.to_vec();
        expected.sort_unstable();
        assert_eq!(back, expected);
    }

    #[test]
    fn the_reference_is_a_director_then_a_client() {
        let v = |c| VantageId {
            capture: c,
            interface: 0,
        };
        assert_eq!(
            reference(&[(v(0), Role::Client), (v(1), Role::Director)]),
            Some(v(1))
        );
        assert_eq!(
            reference(&[(v(0), Role::RealServer), (v(1), Role::Client)]),
            Some(v(1))
        );
        assert_eq!(reference(&[(v(2), Role::Other)]), Some(v(2)));
    }

    fn vantage(i: u32) -> VantageId {
        VantageId {
            capture: 0,
            interface: i,
        }
    }

    /// One packet seen at `n` vantage points of no LVS role, vantage point i's clock i µs
    /// ahead: the pairs compared grow like n, not n^2, and every offset is still found.
    #[test]
    fn a_packet_seen_at_n_interfaces_gives_o_n_pairs() {
        for n in [2_u32, 6, 9, 100, 1000] {
            let vantages: Vec<(VantageId, Role)> =
                (0..n).map(|i| (vantage(i), Role::Other)).collect();
            let one: Vec<(VantageId, Form, i64)> = (0..n)
                .map(|i| (vantage(i), Form::Request, 5_000_000 + i64::from(i) * 1000))
                .collect();
            let role: HashMap<VantageId, Role> = vantages.iter().copied().collect();
            let pairs = gather_pairs(std::iter::once(one.as_slice()), &role, vantage(0));
            let n = n as usize;
            let all = n * (n - 1) / 2;
            if n <= PAIRS_PER_SIGHTING + 1 {
                assert_eq!(pairs.len(), all, "every pair of a short path");
            } else {
                // The window along the path, and the star to the reference.
                let bound = n * PAIRS_PER_SIGHTING + n;
                assert!(pairs.len() <= bound, "{n}: {}", pairs.len());
                assert!(pairs.len() < all);
            }
            let offsets = estimate_from_sightings(std::iter::once(one.as_slice()), &vantages);
            assert_eq!(offsets.len(), n);
            for (i, o) in offsets.iter().enumerate() {
                assert_eq!(o.vantage, vantage(i as u32));
                assert_eq!(o.offset_ns, i as i64 * 1000, "{o:?}");
                let expected = if i == 0 {
                    OffsetMethod::Reference
                } else {
                    OffsetMethod::Unordered
                };
                assert_eq!(o.method, expected);
            }
        }
    }

    /// The reference capture is compared with every other capture that saw a packet, however
    /// far along the path: the direct edge is there to be chosen.
    #[test]
    fn every_sighting_is_compared_with_the_reference() {
        let n = 50;
        let role: HashMap<VantageId, Role> = (0..n).map(|i| (vantage(i), Role::Other)).collect();
        let one: Vec<(VantageId, Form, i64)> = (0..n)
            .map(|i| (vantage(i), Form::Request, i64::from(i)))
            .collect();
        let pairs = gather_pairs(std::iter::once(one.as_slice()), &role, vantage(0));
        for i in 1..n {
            assert!(pairs.contains_key(&(vantage(0), vantage(i))), "{i}");
        }
    }

    /// The tree as it was grown before the heap: every edge scanned for every capture added.
    /// Kept here as the specification the heap must reproduce, ties included.
    fn tree_by_scanning(
        reference: VantageId,
        edges: &[((VantageId, VantageId), Edge)],
    ) -> Vec<(VantageId, i64, i64, Option<VantageId>)> {
        let mut out: BTreeMap<VantageId, (i64, i64, Option<VantageId>)> = BTreeMap::new();
        out.insert(reference, (0, 0, None));
        loop {
            let mut best: Option<(i64, u64, VantageId, VantageId, &Edge, i64)> = None;
            for ((a, b), e) in edges {
                let (known, new, sign) = match (out.contains_key(a), out.contains_key(b)) {
                    (true, false) => (*a, *b, 1),
                    (false, true) => (*b, *a, -1),
                    _ => continue,
                };
                let unc = out[&known].1 + e.unc;
                if best.is_none_or(|b| {
                    (unc, std::cmp::Reverse(e.samples)) < (b.0, std::cmp::Reverse(b.1))
                }) {
                    best = Some((unc, e.samples, known, new, e, sign));
                }
            }
            let Some((unc, _, known, new, e, sign)) = best else {
                break;
            };
            let off = out[&known].0 + sign * e.est;
            out.insert(new, (off, unc, Some(known)));
        }
        out.into_iter()
            .map(|(v, (o, u, via))| (v, o, u, via))
            .collect()
    }

    #[test]
    fn the_heap_grows_the_same_tree_as_scanning_every_edge() {
        // A small linear congruential generator: the same graphs on every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % m
        };
        for _ in 0..200 {
            let n = 2 + next(12) as u32;
            let mut edges: Vec<((VantageId, VantageId), Edge)> = Vec::new();
            for a in 0..n {
                for b in a + 1..n {
                    if next(3) == 0 {
                        continue;
                    }
                    edges.push((
                        (vantage(a), vantage(b)),
                        Edge {
                            est: next(1000) as i64 - 500,
                            // Few distinct values, so that ties happen.
                            unc: next(4) as i64 * 10,
                            method: OffsetMethod::OneWay,
                            samples: next(3),
                            delay: None,
                        },
                    ));
                }
            }
            let reference = vantage(next(u64::from(n)) as u32);
            let heap: Vec<_> = shortest_tree(reference, &edges)
                .into_values()
                .map(|o| (o.vantage, o.offset_ns, o.uncertainty_ns, o.via))
                .collect();
            assert_eq!(heap, tree_by_scanning(reference, &edges));
        }
    }
}
