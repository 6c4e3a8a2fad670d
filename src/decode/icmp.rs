//! ICMP and ICMPv6: type, code, echo identifiers, the next-hop MTU of "fragmentation needed" /
//! "packet too big", and the packet an error message quotes, decoded laxly (a quoted packet is
//! cut short by nature: an IP header and 8 bytes of transport in RFC 792, more from Linux).

use super::defect::Defect;
use super::ip::{self, Body};
use super::packet::{Icmp, Nd, Transport};
use super::{be16, be32, Ctx};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    /// Echo identifier, or the unused half before a v4 next-hop MTU.
    pub const ECHO_ID: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    /// ICMPv4 "fragmentation needed": next-hop MTU, 16 bits (RFC 1191).
    pub const V4_MTU: usize = 6;
    /// ICMPv6 "packet too big": MTU, 32 bits (RFC 4443).
    pub const V6_MTU: usize = 4;
    pub const HEADER_LEN: usize = 8;
}

mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
}

/// Neighbor discovery messages (RFC 4861 4.3, 4.4): flags, target, then options.
mod nd {
    pub const FLAGS: usize = 4;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
    pub const TARGET: usize = 8;
    pub const OPTIONS: usize = 24;
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

/// A Neighbor Solicitation or Advertisement's target, flags and link-layer address option;
/// None for other messages and for one too short to hold its target.
fn neighbor_discovery(icmp_type: u8, b: &[u8]) -> Option<Nd> {
    let advertisement = match icmp_type {
        v6::NEIGHBOR_SOLICITATION => false,
        v6::NEIGHBOR_ADVERTISEMENT => true,
        _ => return None,
    };
    let target: [u8; 16] = b.get(nd::TARGET..nd::OPTIONS)?.try_into().ok()?;
    let wanted = if advertisement {
        nd::TARGET_LLADDR
    } else {
        nd::SOURCE_LLADDR
    };
    let mut lladdr = None;
    let mut at = nd::OPTIONS;
    // Options: type, length in units of 8 bytes (0 is invalid: stop), value.
    while let (Some(&kind), Some(&units)) = (b.get(at), b.get(at + 1)) {
        let len = usize::from(units) * 8;
        if len == 0 {
            break;
        }
        if kind == wanted && len == 8 {
            lladdr = b.get(at + 2..at + 8).and_then(|m| m.try_into().ok());
        }
        at += len;
    }
    let flags = b[nd::FLAGS];
    Some(Nd {
        advertisement,
        target: target.into(),
        lladdr,
        solicited: advertisement && flags & nd::SOLICITED != 0,
        override_flag: advertisement && flags & nd::OVERRIDE != 0,
    })
}

pub(crate) fn decode_icmp(body: &Body, is_v6: bool, depth: u8, ctx: &mut Ctx) -> Transport {
    let b = body.bytes;
    if b.len() < field::HEADER_LEN {
        let what = if is_v6 {
            "ICMPv6 header"
        } else {
            "ICMP header"
        };
        return Transport::Malformed {
            reason: Defect::CutShort {
                what,
                have: b.len(),
                need: field::HEADER_LEN,
            },
        };
    }
    let icmp_type = b[field::TYPE];
    let code = b[field::CODE];
    let (is_error, is_echo, mtu) = if is_v6 {
        (
            matches!(
                icmp_type,
                v6::DEST_UNREACHABLE
                    | v6::PACKET_TOO_BIG
                    | v6::TIME_EXCEEDED
                    | v6::PARAMETER_PROBLEM
            ),
            matches!(icmp_type, v6::ECHO_REQUEST | v6::ECHO_REPLY),
            (icmp_type == v6::PACKET_TOO_BIG)
                .then(|| be32(b, field::V6_MTU))
                .flatten(),
        )
    } else {
        (
            matches!(
                icmp_type,
                v4::DEST_UNREACHABLE
                    | v4::SOURCE_QUENCH
                    | v4::REDIRECT
                    | v4::TIME_EXCEEDED
                    | v4::PARAMETER_PROBLEM
            ),
            matches!(icmp_type, v4::ECHO_REQUEST | v4::ECHO_REPLY),
            (icmp_type == v4::DEST_UNREACHABLE && code == v4::CODE_FRAG_NEEDED)
                .then(|| be16(b, field::V4_MTU).map(u32::from))
                .flatten(),
        )
    };
    let echo = if is_echo {
        be16(b, field::ECHO_ID).zip(be16(b, field::ECHO_SEQ))
    } else {
        None
    };
    let quoted = if is_error && b.len() > field::HEADER_LEN {
        let mut quoted_ctx = ctx.quoted();
        let mut packet = quoted_ctx.boxes.take();
        match ip::decode_ip(
            &b[field::HEADER_LEN..],
            depth.saturating_add(1),
            &mut quoted_ctx,
            &mut packet,
        ) {
            Ok(()) => Some(packet),
            Err(_) => {
                ctx.boxes.give_back(packet);
                None
            }
        }
    } else {
        None
    };
    Transport::Icmp(Icmp {
        v6: is_v6,
        icmp_type,
        code,
        mtu,
        echo,
        quoted,
        nd: if is_v6 {
            neighbor_discovery(icmp_type, b)
        } else {
            None
        },
    })
}
