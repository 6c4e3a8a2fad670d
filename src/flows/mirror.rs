//! Mirror ports and merged files: one capture interface that holds several hosts' packets.
//!
//! A switch's SPAN port, a capture on a bridge, or `mergecap` of every host's capture (which by
//! default folds interfaces that look alike into one) gives one interface where no MAC is in
//! most frames (see [`VantageFacts::local_mac_candidates`]). Read as one vantage point it shows
//! the director's input, its tunnelled output and the real servers' replies all at once, so it
//! fits no role and every check that needs a host's view would skip.
//!
//! Such an interface is split into its hops, one per MAC: a frame from MAC S to MAC D is what
//! host S sent and what host D received, so it is handed on twice, as if captured on S and on D
//! (a broadcast or multicast frame only as S's). Each hop then is a vantage point of its own,
//! with a virtual interface id ([`HOP_BASE`] and up) and the name `hop <MAC>`, and gets its role
//! from its traffic like any host's capture. All hops of one capture share its clock.
//!
//! A frame seen twice (a merged file holds the sender's and the receiver's copy; a SPAN of both
//! directions of two ports holds two) is handed on once: the same decoded frame (same MACs, IP
//! id, TTL, sequence numbers, payload hash and length) within [`DUPLICATE_WINDOW_NS`] and the
//! last [`RECENT`] frames is a copy, as `editcap -D` decides on the bytes. Copies farther apart
//! (merged captures of hosts whose clocks differ by more) are not recognised: they look like
//! retransmissions.

use super::clock::{ClockOffset, OffsetMethod};
use super::pipeline::{FrameSource, ReadReport};
use crate::capture::frame::CaptureId;
use crate::decode::packet::{DecodedFrame, Mac};
use crate::topology::facts::VantageFacts;
use crate::topology::view::is_unicast;
use crate::topology::{Topology, VantageId};
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// Virtual interface ids of hops start here, far above any interface id a file gives
/// (pcapng numbers its interfaces from 0 per section).
pub const HOP_BASE: u32 = 0x4000_0000;
/// At most this many hops per capture: a SPAN of a large segment holds hundreds of MACs, and
/// every vantage point costs the clock estimate and the join. Frames between MACs past the
/// limit are left out, and the split says how many.
pub const MAX_HOPS: usize = 64;
/// Copies of one frame in a merged file or a two-way SPAN are microseconds apart.
pub const DUPLICATE_WINDOW_NS: i64 = 20_000_000;
/// How many recent frames a copy is looked for among.
pub const RECENT: usize = 128;
/// A copy farther than [`DUPLICATE_WINDOW_NS`] but within this is a late copy: the same frame
/// from two hosts' captures whose clocks differ (a retransmission carries a new IP id).
pub const LATE_COPY_MAX_NS: i64 = 600_000_000_000;
/// Frames remembered for late copies, per generation (two generations: bounded memory).
const LATE_GENERATION: usize = 1 << 15;
/// An interface with fewer unicast frames than this is too small to call a mirror.
const MIN_UNICAST_FRAMES: u64 = 8;

/// Whether an interface holds several hosts' packets: Ethernet with both MACs (not a cooked
/// capture, which is one host's by construction), and no MAC in most unicast frames.
/// Frames a switch flooded to a host's port are not counted against it (see
/// [`VantageFacts::local_mac_candidates`]).
pub fn is_mirror(facts: &VantageFacts) -> bool {
    facts.has_macs()
        && !facts.has_sll()
        && facts.unicast_frames >= MIN_UNICAST_FRAMES
        && facts.local_mac_candidates().is_empty()
}

/// What the split did to one interface, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorSplit {
    pub capture: CaptureId,
    pub interface: u32,
    /// The hops, in order of first frame: virtual interface id and MAC.
    pub hops: Vec<(u32, String)>,
    /// Frames handed on (each counted once, whether to one hop or two).
    pub frames: u64,
    /// Copies of a frame already handed on, left out.
    pub duplicates: u64,
    /// Frames between MACs past [`MAX_HOPS`], left out.
    pub beyond_hop_limit: u64,
    /// Copies of a frame seen more than [`DUPLICATE_WINDOW_NS`] after it, and the largest gap:
    /// many of them mean a merge of captures whose clocks differ.
    pub late_copies: u64,
    pub late_copy_max_gap_ns: i64,
    /// Why the interface was left whole after all (its hops' times cannot be trusted).
    pub not_split: Option<String>,
}

impl MirrorSplit {
    /// Whether the interface is a merge of captures with clocks too far apart to split: one in
    /// ten frames is a late copy. A real mirror port has one clock, so no late copies at all.
    pub fn clocks_disagree(&self) -> bool {
        self.late_copies >= 4 && self.late_copies * 10 >= self.frames
    }
}

/// A frame source whose mirror interfaces are handed on split into hops.
pub struct Split<'a> {
    inner: &'a dyn FrameSource,
    mirrors: BTreeMap<CaptureId, BTreeSet<u32>>,
    /// Hand on the copies of a frame seen again (which the analysis leaves out), with their
    /// interface as in the file rather than a hop's.
    copies: bool,
}

impl<'a> Split<'a> {
    /// `mirrors`: the interfaces of each capture to split.
    pub fn new(inner: &'a dyn FrameSource, mirrors: BTreeMap<CaptureId, BTreeSet<u32>>) -> Self {
        Split {
            inner,
            mirrors,
            copies: false,
        }
    }

    /// Also hands on each copy of a frame it has just seen (the receiver's copy in a merged
    /// file), on the interface the file gives it (a mirror interface, which no hop is): for a
    /// reader that marks every frame of a connection, not for the analysis, which counts a
    /// packet once.
    pub fn with_copies(mut self) -> Self {
        self.copies = true;
        self
    }

    /// Reads one capture (its look-ahead only, when `ahead`: [`FrameSource::read_ahead_mut`]),
    /// handing on its mirror interfaces' frames hop by hop, and says what the split did.
    pub fn read_split(
        &self,
        capture: CaptureId,
        ahead: bool,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> (Result<ReadReport, String>, Vec<MirrorSplit>) {
        let read = |each: &mut dyn FnMut(&mut DecodedFrame, u32)| {
            if ahead {
                self.inner.read_ahead_mut(capture, each)
            } else {
                self.inner.read_mut(capture, each)
            }
        };
        let Some(ifaces) = self.mirrors.get(&capture) else {
            return (read(each), Vec::new());
        };
        let mut hops = Hops::default();
        let mut recent = Recent::default();
        let mut splits: BTreeMap<u32, MirrorSplit> = ifaces
            .iter()
            .map(|&i| {
                let s = MirrorSplit {
                    capture,
                    interface: i,
                    hops: Vec::new(),
                    frames: 0,
                    duplicates: 0,
                    beyond_hop_limit: 0,
                    late_copies: 0,
                    late_copy_max_gap_ns: 0,
                    not_split: None,
                };
                (i, s)
            })
            .collect();
        let res = read(&mut |f, link_type| {
            let Some(split) = splits.get_mut(&f.interface) else {
                return each(f, link_type);
            };
            match recent.seen_before(f) {
                Sighting::Copy => {
                    split.duplicates += 1;
                    if self.copies {
                        each(f, link_type);
                    }
                    return;
                }
                Sighting::LateCopy(gap) => {
                    split.late_copies += 1;
                    split.late_copy_max_gap_ns = split.late_copy_max_gap_ns.max(gap);
                }
                Sighting::New => {}
            }
            let link = &f.packet.link;
            let (Some(src), dst) = (link.src_mac, link.dst_mac) else {
                return;
            };
            let original = f.interface;
            let sender = is_unicast(&src)
                .then(|| hops.hop(original, src, split))
                .flatten();
            let receiver = dst
                .filter(|d| is_unicast(d) && *d != src)
                .and_then(|d| hops.hop(original, d, split));
            if sender.is_none() && receiver.is_none() {
                split.beyond_hop_limit += 1;
                return;
            }
            split.frames += 1;
            for hop in [sender, receiver].into_iter().flatten() {
                f.interface = hop;
                each(f, link_type);
            }
            f.interface = original;
        });
        let res = res.map(|mut report| {
            let names: BTreeMap<u32, &String> = report
                .interface_names
                .iter()
                .map(|(i, n)| (*i, n))
                .collect();
            let mut extra = Vec::new();
            for s in splits.values() {
                for (hop, mac) in &s.hops {
                    let name = match names.get(&s.interface) {
                        Some(n) => format!("{n}, hop {mac}"),
                        None => format!("hop {mac}"),
                    };
                    extra.push((*hop, name));
                }
            }
            report.interface_names.extend(extra);
            report
        });
        (res, splits.into_values().collect())
    }
}

impl FrameSource for Split<'_> {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        self.inner.captures()
    }

    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_split(capture, false, &mut |f, link_type| each(f, link_type))
            .0
    }

    fn read_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_split(capture, false, each).0
    }

    fn read_ahead_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_split(capture, true, each).0
    }
}

/// Hop ids of one capture, given out in order of first frame so that every read of the file
/// numbers them alike.
#[derive(Default)]
struct Hops {
    ids: FxHashMap<(u32, Mac), u32>,
}

impl Hops {
    fn hop(&mut self, interface: u32, mac: Mac, split: &mut MirrorSplit) -> Option<u32> {
        if let Some(&id) = self.ids.get(&(interface, mac)) {
            return Some(id);
        }
        if split.hops.len() >= MAX_HOPS {
            return None;
        }
        let id = HOP_BASE + self.ids.len() as u32;
        self.ids.insert((interface, mac), id);
        split.hops.push((id, mac_text(&mac)));
        Some(id)
    }
}

fn mac_text(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// What a frame is to those before it.
#[derive(Debug, PartialEq)]
enum Sighting {
    New,
    /// Handed on a moment ago.
    Copy,
    /// The same frame, this many nanoseconds away.
    LateCopy(i64),
}

/// The last [`RECENT`] frames' fingerprints and times (a fixed ring, no allocation per frame),
/// and a bounded memory of older ones for late copies.
struct Recent {
    ring: [(u64, i64); RECENT],
    next: usize,
    filled: usize,
    /// Two generations of fingerprints: when the newer fills up it becomes the older.
    older: FxHashMap<u64, i64>,
    newer: FxHashMap<u64, i64>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            ring: [(0, 0); RECENT],
            next: 0,
            filled: 0,
            older: FxHashMap::default(),
            newer: FxHashMap::default(),
        }
    }
}

impl Recent {
    /// Whether the same frame was handed on a moment ago (or long ago); remembers it if not.
    fn seen_before(&mut self, f: &DecodedFrame) -> Sighting {
        let print = fingerprint(f);
        let copy = self.ring[..self.filled]
            .iter()
            .any(|&(p, ts)| p == print && (f.ts_ns - ts).abs() <= DUPLICATE_WINDOW_NS);
        if copy {
            return Sighting::Copy;
        }
        self.ring[self.next] = (print, f.ts_ns);
        self.next = (self.next + 1) % RECENT;
        self.filled = (self.filled + 1).min(RECENT);
        let before = self.newer.get(&print).or_else(|| self.older.get(&print));
        let sighting = match before {
            Some(&ts)
                if (f.ts_ns - ts).abs() > DUPLICATE_WINDOW_NS
                    && (f.ts_ns - ts).abs() <= LATE_COPY_MAX_NS =>
            {
                Sighting::LateCopy((f.ts_ns - ts).abs())
            }
            _ => Sighting::New,
        };
        if self.newer.len() >= LATE_GENERATION {
            // Swapped and cleared, not replaced: the maps keep their capacity.
            std::mem::swap(&mut self.older, &mut self.newer);
            self.newer.clear();
        }
        self.newer.insert(print, f.ts_ns);
        sighting
    }
}

/// What makes two frames the same frame: everything decoded from the bytes and the length on
/// the wire; not where or when it was captured.
fn fingerprint(f: &DecodedFrame) -> u64 {
    let mut h = FxHasher::default();
    f.wire_len.hash(&mut h);
    f.packet.hash(&mut h);
    h.finish()
}

/// Why an interface with late copies was left whole.
pub fn clocks_disagree_reason(m: &MirrorSplit) -> String {
    format!(
        "it holds several hosts' frames, merged from captures whose clocks disagree: {} frames \
         appear twice up to {:.3} s apart, so no hop's times can be trusted; merge captures \
         whose clocks agree (chrony/NTP on every host, or editcap -t to shift one), or give \
         lvscheck each host's capture as its own file",
        m.late_copies,
        m.late_copy_max_gap_ns as f64 / 1e9
    )
}

/// Says in each hop's reason where its frames came from: a capture of several hosts' packets;
/// and in a whole interface's, why it was not split.
pub fn describe_hops(topology: &mut Topology, splits: &[MirrorSplit]) {
    for s in splits {
        if let Some(why) = &s.not_split {
            let id = VantageId {
                capture: s.capture,
                interface: s.interface,
            };
            if let Some(v) = topology.vantages.iter_mut().find(|v| v.id == id) {
                v.reason = format!("{why}; {}", v.reason);
            }
            continue;
        }
        let others = s.hops.len().saturating_sub(1);
        for (hop, mac) in &s.hops {
            let id = VantageId {
                capture: s.capture,
                interface: *hop,
            };
            if let Some(v) = topology.vantages.iter_mut().find(|v| v.id == id) {
                v.reason = format!(
                    "the frames {mac} sent or received, in a capture of {} hosts (a mirror \
                     port, a bridge or a merged file); {}",
                    others + 1,
                    v.reason
                );
            }
        }
    }
}

/// All hops of one capture were timed by one clock: each gets the offset of the hop that was
/// measured best (the reference, when a hop is it), and says so.
pub fn share_clocks(offsets: &mut [ClockOffset], splits: &[MirrorSplit]) {
    for s in splits {
        let hops: BTreeSet<VantageId> = s
            .hops
            .iter()
            .map(|(i, _)| VantageId {
                capture: s.capture,
                interface: *i,
            })
            .collect();
        let best = offsets
            .iter()
            .filter(|o| hops.contains(&o.vantage) && o.method != OffsetMethod::Unmatched)
            .min_by_key(|o| (o.uncertainty_ns, o.vantage))
            .cloned();
        let Some(best) = best else { continue };
        for o in offsets.iter_mut() {
            if hops.contains(&o.vantage) && o.vantage != best.vantage {
                o.offset_ns = best.offset_ns;
                o.uncertainty_ns = best.uncertainty_ns;
                o.reference = best.reference;
                o.method = OffsetMethod::SameClock;
                o.via = Some(best.vantage);
                o.samples = 0;
                o.delay_ns = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::packet::{Link, Net, Packet};

    fn frame(ts_ns: i64, src: Mac, dst: Mac, wire_len: u32) -> DecodedFrame {
        DecodedFrame {
            capture: 0,
            interface: 0,
            number: 1,
            ts_ns,
            wire_len,
            packet: Packet {
                link: Link {
                    src_mac: Some(src),
                    dst_mac: Some(dst),
                    ..Link::default()
                },
                net: Net::Other { ether_type: 0x88b5 },
                gue_shaped: None,
                control: None,
            },
        }
    }

    #[test]
    fn a_copy_is_recognised_within_the_window_only() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut r = Recent::default();
        assert_eq!(r.seen_before(&frame(0, a, b, 60)), Sighting::New);
        assert_eq!(r.seen_before(&frame(5_000, a, b, 60)), Sighting::Copy);
        // Another length, other MACs: another frame.
        assert_eq!(r.seen_before(&frame(6_000, a, b, 61)), Sighting::New);
        assert_eq!(r.seen_before(&frame(7_000, b, a, 60)), Sighting::New);
        // The same bytes a second later: a late copy (or the same frame sent again).
        assert_eq!(
            r.seen_before(&frame(1_000_000_000, a, b, 60)),
            Sighting::LateCopy(1_000_000_000)
        );
    }

    #[test]
    fn a_copy_beyond_the_ring_is_not_recognised() {
        let mut r = Recent::default();
        let first = frame(0, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 60);
        assert_eq!(r.seen_before(&first), Sighting::New);
        for i in 0..RECENT as u32 {
            let other = frame(1, [2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4], 100 + i);
            assert_eq!(r.seen_before(&other), Sighting::New);
        }
        // Pushed out of the ring, and too close in time to be a late copy.
        assert_eq!(r.seen_before(&first), Sighting::New);
    }
}
