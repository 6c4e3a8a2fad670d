//! Pass 1: cheap facts about one vantage point, gathered one frame at a time.
//!
//! Memory is bounded by the number of distinct (hosts, MACs, service ports) seen, not by packets
//! or connections: client ports are folded away by keeping only the server side's port.

use super::gue::GueEvidence;
use super::view::{is_unicast, IpView};
use super::{FrameRef, MacAddr, Proto, VantageId};
use crate::decode::ip::{PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_TCP, PROTO_UDP};
use crate::decode::packet::{DecodedFrame, IpPacket, Link, Mac, Net, Tcp, Transport};
use flow_table::PackedFlow;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;
use std::net::IpAddr;

mod flow_table;
pub use flow_table::FlowTable;

/// Cut frames kept as examples per vantage point: enough to find them in Wireshark.
pub const MAX_CUT_EXAMPLES: usize = 5;

/// What a vantage point's packets add up to, for judging the capture itself rather than the
/// deployment (the `capture.*` checks): what arrived and left, and what the snap length cut off
/// before the headers lvscheck reads. A capture filter that drops IP protocol 4 leaves requests
/// arriving at a director and no tunnelled packet; a snap length too short for the inner
/// headers leaves tunnelled packets whose connection cannot be read. Both look like a director
/// that forwards nothing unless they are told apart here.
///
/// The frames named here are left out of users' JSON (the topology's `packets`) and kept in
/// the full state ([`crate::full_state`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketCounts {
    /// Plain TCP/UDP packets to a VIP, plain packets from a VIP, and tunnelled packets whose
    /// inner destination is a VIP (filled in by `discover`, which knows the VIPs).
    pub requests: u64,
    pub replies: u64,
    pub tunnelled: u64,
    /// Every tunnelled frame (IP-in-IP, GRE, GUE), whatever it carries and whether or not its
    /// inner headers could be read: none at all is what a filter such as `tcp port 80` leaves.
    pub tunnel_frames: u64,
    /// Tunnelled frames whose inner IP header or fixed TCP/UDP header (ports, sequence numbers,
    /// flags) the snap length cut off: their connection cannot be told.
    pub tunnel_cut: u64,
    /// Plain frames whose TCP/UDP header the snap length cut off.
    pub plain_cut: u64,
    /// The first cut frames, in file order.
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub cut_examples: SmallVec<[FrameRef; MAX_CUT_EXAMPLES]>,
    /// The earliest and the latest frame (this capture's own clock).
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub earliest: Option<FrameRef>,
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub latest: Option<FrameRef>,
    /// The first plain request to a VIP and the first reply from one, in file order (filled in
    /// by `discover`): evidence for what a capture shows arriving or leaving.
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub first_request: Option<FrameRef>,
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub first_reply: Option<FrameRef>,
}

impl PacketCounts {
    /// Frames whose headers were cut, tunnelled or not.
    pub fn cut(&self) -> u64 {
        self.tunnel_cut + self.plain_cut
    }

    fn push(&mut self, f: &DecodedFrame) {
        // Built only when kept: in time order only `latest` changes.
        let at = || FrameRef::of(f);
        if self.earliest.is_none_or(|e| f.ts_ns < e.ts_ns) {
            self.earliest = Some(at());
        }
        if self.latest.is_none_or(|l| f.ts_ns >= l.ts_ns) {
            self.latest = Some(at());
        }
        let Net::Ip(p) = &f.packet.net else { return };
        let (tunnelled, cut) = headers_cut(p);
        self.tunnel_frames += u64::from(tunnelled);
        if !cut {
            return;
        }
        if tunnelled {
            self.tunnel_cut += 1;
        } else {
            self.plain_cut += 1;
        }
        if self.cut_examples.len() < MAX_CUT_EXAMPLES {
            self.cut_examples.push(at());
        }
    }
}

/// Whether a packet is tunnelled, and whether the headers lvscheck reads (the inner ones when
/// tunnelled) end before they are whole because the frame was cut (the IP header declares more
/// than was captured): a snap length, not a malformed packet.
fn headers_cut(p: &IpPacket) -> (bool, bool) {
    let cut = |ip: &IpPacket| ip.ip.captured_len < ip.ip.total_len;
    match &p.transport {
        Transport::Tunnel { inner, .. } => (
            true,
            matches!(inner.transport, Transport::Malformed { .. }) && cut(inner),
        ),
        // Not even the inner IP header could be read.
        Transport::Malformed { .. }
            if matches!(p.ip.protocol, PROTO_IPIP | PROTO_IPV6 | PROTO_GRE) =>
        {
            (true, cut(p))
        }
        Transport::Malformed { .. } if matches!(p.ip.protocol, PROTO_TCP | PROTO_UDP) => {
            (false, cut(p))
        }
        _ => (false, false),
    }
}

/// The tunnel around a group of packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelFact {
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    /// IP protocol of the outer header: 4 (IPIP), 41, 47 (GRE), 17 (GUE).
    pub outer_proto: u8,
}

/// A group of packets with the same hosts, MACs, service port and tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowFact {
    pub tunnel: Option<TunnelFact>,
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    pub sll_packet_type: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Proto,
    /// The service side's port (see [`IpView::server_side`]); for tunnelled packets the inner
    /// destination port, since whatever is tunnelled goes to the VIP.
    pub server_port: u16,
    pub to_server: bool,
}

impl FlowFact {
    /// The group of a frame's packet ([`IpView`] of it, and which side is the server's).
    fn of(link: &Link, v: &IpView, server_port: u16, to_server: bool) -> FlowFact {
        FlowFact {
            tunnel: v.outer.map(|o| TunnelFact {
                outer_src: o.ip.src,
                outer_dst: o.ip.dst,
                outer_proto: o.ip.protocol,
            }),
            src_mac: link.src_mac.map(MacAddr),
            dst_mac: link.dst_mac.map(MacAddr),
            sll_packet_type: link.sll_packet_type,
            src: v.ip.src,
            dst: v.ip.dst,
            proto: Proto(v.ip.protocol),
            server_port,
            to_server,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlowCount {
    pub packets: u64,
    /// TCP SYN without ACK.
    pub syns: u64,
    pub first: FrameRef,
}

/// Who asked for or claimed an address on the link: an ARP packet, or an IPv6 neighbour
/// discovery message put in ARP's terms ([`VantageFacts::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArpFact {
    pub operation: u16,
    pub sender_ip: IpAddr,
    pub sender_mac: MacAddr,
    pub target_ip: IpAddr,
    /// Neighbour discovery (ICMPv6), not ARP.
    pub nd: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArpCount {
    pub count: u64,
    pub first: FrameRef,
}

/// A neighbour discovery message in ARP's terms. A solicitation is a request from its source
/// address for the target; an advertisement is a reply from the target address, with the MAC
/// of its option (else the frame's), or an announcement when unsolicited (as a gratuitous ARP
/// is). A solicitation from the unspecified address (duplicate address detection) claims
/// nothing, and a message without any MAC (a raw IP capture) cannot name a host: neither is
/// kept.
fn nd_fact(v: &IpView, link: &Link, nd: crate::decode::packet::Nd) -> Option<ArpFact> {
    let mac = MacAddr(nd.lladdr.or(link.src_mac)?);
    let target = IpAddr::V6(nd.target);
    if nd.advertisement {
        Some(ArpFact {
            operation: 2,
            sender_ip: target,
            sender_mac: mac,
            target_ip: if nd.solicited { v.ip.dst } else { target },
            nd: true,
        })
    } else {
        (!v.ip.src.is_unspecified()).then_some(ArpFact {
            operation: 1,
            sender_ip: v.ip.src,
            sender_mac: mac,
            target_ip: target,
            nd: true,
        })
    }
}

/// A frame's source and destination MACs, when it has both and goes to one host: the frames
/// [`VantageFacts::mac_frames`] counts.
fn unicast_macs(link: &Link) -> Option<(Mac, Mac)> {
    match (link.src_mac, link.dst_mac) {
        (Some(s), Some(d)) if is_unicast(&d) => Some((s, d)),
        _ => None,
    }
}

/// What one vantage point saw, summed up. Its JSON is the full state's
/// ([`crate::full_state`]): users' JSON never holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VantageFacts {
    pub vantage: VantageId,
    pub link_type: u32,
    pub frames: u64,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub unicast_frames: u64,
    /// [`VantageFacts::mac_frames`] of the frames that belong to no group of `flows` (ARP,
    /// other protocols, fragments): those of a group are counted with it.
    #[serde(with = "crate::full_state::pairs")]
    macs_aside: HashMap<MacAddr, u64>,
    pub flows: FlowTable,
    #[serde(with = "crate::full_state::pairs")]
    pub arp: HashMap<ArpFact, ArpCount>,
    pub counts: PacketCounts,
    /// GUE-shaped UDP and the plain packets to compare it with ([`super::gue`]).
    pub gue: GueEvidence,
    /// VRRP, sync messages, gratuitous ARP, who forwarded when ([`super::failover`]).
    pub control: super::failover::ControlFacts,
}

impl VantageFacts {
    pub fn new(vantage: VantageId, link_type: u32) -> VantageFacts {
        VantageFacts {
            vantage,
            link_type,
            frames: 0,
            first_ts_ns: None,
            last_ts_ns: None,
            unicast_frames: 0,
            macs_aside: HashMap::default(),
            flows: FlowTable::default(),
            arp: HashMap::default(),
            counts: PacketCounts::default(),
            gue: GueEvidence::default(),
            control: Default::default(),
        }
    }

    pub fn push(&mut self, f: &DecodedFrame) {
        self.frames += 1;
        self.first_ts_ns = Some(self.first_ts_ns.map_or(f.ts_ns, |t| t.min(f.ts_ns)));
        self.last_ts_ns = Some(self.last_ts_ns.map_or(f.ts_ns, |t| t.max(f.ts_ns)));
        self.counts.push(f);
        self.gue.push(f);
        let link = &f.packet.link;
        self.unicast_frames += u64::from(unicast_macs(link).is_some());
        if f.packet.control.is_some() || matches!(f.packet.net, Net::Arp(_)) {
            self.control.push(f);
        }
        if let Net::Arp(a) = &f.packet.net {
            self.count_macs_aside(link);
            let key = ArpFact {
                operation: a.operation,
                sender_ip: IpAddr::V4(a.sender_ip),
                sender_mac: MacAddr(a.sender_mac),
                target_ip: IpAddr::V4(a.target_ip),
                nd: false,
            };
            self.count_arp(key, f);
            return;
        }
        let Some(v) = IpView::of(&f.packet) else {
            self.count_macs_aside(link);
            return;
        };
        if let Some(key) = v
            .icmp()
            .and_then(|i| i.nd)
            .and_then(|nd| nd_fact(&v, link, nd))
        {
            self.count_arp(key, f);
        }
        // A piece of a datagram is no packet of its own: the frame that completes the
        // datagram carries it, and a datagram never completed keeps its first fragment.
        if matches!(v.transport, Transport::Fragment) {
            self.count_macs_aside(link);
            return;
        }
        let (server_port, to_server) = if v.outer.is_some() {
            (v.ports().1, true)
        } else {
            v.server_side()
        };
        match (v.outer, link.dst_mac) {
            (Some(o), _) => self.control.tunnelled(o.ip.src, f),
            (None, Some(d)) if to_server && is_unicast(&d) => {
                self.control.sent(v.ip.dst, MacAddr(d), f)
            }
            _ => {}
        }
        let syn = v.tcp().is_some_and(|t| t.has(Tcp::SYN) && !t.has(Tcp::ACK));
        self.flows.add(
            &PackedFlow::of(link, &v, server_port, to_server),
            syn,
            || FlowFact::of(link, &v, server_port, to_server),
            || FrameRef::of(f),
        );
    }

    fn count_arp(&mut self, key: ArpFact, f: &DecodedFrame) {
        self.arp
            .entry(key)
            .or_insert(ArpCount {
                count: 0,
                first: FrameRef::of(f),
            })
            .count += 1;
    }

    /// Counts a frame that joins no group in [`VantageFacts::macs_aside`].
    fn count_macs_aside(&mut self, link: &Link) {
        if let Some((s, d)) = unicast_macs(link) {
            *self.macs_aside.entry(MacAddr(s)).or_default() += 1;
            if d != s {
                *self.macs_aside.entry(MacAddr(d)).or_default() += 1;
            }
        }
    }

    /// For each MAC, the unicast frames it was source or destination of: the frames of the
    /// groups with its MAC, and those counted aside.
    pub fn mac_frames(&self) -> HashMap<MacAddr, u64> {
        let mut frames = self.macs_aside.clone();
        for (k, c) in &self.flows {
            let (Some(s), Some(d)) = (k.src_mac, k.dst_mac) else {
                continue;
            };
            if is_unicast(&d.0) {
                *frames.entry(s).or_default() += c.packets;
                if d != s {
                    *frames.entry(d).or_default() += c.packets;
                }
            }
        }
        frames
    }

    /// The capturing host's MAC: one MAC in at least 80% of the unicast frames. A mirror port or
    /// a bridge, which carries several hosts' traffic, has none.
    ///
    /// In a small capture several MACs can qualify (a client and the one server it talks to);
    /// `rank` then orders them (higher first): the caller knows from all captures together which
    /// MACs are clients' and which are servers'.
    pub fn local_mac(&self, rank: impl Fn(MacAddr) -> i32) -> Option<MacAddr> {
        self.local_mac_candidates()
            .into_iter()
            .max_by_key(|(m, n)| (rank(*m), *n, *m))
            .map(|(m, _)| m)
    }

    /// MACs in at least 80% of the unicast frames, with their frame counts. When none is, the
    /// frames to a MAC that sent no unicast frame here are left out: a switch floods a frame
    /// whose destination it no longer knows (a dead host) to every port, as when a director
    /// dies and clients go on sending to its MAC, so a backup director's own capture holds
    /// frames that are neither its own nor a mirror's.
    pub fn local_mac_candidates(&self) -> Vec<(MacAddr, u64)> {
        let plain = self.candidates_without(|_, _| false);
        if !plain.is_empty() {
            return plain;
        }
        let senders: BTreeSet<MacAddr> = self
            .flows
            .keys()
            .filter(|k| k.dst_mac.is_some_and(|d| is_unicast(&d.0)))
            .filter_map(|k| k.src_mac)
            // ARP replies (unicast as a rule): a real server tells the director its MAC,
            // and is sent tunnelled packets it never answers through this port.
            .chain(
                self.arp
                    .keys()
                    .filter(|a| a.operation == 2 && a.sender_ip != a.target_ip)
                    .map(|a| a.sender_mac),
            )
            .collect();
        self.candidates_without(|_, d| !senders.contains(d))
    }

    /// MACs in at least 80% of the unicast frames but those `flooded` says (source,
    /// destination) passed this host by. Flooding is the exception on a host's port: when
    /// more than half of the frames would be left out, all count (a mirror's capture).
    fn candidates_without(
        &self,
        flooded: impl Fn(&MacAddr, &MacAddr) -> bool,
    ) -> Vec<(MacAddr, u64)> {
        let mut frames = self.mac_frames();
        let mut unicast = self.unicast_frames;
        for (k, c) in &self.flows {
            let (Some(s), Some(d)) = (k.src_mac, k.dst_mac) else {
                continue;
            };
            if is_unicast(&d.0) && s != d && flooded(&s, &d) {
                unicast -= c.packets.min(unicast);
                for m in [s, d] {
                    if let Some(n) = frames.get_mut(&m) {
                        *n -= c.packets.min(*n);
                    }
                }
            }
        }
        if unicast * 2 < self.unicast_frames {
            frames = self.mac_frames();
            unicast = self.unicast_frames;
        }
        frames
            .into_iter()
            .filter(|(_, n)| unicast > 0 && *n > 0 && *n * 5 >= unicast * 4)
            .collect()
    }

    /// Whether frames carry a Linux cooked header (which says their direction).
    pub fn has_sll(&self) -> bool {
        self.flows.keys().any(|k| k.sll_packet_type.is_some())
    }

    /// Whether frames carry MAC addresses at all.
    pub fn has_macs(&self) -> bool {
        self.flows.keys().any(|k| k.src_mac.is_some())
    }
}
