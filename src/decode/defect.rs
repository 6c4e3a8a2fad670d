//! Why a layer could not be decoded ([`Defect`]): the facts as plain values, written out as a
//! sentence only when someone reads it (`inspect`'s decode notes, JSON), so that a frame cut
//! short costs no allocation. The sentences are the ones users see; tests pin them.

use etherparse::defrag::IpDefragError;
use etherparse::err::{ipv6_exts, Layer};
use serde::{Serialize, Serializer};
use std::fmt;

use super::packet::TunnelKind;
use super::MAX_IP_LAYERS;

/// More VLAN tags than this is not a real frame: the walk stops rather than follow a long run
/// of 0x8100s, and [`super::Vlans`] holds this many inline.
pub const MAX_VLAN_TAGS: usize = 8;

/// Why the network layer (`Net::Malformed`) or a transport (`Transport::Malformed`) could not
/// be read. Displays (and serialises) as the sentence users see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Defect {
    /// "{what} cut short: {have} of {need} bytes".
    CutShort {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// A pcap link type we do not decode.
    LinkType(u32),
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    VlanTags,
    /// The outermost IP header.
    Ip(IpDefect),
    /// The IP header inside a tunnel.
    TunnelInner {
        tunnel: TunnelKind,
        defect: IpDefect,
    },
    /// The inner packet's version nibble contradicts the outer protocol number (4 or 41).
    TunnelVersion {
        tunnel: TunnelKind,
        version: u8,
        protocol: u8,
    },
    /// A TCP data offset below the 20-byte header (the offset in bytes).
    TcpDataOffset(usize),
    /// An IPv6 extension header as etherparse reported it.
    Ipv6Extension {
        error: ipv6_exts::HeaderSliceError,
        layer: Layer,
    },
    /// A fragment the reassembly table rejected.
    Fragment(IpDefragError),
    /// A fragment offset beyond what 13 bits of 8-byte units hold.
    FragmentOffset(u16),
    /// The reassembly table lost track of a datagram it had just added (a bug if ever seen).
    FragmentTableLost,
}

/// Why an IP header could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpDefect {
    /// More than [`MAX_IP_LAYERS`] IP headers nested in one frame.
    TooDeep,
    /// No byte of the header.
    Missing,
    CutShort {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// A version nibble other than 4 or 6.
    Version(u8),
    /// An IPv4 IHL below 5 (words).
    Ipv4HeaderLength(u8),
}

fn cut_short(
    f: &mut fmt::Formatter<'_>,
    what: &dyn fmt::Display,
    have: usize,
    need: usize,
) -> fmt::Result {
    write!(f, "{what} cut short: {have} of {need} bytes")
}

impl fmt::Display for IpDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpDefect::TooDeep => write!(f, "nesting deeper than {MAX_IP_LAYERS} IP headers"),
            IpDefect::Missing => f.write_str("IP header missing: 0 bytes"),
            IpDefect::CutShort { what, have, need } => cut_short(f, &what, have, need),
            IpDefect::Version(v) => write!(f, "IP version {v}, not 4 or 6"),
            IpDefect::Ipv4HeaderLength(ihl) => {
                write!(f, "IPv4 header length {ihl} words, below the minimum 5")
            }
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::CutShort { what, have, need } => cut_short(f, what, *have, *need),
            Defect::LinkType(n) => write!(f, "link type {n} not decoded"),
            Defect::VlanTags => write!(f, "more than {MAX_VLAN_TAGS} VLAN tags"),
            Defect::Ip(defect) => defect.fmt(f),
            Defect::TunnelInner { tunnel, defect } => {
                write!(f, "{} inner packet: {defect}", tunnel_name(*tunnel))
            }
            Defect::TunnelVersion {
                tunnel,
                version,
                protocol,
            } => write!(
                f,
                "{} inner packet: IP version {version} under protocol {protocol}",
                tunnel_name(*tunnel)
            ),
            Defect::TcpDataOffset(len) => write!(f, "TCP data offset {len} bytes, below 20"),
            Defect::Ipv6Extension { error, layer } => match error {
                ipv6_exts::HeaderSliceError::Len(len) => {
                    cut_short(f, layer, len.len, len.required_len)
                }
                ipv6_exts::HeaderSliceError::Content(content) => write!(f, "{layer}: {content}"),
            },
            Defect::Fragment(error) => describe_defrag(f, error),
            Defect::FragmentOffset(offset) => write!(f, "fragment offset {offset} out of range"),
            Defect::FragmentTableLost => f.write_str("fragment table lost a datagram"),
        }
    }
}

fn describe_defrag(f: &mut fmt::Formatter<'_>, error: &IpDefragError) -> fmt::Result {
    match error {
        IpDefragError::UnalignedFragmentPayloadLen { payload_len, .. } => write!(
            f,
            "fragment of {payload_len} bytes followed by more is not a multiple of 8 bytes"
        ),
        IpDefragError::SegmentTooBig { .. } => f.write_str("fragment ends beyond 65535 bytes"),
        IpDefragError::ConflictingEnd {
            previous_end,
            conflicting_end,
        } => write!(
            f,
            "fragment ends at byte {conflicting_end}, another ended the datagram at {previous_end}"
        ),
        IpDefragError::AllocationFailure { len } => {
            write!(f, "no memory for a {len}-byte datagram")
        }
    }
}

/// How a tunnel is named in a defect's sentence.
pub fn tunnel_name(kind: TunnelKind) -> &'static str {
    match kind {
        TunnelKind::IpIp => "IPIP",
        TunnelKind::Ipv6InIpv4 => "6in4",
        TunnelKind::IpInIpv6 => "IP-in-IPv6",
        TunnelKind::Gre => "GRE",
        TunnelKind::Gue => "GUE",
    }
}

/// The sentence, as the `reason` string it always was in JSON.
impl Serialize for Defect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
