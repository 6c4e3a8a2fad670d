//! ARP for Ethernet and IPv4 (RFC 826), the only kind IPVS setups use: "who has the VIP" and
//! the replies that tell which host claims it.

use std::net::Ipv4Addr;

use super::be16;
use super::defect::Defect;
use super::link::ETHERTYPE_IPV4;
use super::packet::{Arp, Net};

mod field {
    use std::ops::Range;
    pub const HARDWARE_TYPE: usize = 0;
    pub const PROTOCOL_TYPE: usize = 2;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: usize = 6;
    pub const SENDER_MAC: Range<usize> = 8..14;
    pub const SENDER_IP: Range<usize> = 14..18;
    pub const TARGET_MAC: Range<usize> = 18..24;
    pub const TARGET_IP: Range<usize> = 24..28;
    pub const LEN: usize = 28;
}

const HARDWARE_ETHERNET: u16 = 1;
const ETHERTYPE_ARP: u16 = 0x0806;

pub(crate) fn decode_arp(b: &[u8]) -> Net {
    if b.len() < field::PROTOCOL_LEN + 1 {
        return Net::Malformed {
            reason: Defect::CutShort {
                what: "ARP header",
                have: b.len(),
                need: field::LEN,
            },
        };
    }
    let is_ethernet_ipv4 = be16(b, field::HARDWARE_TYPE) == Some(HARDWARE_ETHERNET)
        && be16(b, field::PROTOCOL_TYPE) == Some(ETHERTYPE_IPV4)
        && b[field::HARDWARE_LEN] == 6
        && b[field::PROTOCOL_LEN] == 4;
    if !is_ethernet_ipv4 {
        return Net::Other {
            ether_type: ETHERTYPE_ARP,
        };
    }
    if b.len() < field::LEN {
        return Net::Malformed {
            reason: Defect::CutShort {
                what: "ARP packet",
                have: b.len(),
                need: field::LEN,
            },
        };
    }
    let mac = |r: std::ops::Range<usize>| {
        let s = &b[r];
        [s[0], s[1], s[2], s[3], s[4], s[5]]
    };
    let ip = |r: std::ops::Range<usize>| {
        let s = &b[r];
        Ipv4Addr::new(s[0], s[1], s[2], s[3])
    };
    Net::Arp(Arp {
        operation: be16(b, field::OPERATION).unwrap_or(0),
        sender_mac: mac(field::SENDER_MAC),
        sender_ip: ip(field::SENDER_IP),
        target_mac: mac(field::TARGET_MAC),
        target_ip: ip(field::TARGET_IP),
    })
}
