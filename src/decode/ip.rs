//! IPv4 and IPv6 (with extension headers), read with etherparse's lax slicer so that a packet
//! cut short by the snap length still yields its header; fragments are flagged, fed to the
//! [`Decoder`](super::Decoder)'s reassembly table when there is one, and the payload goes to the
//! transport, tunnel or ICMP decoder of its protocol number.

use etherparse::err::ip::{HeaderError, LaxHeaderSliceError};
use etherparse::err::Layer;
use etherparse::{IpNumber, Ipv6ExtensionsSlice, LaxIpSlice};
use std::net::IpAddr;

use super::defect::{Defect, IpDefect};
use super::packet::{IpHeader, IpPacket, Transport};
use super::reassembly::{FragKey, FragOutcome};
use super::{icmp, offset_in, transport, tunnel, Ctx, MAX_IP_LAYERS};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_ICMPV6: u8 = 58;

const IPV6_HEADER_LEN: usize = 40;
const FRAGMENT_HEADER_LEN: usize = 8;

mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTIONS: u8 = 60;
}

/// The bytes an IP header carries, as the transport decoders see them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Body<'a> {
    /// Source address of the IP header (GUE is decoded per tunnel source).
    pub src: IpAddr,
    pub protocol: u8,
    /// Captured bytes, never beyond what the IP header declares (no Ethernet padding).
    pub bytes: &'a [u8],
    /// Length the IP header declares (larger than `bytes.len()` when the capture cut it).
    pub declared_len: usize,
    pub outer_v6: bool,
    /// An authentication header (IPsec) or an IPv6 routing header (segment routing) stands
    /// between the IP header and this payload. IPVS writes the inner packet right after the
    /// outer header, so an IP payload behind either is IPsec or SRv6, not an LVS tunnel.
    pub behind_auth_or_routing: bool,
}

/// How strictly a transport header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A whole packet: a transport header cut short is malformed.
    Normal,
    /// A first fragment: a transport header cut short just means "a fragment".
    FirstFragment,
    /// Quoted in an ICMP error: truncated by nature, read whatever fields are there.
    Quoted,
}

/// Fragmentation as the header states it, and where the fragmentable bytes start.
struct FragInfo {
    id: u32,
    offset: u16,
    more: bool,
    /// Protocol of the fragmented payload (IPv6: the fragment header's next header).
    protocol: u8,
    /// Offset in the packet of the first fragmentable byte.
    data_start: usize,
}

/// Decodes one IP packet at nesting `depth` (0 = the frame's outermost). `Err` when not even
/// the IP header can be read, with the reason.
pub(crate) fn decode_ip(data: &[u8], depth: u8, ctx: &mut Ctx) -> Result<IpPacket, IpDefect> {
    if depth >= MAX_IP_LAYERS {
        return Err(IpDefect::TooDeep);
    }
    if data.is_empty() {
        return Err(IpDefect::Missing);
    }
    let (slice, ext_error) = LaxIpSlice::from_slice(data).map_err(describe_ip_error)?;
    let payload = slice.payload();
    let payload_offset = offset_in(data, payload.payload);
    let behind_auth_or_routing;
    let (mut header, declared_total, frag) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let header_len = h.slice().len();
            // etherparse reads an IPv4 authentication header as an extension: the payload's
            // protocol then differs from the header's.
            behind_auth_or_routing = h.protocol() != payload.ip_number;
            let total = usize::from(h.total_len());
            // A total length below the header length is what TSO/GSO captures show: unknown.
            let declared_total = (total >= header_len).then_some(total);
            let header = IpHeader {
                src: h.source_addr().into(),
                dst: h.destination_addr().into(),
                protocol: payload.ip_number.0,
                ttl: h.ttl(),
                id: u32::from(h.identification()),
                dont_fragment: h.dont_fragment(),
                more_fragments: h.more_fragments(),
                fragment_offset: h.fragments_offset().byte_offset(),
                total_len: u32::from(h.total_len()),
                captured_len: 0,
            };
            let frag = FragInfo {
                id: header.id,
                offset: header.fragment_offset,
                more: header.more_fragments,
                protocol: h.protocol().0,
                data_start: header_len,
            };
            (header, declared_total, Some(frag))
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let payload_len = usize::from(h.payload_length());
            // Payload length 0 is a jumbogram or a TSO capture: unknown.
            let declared_total = (payload_len != 0).then_some(IPV6_HEADER_LEN + payload_len);
            let exts = v6.extensions().slice();
            behind_auth_or_routing = ext_headers(h.next_header().0, exts)
                .any(|(next, _, _)| next == ext::AUTH || next == ext::ROUTING);
            let frag = find_fragment_header(h.next_header().0, exts).map(|(at, f)| FragInfo {
                data_start: offset_in(data, exts) + at + FRAGMENT_HEADER_LEN,
                ..f
            });
            let fragmenting = frag.as_ref().is_some_and(|f| f.more || f.offset != 0);
            let header = IpHeader {
                src: h.source_addr().into(),
                dst: h.destination_addr().into(),
                protocol: payload.ip_number.0,
                ttl: h.hop_limit(),
                id: frag.as_ref().filter(|_| fragmenting).map_or(0, |f| f.id),
                dont_fragment: false,
                more_fragments: frag.as_ref().is_some_and(|f| f.more),
                fragment_offset: frag.as_ref().map_or(0, |f| f.offset),
                total_len: (IPV6_HEADER_LEN + payload_len) as u32,
                captured_len: 0,
            };
            (header, declared_total, frag)
        }
    };
    let captured_total = declared_total.map_or(data.len(), |t| t.min(data.len()));
    header.captured_len = captured_total as u32;
    let body = Body {
        src: header.src,
        protocol: payload.ip_number.0,
        bytes: payload.payload,
        declared_len: declared_total
            .map_or(payload.payload.len(), |t| t.saturating_sub(payload_offset)),
        outer_v6: matches!(slice, LaxIpSlice::Ipv6(_)),
        behind_auth_or_routing,
    };

    if !header.is_fragment() {
        let transport = match ext_error {
            Some((error, layer)) => Transport::Malformed {
                reason: Defect::Ipv6Extension { error, layer },
            },
            None => decode_body(&body, depth, ctx, mode(ctx, false)),
        };
        return Ok(IpPacket {
            ip: header,
            transport,
        });
    }

    let Some(frag) = frag else {
        // Unreachable: only a fragment header (IPv6) or the IPv4 header flags a fragment.
        return Ok(IpPacket {
            ip: header,
            transport: Transport::Fragment,
        });
    };
    // Only whole fragments can be reassembled: a cut one would leave a hole or garbage.
    let whole = declared_total.is_some_and(|t| t <= data.len());
    let mut pending = None;
    if let (Some(reassembler), true) = (ctx.reassembler.as_deref_mut(), whole) {
        let key = FragKey {
            src: header.src,
            dst: header.dst,
            protocol: frag.protocol,
            id: frag.id,
        };
        let end = declared_total.unwrap_or(data.len());
        let fragment = data.get(frag.data_start..end).unwrap_or(&[]);
        match reassembler.add(key, ctx.ts_ns, frag.offset, frag.more, fragment) {
            FragOutcome::Complete(datagram) => {
                let transport = reassembled(&mut header, &frag, &datagram, &body, depth, ctx);
                if let Some(r) = ctx.reassembler.as_deref_mut() {
                    r.recycle(datagram);
                }
                return Ok(IpPacket {
                    ip: header,
                    transport,
                });
            }
            FragOutcome::Rejected(reason) => {
                return Ok(IpPacket {
                    ip: header,
                    transport: Transport::Malformed { reason },
                });
            }
            FragOutcome::Pending(id) => pending = Some(id),
        }
    }
    let transport = if frag.offset == 0 && ext_error.is_none() {
        // A first fragment is decoded from the bytes it has: when its datagram never
        // completes, that is all the capture says of it. Those bytes are not the whole
        // datagram, so nothing inside them (a tunnelled fragment) goes into the table.
        let reassembler = ctx.reassembler.take();
        let transport = decode_body(&body, depth, ctx, mode(ctx, true));
        ctx.reassembler = reassembler;
        // Whether the frame is a packet or a piece of one depends on what comes later: the
        // Decoder holds it back until the datagram completes or leaves the table.
        if !matches!(transport, Transport::Fragment) && ctx.held.is_none() {
            ctx.held = pending;
        }
        transport
    } else {
        Transport::Fragment
    };
    Ok(IpPacket {
        ip: header,
        transport,
    })
}

fn mode(ctx: &Ctx, first_fragment: bool) -> Mode {
    if ctx.quoted {
        Mode::Quoted
    } else if first_fragment {
        Mode::FirstFragment
    } else {
        Mode::Normal
    }
}

/// The frame completed a datagram: the header now describes the whole datagram and the
/// transport is decoded from it.
fn reassembled(
    header: &mut IpHeader,
    frag: &FragInfo,
    datagram: &[u8],
    first: &Body,
    depth: u8,
    ctx: &mut Ctx,
) -> Transport {
    let outer_v6 = first.outer_v6;
    let total = frag.data_start + datagram.len();
    header.fragment_offset = 0;
    header.more_fragments = false;
    header.total_len = total as u32;
    header.captured_len = total as u32;
    let mut behind_auth_or_routing = first.behind_auth_or_routing;
    let (protocol, bytes, ext_error) = if outer_v6 {
        // Extension headers may follow the fragment header, inside the fragmentable part.
        let (_, protocol, rest, error) =
            Ipv6ExtensionsSlice::from_slice_lax(IpNumber(frag.protocol), datagram);
        let exts = &datagram[..offset_in(datagram, rest).min(datagram.len())];
        behind_auth_or_routing |= ext_headers(frag.protocol, exts)
            .any(|(next, _, _)| next == ext::AUTH || next == ext::ROUTING);
        (protocol.0, rest, error)
    } else {
        (frag.protocol, datagram, None)
    };
    header.protocol = protocol;
    if let Some((error, layer)) = ext_error {
        return Transport::Malformed {
            reason: Defect::Ipv6Extension { error, layer },
        };
    }
    let body = Body {
        src: first.src,
        protocol,
        bytes,
        declared_len: bytes.len(),
        outer_v6,
        behind_auth_or_routing,
    };
    decode_body(&body, depth, ctx, mode(ctx, false))
}

/// Decodes what an IP header carries by its protocol number.
pub(crate) fn decode_body(body: &Body, depth: u8, ctx: &mut Ctx, mode: Mode) -> Transport {
    let transport = match body.protocol {
        PROTO_TCP => transport::decode_tcp(body, mode),
        PROTO_UDP => transport::decode_udp(body, depth, ctx, mode),
        PROTO_ICMP => icmp::decode_icmp(body, false, depth, ctx),
        PROTO_ICMPV6 => icmp::decode_icmp(body, true, depth, ctx),
        PROTO_IPIP | PROTO_IPV6 if body.behind_auth_or_routing => Transport::Other,
        PROTO_IPIP | PROTO_IPV6 => tunnel::decode_ip_in_ip(body, depth, ctx),
        PROTO_GRE => tunnel::decode_gre(body, depth, ctx),
        _ => Transport::Other,
    };
    match transport {
        Transport::Malformed { .. } if mode == Mode::FirstFragment => Transport::Fragment,
        other => other,
    }
}

fn describe_ip_error(error: LaxHeaderSliceError) -> IpDefect {
    match error {
        LaxHeaderSliceError::Len(len) => IpDefect::CutShort {
            what: match len.layer {
                Layer::Ipv4Header => "IPv4 header",
                Layer::Ipv6Header => "IPv6 header",
                _ => "IP header",
            },
            have: len.len,
            need: len.required_len,
        },
        LaxHeaderSliceError::Content(HeaderError::UnsupportedIpVersion { version_number }) => {
            IpDefect::Version(version_number)
        }
        LaxHeaderSliceError::Content(HeaderError::Ipv4HeaderLengthSmallerThanHeader { ihl }) => {
            IpDefect::Ipv4HeaderLength(ihl)
        }
    }
}

/// The IPv6 extension headers that etherparse parsed, as (header type, offset, bytes from that
/// offset on). Walked here, bounds-checked, rather than with etherparse's extension iterator:
/// that iterator reads past the end (undefined behaviour, caught by the debug precondition
/// checks) when the lax parse stopped at an extension header cut short. Stops at the first
/// header that is not an extension header or that the bytes do not hold.
fn ext_headers(first: u8, exts: &[u8]) -> impl Iterator<Item = (u8, usize, &[u8])> {
    let mut next = Some(first);
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let kind = next.take()?;
        let header = exts.get(at..)?;
        let len = match kind {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTIONS => {
                (usize::from(*header.get(1)?) + 1) * 8
            }
            ext::AUTH => (usize::from(*header.get(1)?) + 2) * 4,
            ext::FRAGMENT => FRAGMENT_HEADER_LEN,
            _ => return None,
        };
        let here = at;
        next = header.first().copied();
        at = at.checked_add(len)?;
        Some((kind, here, header))
    })
}

/// Finds the fragment header among the IPv6 extension headers, and its offset in them.
fn find_fragment_header(first: u8, exts: &[u8]) -> Option<(usize, FragInfo)> {
    let (_, at, header) = ext_headers(first, exts).find(|(kind, _, _)| *kind == ext::FRAGMENT)?;
    let f = header.get(..FRAGMENT_HEADER_LEN)?;
    let offset_flags = u16::from_be_bytes([f[2], f[3]]);
    Some((
        at,
        FragInfo {
            id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            offset: offset_flags & 0xfff8,
            more: offset_flags & 1 != 0,
            protocol: f[0],
            data_start: 0,
        },
    ))
}
