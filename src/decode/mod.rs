//! Frame bytes + link type -> the layered [`Packet`] of [`packet`].
//!
//! Contract: decoding never panics, whatever the bytes; every length is checked once, where a
//! layer is read, and a layer that cannot be read ends the chain with `Net::Malformed` or
//! `Transport::Malformed` and a short reason naming the layer and the byte counts ([`Defect`],
//! a value until it is written out), which the caller reports with the frame number. Decoding is lax the way real captures need it: a frame
//! cut short by the snap length is decoded as far as its bytes go (IP lengths are taken from the
//! headers, hashes from the bytes present), checksums are not verified, and the packet quoted in
//! an ICMP error is decoded from its first bytes only. What is validated: header lengths against
//! the bytes present, the IP version nibble, and, for the GUE shape rule only
//! ([`looks_like_gue`]), the inner IPv4 header checksum and lengths.
//!
//! Layout: [`link`] (link types, VLAN tags) -> [`ip`] (IPv4/IPv6, fragments; the header itself
//! read by `ip_header`) -> [`transport`] (TCP, UDP), [`icmp`] (ICMP, ICMPv6 and the quoted
//! packet), [`tunnel`] (IP-in-IP, GRE, GUE), [`arp`]. [`reassembly`] holds the stateful
//! [`Decoder`]'s fragment table, `boxes` the boxes it reuses for tunnelled and quoted packets,
//! and [`counts`] the per-layer tallies that `inspect` prints. Nesting (tunnels, quoted packets)
//! stops at [`MAX_IP_LAYERS`] IP headers.
//!
//! Cost: the [`Decoder`] allocates nothing per frame, and writes every layer where it stays
//! (see `ip::decode_ip`): a frame is decoded over the one before it.
//!
//! [`decode`] is stateless: a fragment is decoded from what it has (a first fragment's
//! transport header, `Transport::Fragment` for the others). [`Decoder`] adds reassembly: the
//! frame that completes a datagram carries the transport decoded from the whole datagram, and
//! its IP header then describes the reassembled datagram (see `IpHeader::is_fragment`); every
//! other fragment of it, the first included, is `Transport::Fragment`, so that the datagram
//! counts once. A first fragment whose datagram never completes keeps what its bytes say.

pub mod arp;
mod boxes;
pub mod counts;
pub mod defect;
pub mod icmp;
pub mod ip;
mod ip_header;
pub mod ipvs_sync;
pub mod link;
pub mod packet;
pub mod reassembly;
pub mod transport;
pub mod tunnel;
pub mod vrrp;

pub use counts::{LayerCounts, TunnelCounts};
pub use defect::{Defect, IpDefect, MAX_VLAN_TAGS};
pub use link::LinkType;
pub use packet::*;
pub use reassembly::{ReassemblyLimits, ReassemblyStats};
pub use tunnel::looks_like_gue;

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::capture::frame::Frame;
use boxes::PacketBoxes;
use reassembly::{DatagramId, Reassembler};

/// At most this many IP headers are decoded in one frame (outer, tunnelled, quoted): a tunnel in
/// a tunnel in a ... ends with `Transport::Malformed` at this depth.
pub const MAX_IP_LAYERS: u8 = 4;

/// What the user told us about the traffic, and what the first pass found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeOptions {
    /// UDP destination ports that carry GUE whoever sends to them: `--gue-port`, and the
    /// `--tun-port` of the rules' GUE real servers.
    pub gue_ports: Vec<u16>,
    /// (tunnel source, UDP destination port) pairs that carry GUE: a director seen wrapping
    /// clients' packets on that port (`topology::gue`).
    pub gue_tunnels: Vec<(IpAddr, u16)>,
    /// On every other outermost UDP datagram whose payload passes [`looks_like_gue`], note the
    /// packet it would carry (`Packet::gue_shaped`), leaving the datagram plain UDP: the shape
    /// alone proves nothing (DNS queries and SunRPC calls can have it).
    pub gue_probe: bool,
    /// Bounds of the [`Decoder`]'s fragment reassembly table.
    pub reassembly: ReassemblyLimits,
}

impl DecodeOptions {
    /// Whether a UDP datagram from `src` to `port` is GUE.
    fn is_gue(&self, src: IpAddr, port: u16) -> bool {
        self.gue_ports.contains(&port) || self.gue_tunnels.contains(&(src, port))
    }
}

/// Decodes one frame without reassembly (and with fresh boxes for the packets a tunnel or an
/// ICMP error carries: [`Decoder`] reuses them).
pub fn decode(link_type: u32, data: &[u8], opts: &DecodeOptions) -> Packet {
    let mut boxes = PacketBoxes::default();
    let mut ctx = Ctx {
        opts,
        reassembler: None,
        boxes: &mut boxes,
        ts_ns: 0,
        quoted: false,
        held: None,
        gue_shaped: None,
        control: None,
    };
    let mut packet = Packet::BLANK;
    link::decode_frame(link_type, data, &mut ctx, &mut packet);
    packet
}

/// Decodes frames in capture order and reassembles IP fragments in a bounded table.
///
/// A fragmented datagram counts once, on the frame that completes it (as Wireshark counts with
/// reassembly on): that frame carries the transport decoded from the whole datagram. The frame
/// of its first fragment has the transport header too, but cannot tell when it comes whether
/// the rest will follow; so the decoder holds it back, and every frame after it to keep capture
/// order, until its datagram leaves the table. Completed, the first fragment is handed on as a
/// piece of it (`Transport::Fragment`); dropped (too old, evicted, contradicted, or the capture
/// ended first), it is handed on decoded from the bytes it has, the only trace of a datagram
/// the receiver never got whole either. Fragments of one datagram follow each other within
/// microseconds, so frames wait that long; [`ReassemblyLimits::max_held_frames`] bounds it.
///
/// No heap allocation per frame once warm: the boxes of tunnelled and quoted packets are taken
/// back from each frame after `emit` and reused.
#[derive(Debug)]
pub struct Decoder {
    opts: DecodeOptions,
    reassembler: Reassembler,
    boxes: PacketBoxes,
    /// The frame being decoded, written over the one before it (once handed on), so that no
    /// frame is built anew.
    frame: DecodedFrame,
    held: VecDeque<Held>,
    /// The reassembler's finished datagrams, drained after every frame (kept for its buffer).
    finished: Vec<(DatagramId, bool)>,
}

/// A frame decoded but not handed on yet.
#[derive(Debug)]
struct Held {
    frame: DecodedFrame,
    link_type: u32,
    /// The pending datagram this frame is the first fragment of; None once it left the table
    /// (the frame waits only for those before it).
    waits_for: Option<DatagramId>,
}

impl Decoder {
    pub fn new(opts: DecodeOptions) -> Decoder {
        let reassembler = Reassembler::new(opts.reassembly);
        Decoder {
            opts,
            reassembler,
            boxes: PacketBoxes::default(),
            frame: DecodedFrame::BLANK,
            held: VecDeque::new(),
            finished: Vec::new(),
        }
    }

    pub fn options(&self) -> &DecodeOptions {
        &self.opts
    }

    /// Decodes one frame and hands `emit` every frame that is settled, in capture order: this
    /// one, unless it or a frame before it waits for a datagram to complete. `frame.ts_ns`
    /// ages the fragment table (frames should come in time order; one that goes back in time
    /// ages nothing). Call [`Decoder::finish`] after the last frame. A frame handed to `emit`
    /// is the decoder's again when `emit` returns (it takes the boxes back).
    pub fn push(&mut self, frame: &Frame, emit: &mut impl FnMut(&mut DecodedFrame, u32)) {
        self.reassembler.age(frame.ts_ns);
        let mut ctx = Ctx {
            opts: &self.opts,
            reassembler: Some(&mut self.reassembler),
            boxes: &mut self.boxes,
            ts_ns: frame.ts_ns,
            quoted: false,
            held: None,
            gue_shaped: None,
            control: None,
        };
        let decoded = &mut self.frame;
        decoded.capture = frame.capture;
        decoded.interface = frame.interface;
        decoded.number = frame.number;
        decoded.ts_ns = frame.ts_ns;
        decoded.wire_len = frame.wire_len;
        link::decode_frame(frame.link_type, frame.data, &mut ctx, &mut decoded.packet);
        let waits_for = ctx.held;
        self.reassembler.take_finished(&mut self.finished);
        if self.held.is_empty() && waits_for.is_none() {
            // Nothing waits: what left the table concerns no frame still here.
            self.finished.clear();
            emit(decoded, frame.link_type);
            self.boxes.reclaim(&mut decoded.packet);
            return;
        }
        self.held.push_back(Held {
            frame: std::mem::replace(decoded, DecodedFrame::BLANK),
            link_type: frame.link_type,
            waits_for,
        });
        self.settle();
        self.release(emit);
        while self.held.len() > self.opts.reassembly.max_held_frames {
            // The first frame still here waits for a datagram (release stopped there).
            let Some(id) = self.held.front().and_then(|h| h.waits_for) else {
                break;
            };
            self.reassembler.evict(id);
            self.reassembler.take_finished(&mut self.finished);
            self.settle();
            self.release(emit);
        }
    }

    /// The capture ended: the datagrams still pending never completed in it, and the frames of
    /// their first fragments are handed on as they were decoded, with the frames after them.
    pub fn finish(&mut self, emit: &mut impl FnMut(&mut DecodedFrame, u32)) {
        for h in &mut self.held {
            h.waits_for = None;
        }
        self.release(emit);
    }

    /// What the fragment table did so far.
    pub fn reassembly_stats(&self) -> ReassemblyStats {
        self.reassembler.stats()
    }

    /// Datagrams waiting for fragments.
    pub fn pending_datagrams(&self) -> usize {
        self.reassembler.pending()
    }

    /// Frames decoded and not handed on yet.
    pub fn held_frames(&self) -> usize {
        self.held.len()
    }

    /// Applies the datagrams that left the table to the frames of their first fragments.
    fn settle(&mut self) {
        for (id, completed) in self.finished.drain(..) {
            for h in self.held.iter_mut().filter(|h| h.waits_for == Some(id)) {
                h.waits_for = None;
                if completed {
                    // Another frame carries the datagram: this one is a piece of it.
                    if let Net::Ip(ip) = &mut h.frame.packet.net {
                        piece_of_datagram(ip, &mut self.boxes);
                    }
                }
            }
        }
    }

    /// Hands on the frames at the front that wait for nothing.
    fn release(&mut self, emit: &mut impl FnMut(&mut DecodedFrame, u32)) {
        while self.held.front().is_some_and(|h| h.waits_for.is_none()) {
            if let Some(mut h) = self.held.pop_front() {
                emit(&mut h.frame, h.link_type);
                self.boxes.reclaim(&mut h.frame.packet);
            }
        }
    }
}

/// Turns the first fragment in a packet's chain (through tunnels) into a piece of a datagram
/// that another frame carries whole.
fn piece_of_datagram(ip: &mut IpPacket, boxes: &mut PacketBoxes) {
    if ip.ip.is_fragment() {
        boxes.reclaim_ip(ip);
        ip.transport = Transport::Fragment;
    } else if let Transport::Tunnel { inner, .. } = &mut ip.transport {
        piece_of_datagram(inner, boxes);
    }
}

/// State threaded through one frame's decode.
pub(crate) struct Ctx<'a> {
    pub opts: &'a DecodeOptions,
    /// None for the stateless decode, inside ICMP-quoted packets (not real traffic) and inside
    /// a first fragment (not the whole datagram).
    pub reassembler: Option<&'a mut Reassembler>,
    /// Where the packets a tunnel or an ICMP error carries get their boxes.
    pub boxes: &'a mut PacketBoxes,
    pub ts_ns: i64,
    /// Inside a packet quoted by an ICMP error: headers are read laxly.
    pub quoted: bool,
    /// Set by the decode: the frame is the first fragment of this datagram, still pending.
    pub held: Option<DatagramId>,
    /// Set by the decode: what the outermost UDP datagram would carry if it were GUE.
    pub gue_shaped: Option<GueShape>,
    /// Set by the decode: the outermost packet is a director's control message.
    pub control: Option<Control>,
}

impl Ctx<'_> {
    /// The context for a packet quoted in an ICMP error: same options, no reassembly.
    pub(crate) fn quoted(&mut self) -> Ctx<'_> {
        Ctx {
            opts: self.opts,
            reassembler: None,
            boxes: self.boxes,
            ts_ns: self.ts_ns,
            quoted: true,
            held: None,
            gue_shaped: None,
            control: None,
        }
    }
}

/// Bytes of a payload that its fingerprint covers. Enough to tell apart the segments that
/// share a connection's ports, sequence numbers and length; more would cost every packet.
pub const PAYLOAD_PREFIX: usize = 128;

/// Multiplier of the word hash (FxHash's): odd, with well-spread bits.
const WORD_MIX: u64 = 0x517c_c1b7_2722_0a95;

/// Fingerprint of a payload's captured bytes, 0 for none: a hash of the first
/// [`PAYLOAD_PREFIX`] bytes eight at a time (little-endian words, the last one zero-padded),
/// seeded with how many it covers, never 0 for a non-empty payload. Cheap (a multiply per word,
/// no allocation) and stable across runs and machines, which is all that matching one packet
/// in two captures needs; not a cryptographic hash.
pub fn payload_hash(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let covered = &bytes[..bytes.len().min(PAYLOAD_PREFIX)];
    let mut hash = covered.len() as u64;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(WORD_MIX);
    // Whole words are loaded as such, the short last one assembled byte by byte: copying each
    // into a zeroed buffer called memcpy per word.
    let mut words = covered.chunks_exact(8);
    for word in &mut words {
        hash = mix(hash, word.try_into().map_or(0, u64::from_le_bytes));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let word = tail
            .iter()
            .rev()
            .fold(0u64, |word, &b| (word << 8) | u64::from(b));
        hash = mix(hash, word);
    }
    hash.max(1)
}

/// Big-endian u16 at `at`, if the bytes are there.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

/// Big-endian u32 at `at`, if the bytes are there.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Byte offset of `inner` within `outer` (a sub-slice of it).
#[inline]
pub(crate) fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_hash_reference_values() {
        // Worked by hand from the definition (and by the Python line in the commit that
        // introduced it): "a" is one word 0x61 seeded with 1.
        let a = (1u64.rotate_left(5) ^ 0x61).wrapping_mul(WORD_MIX);
        assert_eq!(payload_hash(b"a"), a);
        assert_eq!(payload_hash(b"a"), 0xb0ad_2f80_efa4_afd5);
        assert_eq!(payload_hash(b""), 0);
        // Only the prefix counts; its length is part of the hash.
        let long: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let mut other = long.clone();
        other[PAYLOAD_PREFIX + 10] ^= 0xff;
        assert_eq!(payload_hash(&long), payload_hash(&other));
        assert_ne!(payload_hash(&long[..16]), payload_hash(&long[..17]));
        assert_ne!(payload_hash(&[0]), payload_hash(&[0, 0]));
    }

    #[test]
    fn field_readers_stop_at_the_end() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(be16(&b, 3), Some(0x0405));
        assert_eq!(be16(&b, 4), None);
        assert_eq!(be32(&b, 1), Some(0x0203_0405));
        assert_eq!(be32(&b, 2), None);
        assert_eq!(be16(&b, usize::MAX), None);
        assert_eq!(be32(&b, usize::MAX - 1), None);
    }
}
