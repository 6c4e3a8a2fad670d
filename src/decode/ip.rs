//! IPv4 and IPv6 packets, their headers read by `ip_header` so that a packet cut short by
//! the snap length still yields its header; fragments are flagged, fed to the
//! [`Decoder`](super::Decoder)'s reassembly table when there is one, and the payload goes to the
//! transport, tunnel or ICMP decoder of its protocol number.

use etherparse::{IpNumber, Ipv6ExtensionsSlice};
use std::net::IpAddr;

use super::defect::{Defect, IpDefect};
use super::ip_header::{self, FragInfo, IpLayer};
use super::packet::{IpHeader, IpPacket, Transport};
use super::reassembly::{FragKey, FragOutcome};
use super::{icmp, offset_in, transport, tunnel, Ctx, MAX_IP_LAYERS};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_ICMPV6: u8 = 58;

/// The bytes an IP header carries, as the transport decoders see them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Body<'a> {
    /// The IP packet from its first byte, for its source address (GUE is decoded per tunnel
    /// source), read only when needed: a copy of the decoded `IpHeader::src` would reread
    /// what was just written, which stalls.
    pub ip: &'a [u8],
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

impl Body<'_> {
    /// Source address of the IP header.
    pub fn src(&self) -> IpAddr {
        // A Body is made once the header was read whole: the bytes are there.
        if self.outer_v6 {
            let src: Option<[u8; 16]> = self.ip.get(8..24).and_then(|b| b.try_into().ok());
            IpAddr::from(src.unwrap_or_default())
        } else {
            let src: Option<[u8; 4]> = self.ip.get(12..16).and_then(|b| b.try_into().ok());
            IpAddr::from(src.unwrap_or_default())
        }
    }
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

/// Decodes one IP packet at nesting `depth` (0 = the frame's outermost) into `out`. `Err` when
/// not even the IP header can be read, with the reason (`out` then holds no packet: the caller
/// replaces it or gives its box back).
///
/// Every layer is written where it will stay, never built aside and moved: such a move reads
/// in wide words what was just written field by field, which stalls the CPU (no store-to-load
/// forwarding) and was most of the decode's time.
pub(crate) fn decode_ip(
    data: &[u8],
    depth: u8,
    ctx: &mut Ctx,
    out: &mut IpPacket,
) -> Result<(), IpDefect> {
    if depth >= MAX_IP_LAYERS {
        return Err(IpDefect::TooDeep);
    }
    if data.is_empty() {
        return Err(IpDefect::Missing);
    }
    let IpPacket {
        ip: header,
        transport,
    } = out;
    let IpLayer {
        declared_total,
        frag,
        body,
        ext_defect,
    } = match ip_header::plain_ipv4(data) {
        Some(h) => ip_header::read_plain_ipv4(data, h, header),
        None => ip_header::read_lax(data, header)?,
    };
    let captured_total = declared_total.map_or(data.len(), |t| t.min(data.len()));
    header.captured_len = captured_total as u32;

    if !header.is_fragment() {
        match ext_defect {
            Some(reason) => *transport = Transport::Malformed { reason },
            None => decode_body(&body, depth, ctx, mode(ctx, false), transport),
        }
        return Ok(());
    }

    let Some(frag) = frag else {
        // Unreachable: only a fragment header (IPv6) or the IPv4 header flags a fragment.
        *transport = Transport::Fragment;
        return Ok(());
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
                reassembled(header, &frag, &datagram, &body, depth, ctx, transport);
                if let Some(r) = ctx.reassembler.as_deref_mut() {
                    r.recycle(datagram);
                }
                return Ok(());
            }
            FragOutcome::Rejected(reason) => {
                *transport = Transport::Malformed { reason };
                return Ok(());
            }
            FragOutcome::Pending(id) => pending = Some(id),
        }
    }
    if frag.offset == 0 && ext_defect.is_none() {
        // A first fragment is decoded from the bytes it has: when its datagram never
        // completes, that is all the capture says of it. Those bytes are not the whole
        // datagram, so nothing inside them (a tunnelled fragment) goes into the table.
        let reassembler = ctx.reassembler.take();
        decode_body(&body, depth, ctx, mode(ctx, true), transport);
        ctx.reassembler = reassembler;
        // Whether the frame is a packet or a piece of one depends on what comes later: the
        // Decoder holds it back until the datagram completes or leaves the table.
        if !matches!(transport, Transport::Fragment) && ctx.held.is_none() {
            ctx.held = pending;
        }
    } else {
        *transport = Transport::Fragment;
    }
    Ok(())
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
    out: &mut Transport,
) {
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
        behind_auth_or_routing |= ip_header::auth_or_routing(frag.protocol, exts);
        (protocol.0, rest, error)
    } else {
        (frag.protocol, datagram, None)
    };
    header.protocol = protocol;
    if let Some((error, layer)) = ext_error {
        *out = Transport::Malformed {
            reason: Defect::Ipv6Extension { error, layer },
        };
        return;
    }
    let body = Body {
        ip: first.ip,
        protocol,
        bytes,
        declared_len: bytes.len(),
        outer_v6,
        behind_auth_or_routing,
    };
    decode_body(&body, depth, ctx, mode(ctx, false), out)
}

/// Decodes what an IP header carries by its protocol number, into `out`.
pub(crate) fn decode_body(body: &Body, depth: u8, ctx: &mut Ctx, mode: Mode, out: &mut Transport) {
    match body.protocol {
        PROTO_TCP => transport::decode_tcp(body, mode, out),
        PROTO_UDP => transport::decode_udp(body, depth, ctx, mode, out),
        PROTO_SCTP => transport::decode_sctp(body, mode, out),
        PROTO_ICMP => *out = icmp::decode_icmp(body, false, depth, ctx),
        PROTO_ICMPV6 => *out = icmp::decode_icmp(body, true, depth, ctx),
        PROTO_IPIP | PROTO_IPV6 if body.behind_auth_or_routing => *out = Transport::Other,
        PROTO_IPIP | PROTO_IPV6 => tunnel::decode_ip_in_ip(body, depth, ctx, out),
        PROTO_GRE => tunnel::decode_gre(body, depth, ctx, out),
        super::vrrp::PROTO_VRRP => {
            // Only a director's own advertisement, not one quoted or tunnelled.
            if depth == 0 && !ctx.quoted {
                ctx.control = super::vrrp::VrrpView::parse(body.bytes, body.outer_v6)
                    .map(|v| super::Control::Vrrp(v.summary()));
            }
            *out = Transport::Other
        }
        _ => *out = Transport::Other,
    }
    if mode == Mode::FirstFragment && matches!(out, Transport::Malformed { .. }) {
        *out = Transport::Fragment;
    }
}
