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
//! pairs that give the smallest accumulated uncertainty.
//!
//! The packets compared are a sample ([`ClockSampler`]) taken in pass 1, before the topology is
//! known: at most [`MAX_CLOCK_SAMPLES`] per vantage point, chosen by the packet's identity so
//! that all captures keep the same ones.

use super::legs::fingerprint;
use super::Form;
use crate::decode::packet::DecodedFrame;
use crate::topology::view::IpView;
use crate::topology::{Role, Topology, VantageId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

/// Packets kept per vantage point for the clock estimate, at most. The sample is thinned by
/// halves past this, so memory stays flat however long the capture is.
pub const MAX_CLOCK_SAMPLES: usize = 1 << 15;

/// One packet kept for the clock estimate: its identity, when it was seen here, and what is
/// needed to tell its form once the VIPs are known.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    /// [`fingerprint`] without its two low bits, as [`super::Fingerprint::value`].
    value: u64,
    ts_ns: i64,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    wrapped: bool,
}

/// A sample of one vantage point's TCP/UDP packets for matching against other captures, taken
/// while the topology is still unknown (pass 1).
///
/// The sample is chosen by the packet's identity, not by time or order: a packet is kept when
/// its mixed fingerprint has `level` low zero bits. Every capture applies the same rule, so the
/// packets sampled at one vantage point are sampled at every other one that saw them, and
/// thinning (one more bit) keeps a consistent subset. Memory is bounded by
/// [`MAX_CLOCK_SAMPLES`], not by packets or connections.
#[derive(Debug, Default)]
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
    let mut seen: HashMap<u64, Vec<(VantageId, Form, i64)>> = HashMap::new();
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
                seen.entry(*value).or_default().push((vantage, *form, *ts));
            }
        }
    }
    estimate_from_sightings(seen.values().map(|v| v.as_slice()), &vantages)
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

/// Picks the reference: the first director capture, else the first client's, else the first.
pub fn reference(vantages: &[(VantageId, Role)]) -> Option<VantageId> {
    let first = |r: Role| vantages.iter().filter(|v| v.1 == r).map(|v| v.0).min();
    first(Role::Director)
        .or_else(|| first(Role::Client))
        .or_else(|| vantages.iter().map(|v| v.0).min())
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
    let mut pairs: BTreeMap<(VantageId, VantageId), PairSamples> = BTreeMap::new();
    for s in packets {
        for (i, x) in s.iter().enumerate() {
            for y in &s[i + 1..] {
                let (a, b) = if x.0 < y.0 { (x, y) } else { (y, x) };
                if a.0 == b.0 {
                    continue;
                }
                let pa = position(role.get(&a.0).copied().unwrap_or(Role::Other), a.1);
                let pb = position(role.get(&b.0).copied().unwrap_or(Role::Other), b.1);
                let p = pairs.entry((a.0, b.0)).or_default();
                let d = b.2 - a.2;
                match (pa, pb) {
                    (Some(pa), Some(pb)) if pa < pb => p.forward.push(d),
                    (Some(pa), Some(pb)) if pa > pb => p.backward.push(d),
                    _ => p.unordered.push(d),
                }
            }
        }
    }
    let edges: Vec<((VantageId, VantageId), Edge)> = pairs
        .into_iter()
        .filter_map(|(k, p)| p.into_pair().edge().map(|e| (k, e)))
        .collect();

    // Grow a tree from the reference, each time adding the capture that can be reached with
    // the smallest accumulated uncertainty (then the most packets).
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
    loop {
        let mut best: Option<(i64, u64, VantageId, VantageId, &Edge, i64)> = None;
        for ((a, b), e) in &edges {
            let (known, new, sign) = match (out.contains_key(a), out.contains_key(b)) {
                (true, false) => (*a, *b, 1),
                (false, true) => (*b, *a, -1),
                _ => continue,
            };
            let unc = out[&known].uncertainty_ns + e.unc;
            if best
                .is_none_or(|b| (unc, std::cmp::Reverse(e.samples)) < (b.0, std::cmp::Reverse(b.1)))
            {
                best = Some((unc, e.samples, known, new, e, sign));
            }
        }
        let Some((_, _, known, new, e, sign)) = best else {
            break;
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
    }
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
}
