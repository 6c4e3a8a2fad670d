//! The layered, owned view of one decoded frame that every later stage reads.
//!
//! Compact value types: addresses, ports, numbers and a hash of the payload; never the payload
//! itself, so that a `Packet` costs the same whatever the frame's size. A layer that could not be
//! decoded ends the chain with a `Malformed` note instead of a panic or a silent drop.

use serde::{Serialize, Serializer};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::defect::{Defect, MAX_VLAN_TAGS};

pub type Mac = [u8; 6];

/// One frame decoded as far as its bytes allow.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Packet {
    pub link: Link,
    pub net: Net,
    /// The outermost IP packet is a UDP datagram, not decoded as GUE, whose payload looks like
    /// a GUE data message (`DecodeOptions::gue_probe`). Only the clients' packets can tell
    /// whether it is a tunnel (`topology::gue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gue_shaped: Option<GueShape>,
    /// The outermost packet is a director's control message: a VRRP advertisement or an IPVS
    /// sync message (the failover between two directors is told from them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

/// A control message between directors, decoded from the outermost packet only (one quoted by
/// an ICMP error or carried by a tunnel is not the director's own).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    Vrrp(super::vrrp::Vrrp),
    /// Boxed (and the box reused by the decoder): the summary holds a few entries.
    IpvsSync(Box<super::ipvs_sync::SyncSummary>),
}

/// What a GUE-shaped UDP payload would carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GueShape {
    /// The inner packet, when it is TCP or UDP (as far as its first bytes go).
    pub carried: Option<FiveTuple>,
}

/// Addresses, protocol and ports of a TCP or UDP packet.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub struct FiveTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl std::fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.protocol {
            6 => "tcp",
            17 => "udp",
            _ => "ip",
        };
        let end = |a: IpAddr, p: u16| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        write!(
            f,
            "{proto} {} -> {}",
            end(self.src, self.src_port),
            end(self.dst, self.dst_port)
        )
    }
}

/// What the link layer said (all optional: raw IP captures have none of it).
#[derive(Debug, Clone, Default, PartialEq, Hash, Serialize)]
pub struct Link {
    pub src_mac: Option<Mac>,
    pub dst_mac: Option<Mac>,
    /// 802.1Q / QinQ VLAN ids, outermost first.
    pub vlans: Vlans,
    /// Linux cooked capture packet type (0 to us, 1 broadcast, 2 multicast, 3 other host,
    /// 4 outgoing), when the capture is SLL or SLL2.
    pub sll_packet_type: Option<u16>,
    /// SLL2 interface index.
    pub sll_ifindex: Option<u32>,
}

/// VLAN ids held inline, up to [`MAX_VLAN_TAGS`] (the decoder calls a frame with more
/// malformed), so that a tagged frame costs no allocation. Reads, compares, hashes and
/// serialises as the slice of the ids present.
#[derive(Clone, Copy, Default)]
pub struct Vlans {
    ids: [u16; MAX_VLAN_TAGS],
    len: u8,
}

impl Vlans {
    /// Appends an id, unless the list [`is_full`](Vlans::is_full) (the decoder checks first:
    /// a frame with more tags is malformed).
    pub fn push(&mut self, id: u16) {
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    pub fn is_full(&self) -> bool {
        usize::from(self.len) == MAX_VLAN_TAGS
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }
}

impl std::ops::Deref for Vlans {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        self.as_slice()
    }
}

impl PartialEq for Vlans {
    fn eq(&self, other: &Vlans) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Vlans {}

impl Hash for Vlans {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::fmt::Debug for Vlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Serialize for Vlans {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Net {
    Arp(Arp),
    Ip(IpPacket),
    /// An ethertype (or link protocol) we do not decode.
    Other {
        ether_type: u16,
    },
    /// The frame ended or was corrupt before a network layer could be read.
    Malformed {
        reason: Defect,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub operation: u16,
    pub sender_mac: Mac,
    pub sender_ip: std::net::Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: std::net::Ipv4Addr,
}

/// One IP header and what it carries. Recursive: a tunnel or an ICMP error carries another, in
/// a box that the [`Decoder`](super::Decoder) reuses from frame to frame.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct IpPacket {
    pub ip: IpHeader,
    pub transport: Transport,
}

/// On the frame with which the stateful `Decoder` completes a fragmented datagram, the header
/// describes the reassembled datagram (offset 0, no more-fragments flag, the whole datagram's
/// lengths) and the transport is decoded from all of it; every other fragment keeps the flags
/// it was captured with (`is_fragment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number of the payload (for IPv6, after extension headers).
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification; IPv6 fragment identification when fragmented, else 0.
    pub id: u32,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in bytes.
    pub fragment_offset: u16,
    /// Total length from the header (IPv4 total length; IPv6 40 + payload length).
    pub total_len: u32,
    /// Bytes of this packet actually present in the frame (less than total_len when cut).
    pub captured_len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    /// IPv4 in IPv4, IP protocol 4 (ipvsadm `-i`, `--tun-type ipip`).
    IpIp,
    /// IPv6 in IPv4, protocol 41.
    Ipv6InIpv4,
    /// IPv6 in IPv6 (41), or IPv4 in IPv6 (4).
    IpInIpv6,
    /// GRE, protocol 47 (`--tun-type gre`).
    Gre,
    /// GUE over UDP (`--tun-type gue`).
    Gue,
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transport {
    Tcp(Tcp),
    Udp(Udp),
    /// SCTP's common header (RFC 9260): IPVS balances SCTP services like TCP and UDP ones.
    Sctp(Sctp),
    Icmp(Icmp),
    Tunnel {
        tunnel: TunnelKind,
        /// For GUE: the UDP header that carried it.
        udp: Option<Udp>,
        inner: Box<IpPacket>,
    },
    /// A non-first fragment (or a first fragment too short for its transport header) that was
    /// not reassembled. A first fragment long enough is decoded from the bytes it has (its
    /// payload length and hash cover that fragment only).
    Fragment,
    /// Transport header cut short or invalid.
    Malformed {
        reason: Defect,
    },
    /// A protocol we do not decode.
    Other,
}

/// In a packet quoted by an ICMP error only the first 8 bytes may be there (ports and sequence
/// number); fields beyond the quoted bytes are 0 / None.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// Flag bits as in the header: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20,
    /// ECE 0x40, CWR 0x80.
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<(u32, u32)>,
    /// Payload length from the IP lengths (not what was captured).
    pub payload_len: u32,
    /// Fingerprint of the captured payload bytes ([`payload_hash`](super::payload_hash): the
    /// first 128), 0 when empty: to match one packet seen in two captures.
    pub payload_hash: u64,
}

impl Tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload length from the UDP length field.
    pub payload_len: u32,
    pub payload_hash: u64,
}

/// An SCTP packet: its ports, verification tag and first chunk's type (1 INIT, 2 INIT ACK, 6
/// ABORT...); the payload is everything after the common header (its chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Sctp {
    pub src_port: u16,
    pub dst_port: u16,
    pub verification_tag: u32,
    pub first_chunk: Option<u8>,
    pub payload_len: u32,
    pub payload_hash: u64,
}

impl Sctp {
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Icmp {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// Next-hop MTU of "fragmentation needed" (v4 type 3 code 4) or "packet too big" (v6 type 2).
    pub mtu: Option<u32>,
    /// Echo identifier and sequence.
    pub echo: Option<(u16, u16)>,
    /// The packet quoted inside an error message, decoded as far as it goes.
    pub quoted: Option<Box<IpPacket>>,
    /// An IPv6 Neighbor Solicitation or Advertisement: the IPv6 counterpart of ARP.
    pub nd: Option<Nd>,
}

/// An ICMPv6 Neighbor Solicitation (type 135) or Neighbor Advertisement (136), RFC 4861.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Nd {
    pub advertisement: bool,
    /// The address asked about or advertised.
    pub target: std::net::Ipv6Addr,
    /// The link-layer address option: the sender's (solicitation, option 1) or the target's
    /// (advertisement, option 2), when it carries an Ethernet address.
    pub lladdr: Option<[u8; 6]>,
    /// Advertisement flags: an answer to a solicitation; replaces a cached address.
    pub solicited: bool,
    pub override_flag: bool,
}

/// A decoded packet together with where and when it was captured: what `topology` and `flows`
/// consume.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct DecodedFrame {
    pub capture: crate::capture::frame::CaptureId,
    pub interface: u32,
    /// Wireshark frame number (from 1) in its file.
    pub number: u64,
    pub ts_ns: i64,
    pub wire_len: u32,
    pub packet: Packet,
}

impl DecodedFrame {
    /// What the decoder writes its first frame over.
    pub(crate) const BLANK: DecodedFrame = DecodedFrame {
        capture: 0,
        interface: 0,
        number: 0,
        ts_ns: 0,
        wire_len: 0,
        packet: Packet::BLANK,
    };
}

impl Packet {
    /// What the decoder writes a frame over.
    pub(crate) const BLANK: Packet = Packet {
        link: Link {
            src_mac: None,
            dst_mac: None,
            vlans: Vlans {
                ids: [0; MAX_VLAN_TAGS],
                len: 0,
            },
            sll_packet_type: None,
            sll_ifindex: None,
        },
        net: Net::Other { ether_type: 0 },
        gue_shaped: None,
        control: None,
    };

    /// The outermost IP packet, if the frame carries IP.
    pub fn ip(&self) -> Option<&IpPacket> {
        match &self.net {
            Net::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

impl IpHeader {
    /// A fragment as captured: more to come or not at offset 0. False on the frame that
    /// completed reassembly (its header then describes the whole datagram).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.fragment_offset != 0
    }

    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

impl IpPacket {
    /// What the decoder writes a packet over.
    pub(crate) const BLANK: IpPacket = IpPacket {
        ip: IpHeader {
            src: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            protocol: 0,
            ttl: 0,
            id: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            total_len: 0,
            captured_len: 0,
        },
        transport: Transport::Other,
    };

    /// Addresses, protocol and ports, for TCP and UDP.
    pub fn five_tuple(&self) -> Option<FiveTuple> {
        let (src_port, dst_port) = match &self.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            Transport::Sctp(c) => (c.src_port, c.dst_port),
            _ => return None,
        };
        Some(FiveTuple {
            src: self.ip.src,
            dst: self.ip.dst,
            protocol: self.ip.protocol,
            src_port,
            dst_port,
        })
    }

    /// The packet inside all tunnels (itself when not tunnelled). ICMP quotes are not entered.
    pub fn innermost(&self) -> &IpPacket {
        let mut packet = self;
        while let Transport::Tunnel { inner, .. } = &packet.transport {
            packet = inner;
        }
        packet
    }

    /// The tunnel this packet carries and the packet inside it.
    pub fn tunnel(&self) -> Option<(TunnelKind, &IpPacket)> {
        match &self.transport {
            Transport::Tunnel { tunnel, inner, .. } => Some((*tunnel, inner)),
            _ => None,
        }
    }

    pub fn tcp(&self) -> Option<&Tcp> {
        match &self.transport {
            Transport::Tcp(tcp) => Some(tcp),
            _ => None,
        }
    }

    pub fn udp(&self) -> Option<&Udp> {
        match &self.transport {
            Transport::Udp(udp) => Some(udp),
            _ => None,
        }
    }

    pub fn icmp(&self) -> Option<&Icmp> {
        match &self.transport {
            Transport::Icmp(icmp) => Some(icmp),
            _ => None,
        }
    }
}
