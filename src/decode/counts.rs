//! Per-layer tallies of a capture's frames, which `inspect` prints.

use serde::Serialize;

use super::packet::{IpPacket, Net, Packet, Transport, TunnelKind};

/// Tunnel layers by kind (a frame with a tunnel in a tunnel counts both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TunnelCounts {
    pub ipip: u64,
    pub ipv6_in_ipv4: u64,
    pub ip_in_ipv6: u64,
    pub gre: u64,
    pub gue: u64,
}

impl TunnelCounts {
    fn add_kind(&mut self, kind: TunnelKind) {
        let slot = match kind {
            TunnelKind::IpIp => &mut self.ipip,
            TunnelKind::Ipv6InIpv4 => &mut self.ipv6_in_ipv4,
            TunnelKind::IpInIpv6 => &mut self.ip_in_ipv6,
            TunnelKind::Gre => &mut self.gre,
            TunnelKind::Gue => &mut self.gue,
        };
        *slot += 1;
    }

    pub fn total(&self) -> u64 {
        self.ipip + self.ipv6_in_ipv4 + self.ip_in_ipv6 + self.gre + self.gue
    }
}

/// Frames by what they carry. `ipv4`/`ipv6` count the outermost IP header; `tcp`, `udp`,
/// `icmp`, `icmpv6` the transport of the innermost packet (through tunnels, not into ICMP
/// quotes), a fragmented datagram on the frame that completed it (or, never completed, on its
/// first fragment: see [`super::Decoder`]); `fragments` frames where any IP layer is a fragment
/// as captured (every fragment of a datagram but the frame that completed it); `malformed`
/// frames whose decode ended in a Malformed layer; `other` frames whose network or innermost
/// transport protocol is not decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerCounts {
    pub frames: u64,
    pub arp: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    /// Absent when 0 (SCTP is rare, and the documents predate it).
    #[serde(skip_serializing_if = "is_zero")]
    pub sctp: u64,
    pub icmp: u64,
    pub icmpv6: u64,
    pub tunnels: TunnelCounts,
    pub fragments: u64,
    pub malformed: u64,
    pub other: u64,
}

impl LayerCounts {
    pub fn add(&mut self, packet: &Packet) {
        self.frames += 1;
        match &packet.net {
            Net::Arp(_) => self.arp += 1,
            Net::Other { .. } => self.other += 1,
            Net::Malformed { .. } => self.malformed += 1,
            Net::Ip(ip) => self.add_ip(ip),
        }
    }

    fn add_ip(&mut self, outer: &IpPacket) {
        if outer.ip.is_v6() {
            self.ipv6 += 1;
        } else {
            self.ipv4 += 1;
        }
        let mut fragment = false;
        let mut layer = outer;
        loop {
            fragment |= layer.ip.is_fragment();
            match &layer.transport {
                Transport::Tunnel { tunnel, inner, .. } => {
                    self.tunnels.add_kind(*tunnel);
                    layer = inner;
                    continue;
                }
                Transport::Tcp(_) => self.tcp += 1,
                Transport::Udp(_) => self.udp += 1,
                Transport::Sctp(_) => self.sctp += 1,
                Transport::Icmp(icmp) if icmp.v6 => self.icmpv6 += 1,
                Transport::Icmp(_) => self.icmp += 1,
                Transport::Fragment => {}
                Transport::Malformed { .. } => self.malformed += 1,
                Transport::Other => self.other += 1,
            }
            break;
        }
        if fragment {
            self.fragments += 1;
        }
    }

    /// Adds another tally (e.g. from a capture decoded on another thread).
    pub fn merge(&mut self, other: &LayerCounts) {
        self.frames += other.frames;
        self.arp += other.arp;
        self.ipv4 += other.ipv4;
        self.ipv6 += other.ipv6;
        self.tcp += other.tcp;
        self.udp += other.udp;
        self.sctp += other.sctp;
        self.icmp += other.icmp;
        self.icmpv6 += other.icmpv6;
        self.tunnels.ipip += other.tunnels.ipip;
        self.tunnels.ipv6_in_ipv4 += other.tunnels.ipv6_in_ipv4;
        self.tunnels.ip_in_ipv6 += other.tunnels.ip_in_ipv6;
        self.tunnels.gre += other.tunnels.gre;
        self.tunnels.gue += other.tunnels.gue;
        self.fragments += other.fragments;
        self.malformed += other.malformed;
        self.other += other.other;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
