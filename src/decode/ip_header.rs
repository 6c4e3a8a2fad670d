//! One IP header read into an [`IpHeader`], with what the rest of the decode needs of it
//! ([`IpLayer`]). Plain IPv4 packets, nearly all of the traffic, are read at fixed offsets;
//! everything else (IPv6 and its extension headers, an IPv4 authentication header, a header that
//! cannot be read) goes through etherparse's lax slicer, which also says what is wrong. The two
//! read a plain IPv4 packet alike (tests below).

use etherparse::err::ip::{HeaderError, LaxHeaderSliceError};
use etherparse::err::Layer;
use etherparse::LaxIpSlice;
use std::net::IpAddr;

use super::defect::{Defect, IpDefect};
use super::ip::Body;
use super::offset_in;
use super::packet::IpHeader;

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const FRAGMENT_HEADER_LEN: usize = 8;

mod ipv4 {
    use std::ops::Range;
    pub const TOTAL_LEN: usize = 2;
    pub const ID: usize = 4;
    pub const FLAGS_OFFSET: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
    pub const DONT_FRAGMENT: u16 = 0x4000;
    pub const MORE_FRAGMENTS: u16 = 0x2000;
    /// In units of 8 bytes.
    pub const OFFSET_MASK: u16 = 0x1fff;
}

mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTIONS: u8 = 60;
}

/// Fragmentation as the header states it, and where the fragmentable bytes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FragInfo {
    pub id: u32,
    pub offset: u16,
    pub more: bool,
    /// Protocol of the fragmented payload (IPv6: the fragment header's next header).
    pub protocol: u8,
    /// Offset in the packet of the first fragmentable byte.
    pub data_start: usize,
}

/// What the decode needs of a header besides the [`IpHeader`] fields.
#[derive(Debug)]
pub(crate) struct IpLayer<'a> {
    /// The total length the header states; None when it states none that can be used (an IPv4
    /// total length below the header's, as TSO/GSO captures show; an IPv6 payload length 0,
    /// jumbograms and TSO).
    pub declared_total: Option<usize>,
    /// Fragmentation fields: IPv4 always has them, IPv6 with a fragment header.
    pub frag: Option<FragInfo>,
    pub body: Body<'a>,
    /// An extension header etherparse could not read: the packet's transport is that.
    pub ext_defect: Option<Defect>,
}

/// The fixed part of an IPv4 header whose options are all present and that no authentication
/// header follows; None for any other packet, for [`read_lax`].
#[inline]
pub(crate) fn plain_ipv4(data: &[u8]) -> Option<&[u8; IPV4_MIN_HEADER_LEN]> {
    let h: &[u8; IPV4_MIN_HEADER_LEN] = data.get(..IPV4_MIN_HEADER_LEN)?.try_into().ok()?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let plain = h[0] >> 4 == 4
        && header_len >= IPV4_MIN_HEADER_LEN
        && data.len() >= header_len
        && h[ipv4::PROTOCOL] != ext::AUTH;
    plain.then_some(h)
}

/// A [`plain_ipv4`] header `h` of `data`, read at fixed offsets into `header` (but its
/// `captured_len`): half the cost of the lax slicer and of reading its result back.
#[inline]
pub(crate) fn read_plain_ipv4<'a>(
    data: &'a [u8],
    h: &[u8; IPV4_MIN_HEADER_LEN],
    header: &mut IpHeader,
) -> IpLayer<'a> {
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let protocol = h[ipv4::PROTOCOL];
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let addr = |r: std::ops::Range<usize>| {
        IpAddr::from([h[r.start], h[r.start + 1], h[r.start + 2], h[r.start + 3]])
    };
    let total = usize::from(be16(ipv4::TOTAL_LEN));
    // A total length below the header length is what TSO/GSO captures show: unknown.
    let declared_total = (total >= header_len).then_some(total);
    // The payload ends where the header says, or where the capture does if that is sooner or
    // the header says nothing.
    let end = declared_total
        .filter(|&t| t <= data.len())
        .unwrap_or(data.len());
    let flags_offset = be16(ipv4::FLAGS_OFFSET);
    let id = u32::from(be16(ipv4::ID));
    let offset = (flags_offset & ipv4::OFFSET_MASK) * 8;
    let more = flags_offset & ipv4::MORE_FRAGMENTS != 0;
    *header = IpHeader {
        src: addr(ipv4::SRC),
        dst: addr(ipv4::DST),
        protocol,
        ttl: h[ipv4::TTL],
        id,
        dont_fragment: flags_offset & ipv4::DONT_FRAGMENT != 0,
        more_fragments: more,
        fragment_offset: offset,
        total_len: total as u32,
        captured_len: 0,
    };
    IpLayer {
        declared_total,
        frag: Some(FragInfo {
            id,
            offset,
            more,
            protocol,
            data_start: header_len,
        }),
        body: Body {
            ip: data,
            protocol,
            bytes: &data[header_len..end],
            declared_len: declared_total.map_or(data.len() - header_len, |t| t - header_len),
            outer_v6: false,
            behind_auth_or_routing: false,
        },
        ext_defect: None,
    }
}

/// Any IP header at the start of `data` (not empty), through etherparse's lax slicer, into
/// `header` (but its `captured_len`).
pub(crate) fn read_lax<'a>(data: &'a [u8], header: &mut IpHeader) -> Result<IpLayer<'a>, IpDefect> {
    // Read in place, through references: moving etherparse's result out rereads it in wide
    // words just after it was written field by field, which stalls.
    let parsed = LaxIpSlice::from_slice(data);
    let (slice, ext_error) = match &parsed {
        Ok((slice, ext_error)) => (slice, ext_error),
        Err(error) => return Err(describe_ip_error(error)),
    };
    let payload = slice.payload();
    let payload_offset = offset_in(data, payload.payload);
    let behind_auth_or_routing;
    let (declared_total, frag) = match slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let header_len = h.slice().len();
            // etherparse reads an IPv4 authentication header as an extension: the payload's
            // protocol then differs from the header's.
            behind_auth_or_routing = h.protocol() != payload.ip_number;
            let total = usize::from(h.total_len());
            let declared_total = (total >= header_len).then_some(total);
            *header = IpHeader {
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
            (declared_total, Some(frag))
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let payload_len = usize::from(h.payload_length());
            // Payload length 0 is a jumbogram or a TSO capture: unknown.
            let declared_total = (payload_len != 0).then_some(IPV6_HEADER_LEN + payload_len);
            let exts = v6.extensions().slice();
            behind_auth_or_routing = auth_or_routing(h.next_header().0, exts);
            let frag = find_fragment_header(h.next_header().0, exts).map(|(at, f)| FragInfo {
                data_start: offset_in(data, exts) + at + FRAGMENT_HEADER_LEN,
                ..f
            });
            let fragmenting = frag.as_ref().is_some_and(|f| f.more || f.offset != 0);
            *header = IpHeader {
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
            (declared_total, frag)
        }
    };
    Ok(IpLayer {
        declared_total,
        frag,
        body: Body {
            ip: data,
            protocol: payload.ip_number.0,
            bytes: payload.payload,
            declared_len: declared_total
                .map_or(payload.payload.len(), |t| t.saturating_sub(payload_offset)),
            outer_v6: matches!(slice, LaxIpSlice::Ipv6(_)),
            behind_auth_or_routing,
        },
        ext_defect: ext_error
            .as_ref()
            .map(|(error, layer)| Defect::Ipv6Extension {
                error: error.clone(),
                layer: *layer,
            }),
    })
}

/// Whether an authentication header (IPsec) or a routing header (segment routing) is among
/// the IPv6 extension headers `exts`, the first of type `first`.
pub(crate) fn auth_or_routing(first: u8, exts: &[u8]) -> bool {
    ext_headers(first, exts).any(|(next, _, _)| next == ext::AUTH || next == ext::ROUTING)
}

fn describe_ip_error(error: &LaxHeaderSliceError) -> IpDefect {
    match *error {
        LaxHeaderSliceError::Len(ref len) => IpDefect::CutShort {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::packet::IpPacket;

    /// Reads `data` both ways; None when the fast path does not take it.
    fn both(data: &[u8]) -> Option<((IpHeader, String), (IpHeader, String))> {
        let mut plain_header = IpPacket::BLANK.ip;
        let plain = read_plain_ipv4(data, plain_ipv4(data)?, &mut plain_header);
        let mut lax_header = IpPacket::BLANK.ip;
        let lax = read_lax(data, &mut lax_header).expect("etherparse reads a plain IPv4 header");
        // Where the payload starts as well as what it holds.
        let show = |l: &IpLayer| format!("{l:?} at {}", offset_in(data, l.body.bytes));
        Some(((plain_header, show(&plain)), (lax_header, show(&lax))))
    }

    #[test]
    fn plain_ipv4_reads_as_etherparse_does() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let r = next();
            let ihl = match r % 4 {
                0 => 5,
                1 => (r >> 8) as u8 % 16,
                _ => 5 + (r >> 8) as u8 % 11,
            };
            let header_len = usize::from(ihl) * 4;
            let len = match (r >> 16) % 3 {
                0 => header_len + (r >> 20) as usize % 64,
                1 => (r >> 20) as usize % (header_len + 8),
                _ => 20 + (r >> 20) as usize % 1500,
            };
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = data.first_mut() {
                let version = if (r >> 40) % 8 == 0 {
                    (r >> 44) as u8 % 16
                } else {
                    4
                };
                *first = version << 4 | ihl;
            }
            if data.len() >= 20 {
                // Total lengths below the header, inside the capture, and beyond it.
                let total = match (r >> 48) % 4 {
                    0 => (r >> 52) as usize % (header_len + 1),
                    1 => len,
                    2 => (r >> 52) as usize % (len + 1),
                    _ => len + 1 + (r >> 52) as usize % 100,
                } as u16;
                data[2..4].copy_from_slice(&total.to_be_bytes());
                data[9] = [6, 17, 4, 41, 1, 51, 47, (r >> 56) as u8][(r >> 58) as usize % 8];
            }
            let expect_plain = data.len() >= 20
                && data[0] >> 4 == 4
                && ihl >= 5
                && data.len() >= header_len
                && data[9] != 51;
            match both(&data) {
                Some((plain, lax)) => {
                    assert_eq!(plain, lax, "{data:02x?}");
                    taken += 1;
                }
                None => assert!(!expect_plain, "fast path refused {data:02x?}"),
            }
        }
        // Most of the cases are plain IPv4: the comparison ran on them.
        assert!(taken > 10_000, "{taken}");
    }
}
