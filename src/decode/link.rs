//! Link layers: Ethernet (with 802.1Q / QinQ tags), Linux cooked SLL and SLL2, raw IP and BSD
//! null/loopback. Each reads its fixed header, fills [`Link`] and hands the payload with its
//! ethertype to the network layer.

use super::defect::Defect;
use super::packet::{IpPacket, Link, Net, Packet};
use super::{arp, be16, be32, ip, Ctx};

/// The pcap / pcapng link types we decode (the LINKTYPE_* numbers of tcpdump.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// 0: 4-byte address family in the capturing host's byte order.
    Null,
    /// 1
    Ethernet,
    /// 101, and the BSD values 12 and 14: the frame is an IP packet.
    RawIp,
    /// 108: OpenBSD loopback, like null but the family is big-endian.
    Loop,
    /// 113
    LinuxSll,
    /// 228
    Ipv4,
    /// 229
    Ipv6,
    /// 276
    LinuxSll2,
}

impl LinkType {
    pub fn from_number(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Bytes before the network layer (without VLAN tags): what a snap length must keep
    /// before the first byte of IP.
    pub fn header_len(self) -> usize {
        match self {
            LinkType::Null | LinkType::Loop => null::LEN,
            LinkType::Ethernet => ethernet::LEN,
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => 0,
            LinkType::LinuxSll => sll::LEN,
            LinkType::LinuxSll2 => sll2::LEN,
        }
    }
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

mod ethernet {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const LEN: usize = 14;
}

mod vlan {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const LEN: usize = 4;
    pub const ID_MASK: u16 = 0x0fff;
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL).
mod sll {
    use std::ops::Range;
    pub const PACKET_TYPE: usize = 0;
    pub const ADDR_LEN: usize = 4;
    pub const ADDR: Range<usize> = 6..14;
    pub const PROTOCOL: usize = 14;
    pub const LEN: usize = 16;
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2).
mod sll2 {
    use std::ops::Range;
    pub const PROTOCOL: usize = 0;
    pub const IFINDEX: usize = 4;
    pub const PACKET_TYPE: usize = 10;
    pub const ADDR_LEN: usize = 11;
    pub const ADDR: Range<usize> = 12..20;
    pub const LEN: usize = 20;
}

/// SLL protocol values below this are not ethertypes but Linux "non-standard" protocol ids
/// (802.3, 802.2 LLC, CAN, ...).
const MIN_ETHERTYPE: u16 = 0x0600;
/// ARPHRD_NETLINK: the SLL protocol field is a netlink family then.
const ARPHRD_NETLINK: u16 = 824;

mod null {
    pub const LEN: usize = 4;
    pub const AF_INET: u32 = 2;
    /// AF_INET6 as NetBSD/OpenBSD, FreeBSD and macOS number it.
    pub const AF_INET6: [u32; 3] = [24, 28, 30];
}

/// Decodes a frame into `packet`, every layer written in place (see [`ip::decode_ip`]).
pub(crate) fn decode_frame(link_type: u32, data: &[u8], ctx: &mut Ctx, packet: &mut Packet) {
    packet.link = Link::default();
    let (link, net) = (&mut packet.link, &mut packet.net);
    match LinkType::from_number(link_type) {
        None => *net = malformed(Defect::LinkType(link_type)),
        Some(LinkType::Ethernet) => ethernet(data, link, ctx, net),
        Some(LinkType::LinuxSll) => linux_sll(data, link, ctx, net),
        Some(LinkType::LinuxSll2) => linux_sll2(data, link, ctx, net),
        Some(LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6) => ip_layer(data, ctx, net),
        Some(LinkType::Null) => null(data, ctx, true, net),
        Some(LinkType::Loop) => null(data, ctx, false, net),
    }
    packet.gue_shaped = ctx.gue_shaped.take();
    packet.control = ctx.control.take();
}

fn malformed(reason: Defect) -> Net {
    Net::Malformed { reason }
}

/// The link header is shorter than its fixed length.
fn cut_short(what: &'static str, have: usize, need: usize) -> Net {
    malformed(Defect::CutShort { what, have, need })
}

fn mac(b: &[u8]) -> Option<[u8; 6]> {
    b.get(..6)?.try_into().ok()
}

fn ethernet(data: &[u8], link: &mut Link, ctx: &mut Ctx, net: &mut Net) {
    if data.len() < ethernet::LEN {
        *net = cut_short("Ethernet header", data.len(), ethernet::LEN);
        return;
    }
    link.dst_mac = mac(&data[ethernet::DST]);
    link.src_mac = mac(&data[ethernet::SRC]);
    let ether_type = be16(data, ethernet::ETHERTYPE).unwrap_or(0);
    ether_payload(ether_type, &data[ethernet::LEN..], link, ctx, net)
}

/// Walks VLAN tags, then decodes the network layer.
fn ether_payload(
    mut ether_type: u16,
    mut rest: &[u8],
    link: &mut Link,
    ctx: &mut Ctx,
    net: &mut Net,
) {
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        if link.vlans.is_full() {
            *net = malformed(Defect::VlanTags);
            return;
        }
        let (Some(tci), Some(next)) = (be16(rest, vlan::TCI), be16(rest, vlan::ETHERTYPE)) else {
            *net = cut_short("VLAN tag", rest.len(), vlan::LEN);
            return;
        };
        link.vlans.push(tci & vlan::ID_MASK);
        ether_type = next;
        rest = &rest[vlan::LEN..];
    }
    match ether_type {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip_layer(rest, ctx, net),
        ETHERTYPE_ARP => *net = arp::decode_arp(rest),
        other => *net = Net::Other { ether_type: other },
    }
}

/// The frame's outermost IP packet, decoded where it stays (over the last frame's, when that
/// was IP too).
fn ip_layer(data: &[u8], ctx: &mut Ctx, net: &mut Net) {
    if !matches!(net, Net::Ip(_)) {
        *net = Net::Ip(IpPacket::BLANK);
    }
    if let Net::Ip(packet) = net {
        if let Err(defect) = ip::decode_ip(data, 0, ctx, packet) {
            *net = malformed(Defect::Ip(defect));
        }
    }
}

fn linux_sll(data: &[u8], link: &mut Link, ctx: &mut Ctx, net: &mut Net) {
    if data.len() < sll::LEN {
        *net = cut_short("Linux SLL header", data.len(), sll::LEN);
        return;
    }
    link.sll_packet_type = be16(data, sll::PACKET_TYPE);
    let arphrd = be16(data, 2).unwrap_or(0);
    if be16(data, sll::ADDR_LEN) == Some(6) {
        link.src_mac = mac(&data[sll::ADDR]);
    }
    let protocol = be16(data, sll::PROTOCOL).unwrap_or(0);
    cooked_payload(protocol, arphrd, &data[sll::LEN..], link, ctx, net)
}

fn linux_sll2(data: &[u8], link: &mut Link, ctx: &mut Ctx, net: &mut Net) {
    if data.len() < sll2::LEN {
        *net = cut_short("Linux SLL2 header", data.len(), sll2::LEN);
        return;
    }
    let protocol = be16(data, sll2::PROTOCOL).unwrap_or(0);
    link.sll_ifindex = be32(data, sll2::IFINDEX);
    let arphrd = be16(data, 8).unwrap_or(0);
    link.sll_packet_type = Some(u16::from(data[sll2::PACKET_TYPE]));
    if data[sll2::ADDR_LEN] == 6 {
        link.src_mac = mac(&data[sll2::ADDR]);
    }
    cooked_payload(protocol, arphrd, &data[sll2::LEN..], link, ctx, net)
}

fn cooked_payload(
    protocol: u16,
    arphrd: u16,
    rest: &[u8],
    link: &mut Link,
    ctx: &mut Ctx,
    net: &mut Net,
) {
    if arphrd == ARPHRD_NETLINK || protocol < MIN_ETHERTYPE {
        *net = Net::Other {
            ether_type: protocol,
        };
        return;
    }
    ether_payload(protocol, rest, link, ctx, net)
}

/// BSD null (host byte order, so either order is accepted) and OpenBSD loop (big-endian).
fn null(data: &[u8], ctx: &mut Ctx, either_order: bool, net: &mut Net) {
    let Some(header) = data.get(..null::LEN) else {
        *net = cut_short("null/loopback header", data.len(), null::LEN);
        return;
    };
    let raw = [header[0], header[1], header[2], header[3]];
    let be = u32::from_be_bytes(raw);
    let le = u32::from_le_bytes(raw);
    let is = |family: u32| be == family || (either_order && le == family);
    let rest = &data[null::LEN..];
    if is(null::AF_INET) || null::AF_INET6.iter().any(|&f| is(f)) {
        ip_layer(rest, ctx, net)
    } else {
        // Not an ethertype: the family does not fit one; 0 says "no ethertype".
        *net = Net::Other { ether_type: 0 };
    }
}
