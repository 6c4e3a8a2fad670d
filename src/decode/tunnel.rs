//! Tunnels as IPVS builds them, each decoded into the outer packet and a `Transport::Tunnel`
//! holding the inner one: IP-in-IP (protocol 4 and 41, over IPv4 or IPv6), GRE
//! (`--tun-type gre`, RFC 2784 with the RFC 2890 key and sequence) and GUE over UDP
//! (`--tun-type gue`, draft-ietf-intarea-gue variants 0 and 1).
//!
//! GUE has no port of its own: `ipvsadm --tun-port` picks one. A UDP datagram is decoded as GUE
//! when its destination port is one of `DecodeOptions::gue_ports`, or its source and port one
//! of `gue_tunnels`; with `gue_probe`, any other whose payload [`looks_like_gue`] gets the
//! packet it would carry noted ([`gue_shaped`]), for the first pass to confirm or not
//! (`topology::gue`).

use super::defect::Defect;
use super::ip::{self, Body, PROTO_IPIP, PROTO_IPV6};
use super::link::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::packet::{GueShape, Transport, TunnelKind, Udp};
use super::{be16, Ctx, DecodeOptions};

/// Decodes the inner packet of a tunnel into a box of its own, and writes the tunnel to `out`.
fn tunnel(
    kind: TunnelKind,
    udp: Option<Udp>,
    inner: &[u8],
    depth: u8,
    ctx: &mut Ctx,
    out: &mut Transport,
) {
    let mut packet = ctx.boxes.take();
    *out = match ip::decode_ip(inner, depth.saturating_add(1), ctx, &mut packet) {
        Ok(()) => Transport::Tunnel {
            tunnel: kind,
            udp,
            inner: packet,
        },
        Err(defect) => {
            ctx.boxes.give_back(packet);
            Transport::Malformed {
                reason: Defect::TunnelInner {
                    tunnel: kind,
                    defect,
                },
            }
        }
    }
}

/// IP protocol 4 or 41: the payload is the inner packet.
pub(crate) fn decode_ip_in_ip(body: &Body, depth: u8, ctx: &mut Ctx, out: &mut Transport) {
    let kind = match (body.outer_v6, body.protocol) {
        (true, _) => TunnelKind::IpInIpv6,
        (false, PROTO_IPV6) => TunnelKind::Ipv6InIpv4,
        (false, _) => TunnelKind::IpIp,
    };
    // The protocol number says which IP version is inside (4: IPv4, 41: IPv6); the kernel's
    // ipip and ip6_tunnel handlers drop a packet whose version nibble says otherwise.
    let version = body.bytes.first().map(|b| b >> 4);
    let expected = if body.protocol == PROTO_IPV6 { 6 } else { 4 };
    if let Some(version) = version.filter(|&v| v != expected) {
        *out = Transport::Malformed {
            reason: Defect::TunnelVersion {
                tunnel: kind,
                version,
                protocol: body.protocol,
            },
        };
        return;
    }
    tunnel(kind, None, body.bytes, depth, ctx, out)
}

mod gre {
    pub const FLAGS: usize = 0;
    pub const PROTOCOL: usize = 2;
    pub const BASE_LEN: usize = 4;
    pub const CHECKSUM_PRESENT: u16 = 0x8000;
    pub const ROUTING_PRESENT: u16 = 0x4000;
    pub const KEY_PRESENT: u16 = 0x2000;
    pub const SEQUENCE_PRESENT: u16 = 0x1000;
    pub const VERSION_MASK: u16 = 0x0007;
    /// Each optional field (checksum + reserved, key, sequence number) is 4 bytes.
    pub const OPTIONAL_FIELD_LEN: usize = 4;
}

/// GRE header fields we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader {
    pub protocol: u16,
    pub checksum: Option<u16>,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    pub header_len: usize,
}

/// Parses a version-0 GRE header without source routing; `Ok(None)` for other versions (PPTP)
/// and RFC 1701 routing, which IPVS never sends.
pub fn parse_gre(b: &[u8]) -> Result<Option<GreHeader>, Defect> {
    let cut_short = |need| Defect::CutShort {
        what: "GRE header",
        have: b.len(),
        need,
    };
    let (Some(flags), Some(protocol)) = (be16(b, gre::FLAGS), be16(b, gre::PROTOCOL)) else {
        return Err(cut_short(gre::BASE_LEN));
    };
    if flags & gre::VERSION_MASK != 0 || flags & gre::ROUTING_PRESENT != 0 {
        return Ok(None);
    }
    let mut at = gre::BASE_LEN;
    let mut field = |present: u16| {
        if flags & present == 0 {
            return None;
        }
        let here = at;
        at += gre::OPTIONAL_FIELD_LEN;
        Some(here)
    };
    let checksum_at = field(gre::CHECKSUM_PRESENT);
    let key_at = field(gre::KEY_PRESENT);
    let sequence_at = field(gre::SEQUENCE_PRESENT);
    if b.len() < at {
        return Err(cut_short(at));
    }
    Ok(Some(GreHeader {
        protocol,
        checksum: checksum_at.and_then(|i| be16(b, i)),
        key: key_at.and_then(|i| super::be32(b, i)),
        sequence: sequence_at.and_then(|i| super::be32(b, i)),
        header_len: at,
    }))
}

pub(crate) fn decode_gre(body: &Body, depth: u8, ctx: &mut Ctx, out: &mut Transport) {
    match parse_gre(body.bytes) {
        Err(reason) => *out = Transport::Malformed { reason },
        Ok(Some(h)) if h.protocol == ETHERTYPE_IPV4 || h.protocol == ETHERTYPE_IPV6 => tunnel(
            TunnelKind::Gre,
            None,
            &body.bytes[h.header_len..],
            depth,
            ctx,
            out,
        ),
        Ok(_) => *out = Transport::Other,
    }
}

mod gue {
    pub const VERSION_SHIFT: u8 = 6;
    pub const CONTROL: u8 = 0x20;
    pub const HLEN_MASK: u8 = 0x1f;
    pub const PROTO_CTYPE: usize = 1;
    pub const BASE_LEN: usize = 4;
}

/// Where the inner packet starts in a GUE data message, and what it should be.
enum GueInner {
    /// Not a data message we decode (control message, unknown protocol, version 2 or 3).
    NotData,
    CutShort(usize),
    /// Offset of the inner packet; the IP protocol number variant 0 names (None in variant 1).
    At(usize, Option<u8>),
}

fn gue_inner(payload: &[u8]) -> GueInner {
    let Some(&first) = payload.first() else {
        return GueInner::NotData;
    };
    match first >> gue::VERSION_SHIFT {
        0 => {
            if first & gue::CONTROL != 0 {
                return GueInner::NotData;
            }
            let header_len = gue::BASE_LEN + usize::from(first & gue::HLEN_MASK) * 4;
            if payload.len() < header_len {
                return GueInner::CutShort(header_len);
            }
            match payload[gue::PROTO_CTYPE] {
                p @ (PROTO_IPIP | PROTO_IPV6) => GueInner::At(header_len, Some(p)),
                _ => GueInner::NotData,
            }
        }
        // Variant 1: the IP header itself; its version nibble (4 = 0100, 6 = 0110) starts 01.
        1 => GueInner::At(0, None),
        _ => GueInner::NotData,
    }
}

/// GUE on a UDP payload, written to `out`; false, leaving `out` alone, when it is not a GUE
/// data message (then it stays plain UDP).
pub(crate) fn decode_gue(
    udp: Udp,
    payload: &[u8],
    depth: u8,
    ctx: &mut Ctx,
    out: &mut Transport,
) -> bool {
    match gue_inner(payload) {
        GueInner::NotData => return false,
        GueInner::CutShort(needed) => {
            *out = Transport::Malformed {
                reason: Defect::CutShort {
                    what: "GUE header",
                    have: payload.len(),
                    need: needed,
                },
            }
        }
        GueInner::At(offset, _) => tunnel(
            TunnelKind::Gue,
            Some(udp),
            &payload[offset..],
            depth,
            ctx,
            out,
        ),
    }
    true
}

/// Whether a UDP payload plausibly is a GUE data message, for finding the GUE port in traffic.
///
/// The rule: variant 0 with the control bit clear, the whole GUE header (4 bytes + 4 × hlen)
/// present, and proto/ctype 4 or 41; or variant 1 (the payload starts with an IP header). Then
/// the inner packet must be an IPv4 header (version 4, IHL ≥ 5, whole header present, header
/// checksum correct) or an IPv6 header (version 6, 40 bytes present), matching proto/ctype in
/// variant 0, whose total length equals the UDP payload length (`payload_len`, from the UDP
/// header, so that a capture cut short still qualifies) minus the GUE header. Random payloads
/// rarely pass the IPv4 checksum and length together; an IPv6 inner relies on the length alone.
pub fn looks_like_gue(payload: &[u8], payload_len: usize) -> bool {
    let GueInner::At(offset, proto) = gue_inner(payload) else {
        return false;
    };
    let inner = &payload[offset..];
    let inner_len = payload_len.saturating_sub(offset);
    match (inner.first().map(|b| b >> 4), proto) {
        (Some(4), None | Some(PROTO_IPIP)) => plausible_ipv4(inner, inner_len),
        (Some(6), None | Some(PROTO_IPV6)) => {
            inner.len() >= 40 && be16(inner, 4).map(|l| 40 + usize::from(l)) == Some(inner_len)
        }
        _ => false,
    }
}

fn plausible_ipv4(h: &[u8], declared: usize) -> bool {
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < 20 || h.len() < header_len {
        return false;
    }
    if be16(h, 2).map(usize::from) != Some(declared) {
        return false;
    }
    // The ones'-complement sum of a correct header, checksum included, is 0xffff.
    let mut sum: u32 = h[..header_len]
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// What a UDP payload carries if it is GUE-shaped ([`looks_like_gue`]): the inner packet's
/// 5-tuple when it is TCP or UDP, decoded from its first bytes. None for any other payload.
/// `ctx` lends its boxes, for a tunnel or an ICMP error inside.
pub(crate) fn gue_shaped(payload: &[u8], payload_len: usize, ctx: &mut Ctx) -> Option<GueShape> {
    if !looks_like_gue(payload, payload_len) {
        return None;
    }
    let GueInner::At(offset, _) = gue_inner(payload) else {
        return None;
    };
    // A look, not a decode: no reassembly, no further probe.
    let opts = DecodeOptions::default();
    let mut look = Ctx {
        opts: &opts,
        reassembler: None,
        boxes: ctx.boxes,
        ts_ns: 0,
        quoted: false,
        held: None,
        gue_shaped: None,
        control: None,
    };
    let mut inner = look.boxes.take();
    let decoded = ip::decode_ip(&payload[offset..], 1, &mut look, &mut inner);
    let carried = decoded.ok().and_then(|()| inner.five_tuple());
    ctx.boxes.give_back(inner);
    Some(GueShape { carried })
}
