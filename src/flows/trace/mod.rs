//! The packets of chosen connections, from every capture, on one clock: what a ladder diagram
//! draws and an annotated copy of a capture marks. The analysis keeps no packets (only counts
//! and a few example frames per leg), so the captures are read again ([`reread`]) and each
//! frame placed ([`locate`]).

pub mod locate;
pub mod reread;

use crate::capture::CaptureSource;
use crate::decode::packet::{DecodedFrame, Tcp, TunnelKind};
use crate::decode::DecodeOptions;
use crate::flows::legs::fingerprint;
use crate::flows::pipeline::Analysis;
use crate::flows::{Connection, Form};
use crate::topology::view::IpView;
use crate::topology::{FrameRef, VantageId};
use locate::Locator;
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// A tunnel's outer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OuterHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub kind: TunnelKind,
}

/// An ICMP error about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IcmpError {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// Next-hop MTU of "fragmentation needed" / "packet too big".
    pub mtu: Option<u32>,
}

/// A TCP segment's header fields a ladder shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
}

/// One packet of a connection as one vantage point captured it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracedPacket {
    /// Capture, interface (the vantage point), frame number and the capture's own time.
    pub frame: FrameRef,
    /// The time by the reference clock (the capture's time less its clock offset).
    pub at_ns: i64,
    pub form: Form,
    /// The (inner) IP packet's ends: for an ICMP error, its own sender and receiver (port 0).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer: Option<OuterHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Segment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpError>,
    pub payload_len: u32,
    /// The packet's identity, the same at every vantage point it passed (wrapped or not).
    #[serde(skip)]
    pub identity: u64,
    /// Sequence space this vantage point saw the same way before (TCP).
    pub retransmission: bool,
}

impl TracedPacket {
    pub fn vantage(&self) -> VantageId {
        self.frame.vantage()
    }

    fn of(f: &DecodedFrame, v: &IpView, form: Form, offset_ns: i64) -> TracedPacket {
        let (sp, dp) = v.ports();
        let icmp = v.icmp().map(|i| IcmpError {
            v6: i.v6,
            icmp_type: i.icmp_type,
            code: i.code,
            mtu: i.mtu,
        });
        TracedPacket {
            frame: FrameRef::of(f),
            at_ns: f.ts_ns - offset_ns,
            form,
            src: SocketAddr::new(v.ip.src, sp),
            dst: SocketAddr::new(v.ip.dst, dp),
            outer: v.outer.map(|o| OuterHeader {
                src: o.ip.src,
                dst: o.ip.dst,
                kind: o.kind,
            }),
            tcp: v.tcp().map(|t| Segment {
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
            }),
            icmp,
            payload_len: v.payload().0,
            identity: if icmp.is_some() { 0 } else { fingerprint(v) },
            retransmission: false,
        }
    }

    /// The end of the sequence space the segment takes (SYN and FIN count one), when it
    /// takes any.
    fn seq_end(&self) -> Option<u32> {
        let t = self.tcp?;
        let flags = u32::from(t.flags & (Tcp::SYN | Tcp::FIN) != 0);
        let len = self.payload_len + flags;
        (len > 0).then(|| t.seq.wrapping_add(len))
    }
}

/// The packets of some connections, each list in order of reference time.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    pub packets: Vec<Vec<TracedPacket>>,
    /// Packets of each connection past the limit, counted but not kept.
    pub left_out: Vec<u64>,
    /// Captures that could not be read again, and why.
    pub unread: Vec<String>,
}

/// Reads every capture again and gathers the packets of `conns` (connections of `analysis`),
/// at most `limit` per connection (the first by capture, then frame order).
pub fn collect(
    files: &[CaptureSource],
    decode: DecodeOptions,
    analysis: &Analysis,
    conns: &[&Connection],
    limit: usize,
) -> Traces {
    let locator = Locator::new(conns, &analysis.clock_offsets);
    let offsets: HashMap<VantageId, i64> = analysis
        .clock_offsets
        .iter()
        .map(|o| (o.vantage, o.offset_ns))
        .collect();
    let mut traces = Traces {
        packets: vec![Vec::new(); conns.len()],
        left_out: vec![0; conns.len()],
        unread: Vec::new(),
    };
    let errors = reread::read_again(files, decode, analysis, &mut |f| {
        let Some(at) = locator.locate(f) else {
            return;
        };
        let list = &mut traces.packets[at.index];
        if list.len() >= limit {
            traces.left_out[at.index] += 1;
            return;
        }
        let Some(v) = IpView::of(&f.packet) else {
            return;
        };
        let offset = offsets
            .get(&FrameRef::of(f).vantage())
            .copied()
            .unwrap_or(0);
        list.push(TracedPacket::of(f, &v, at.form, offset));
    });
    traces.unread = errors.into_iter().flatten().collect();
    for list in &mut traces.packets {
        mark_retransmissions(list);
        list.sort_by_key(|p| (p.at_ns, p.frame.capture, p.frame.frame));
    }
    traces
}

/// Marks the segments that take sequence space a vantage point already saw going the same
/// way in the same form. `list` is in capture order, which is each vantage point's own time
/// order. Per form: a director sees every request twice, arriving and leaving wrapped, and the
/// wrapped copy repeats nothing.
fn mark_retransmissions(list: &mut [TracedPacket]) {
    let mut highest: HashMap<(VantageId, Form), u32> = HashMap::default();
    for p in list.iter_mut().filter(|p| p.icmp.is_none()) {
        let Some(end) = p.seq_end() else {
            continue;
        };
        match highest.entry((p.vantage(), p.form)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                // Sequence numbers wrap: "not after" is a signed difference.
                if (end.wrapping_sub(*e.get()) as i32) <= 0 {
                    p.retransmission = true;
                } else {
                    e.insert(end);
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(end);
            }
        }
    }
}

/// The connection each example and evidence frame the legs kept belongs to: what a finding's
/// evidence packets point at ([`crate::checks::finding::PacketRef`] names a capture and a frame),
/// found without reading the captures again. Keyed by (capture, frame number); a frame a leg
/// did not keep is not there.
pub fn connections_by_frame(
    conns: &[&Connection],
) -> HashMap<(crate::capture::frame::CaptureId, u64), usize> {
    let mut out = HashMap::default();
    for (i, c) in conns.iter().enumerate() {
        for at in frames_kept(c) {
            out.entry(at).or_insert(i);
        }
    }
    out
}

/// The frames a connection's legs kept, as (capture, frame number): the first packet of each
/// form and the first of each piece of evidence, at every vantage point (what findings cite).
pub fn frames_kept(
    c: &Connection,
) -> impl Iterator<Item = (crate::capture::frame::CaptureId, u64)> + '_ {
    c.legs.iter().flat_map(|leg| {
        let firsts = Form::ALL
            .iter()
            .filter_map(|f| leg.form(*f))
            .map(|d| d.first);
        firsts
            .chain(leg.evidence.iter().map(|e| e.first))
            .map(|at| (at.capture, at.frame))
    })
}
