//! A flat reading of a decoded frame for LVS purposes: which IP packet, inside which tunnel,
//! which ports, and which way it travelled past the capturing host.
//!
//! Only one tunnel level is unwrapped: LVS-TUN adds exactly one.

use super::MacAddr;
use crate::decode::packet::{Icmp, IpHeader, Link, Net, Packet, Sctp, Tcp, Transport, TunnelKind};

/// Which way a frame passed the capturing host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
    /// Raw IP captures, or frames of other hosts (mirror ports, promiscuous bridges).
    Unknown,
}

/// The tunnel around a packet: outer header and kind.
#[derive(Debug, Clone, Copy)]
pub struct Outer<'a> {
    pub ip: &'a IpHeader,
    pub kind: TunnelKind,
}

/// The (inner, when tunnelled) IP packet of a frame and its transport header.
#[derive(Debug, Clone, Copy)]
pub struct IpView<'a> {
    pub outer: Option<Outer<'a>>,
    pub ip: &'a IpHeader,
    pub transport: &'a Transport,
}

impl<'a> IpView<'a> {
    pub fn of(packet: &'a Packet) -> Option<IpView<'a>> {
        let Net::Ip(p) = &packet.net else {
            return None;
        };
        if let Transport::Tunnel { tunnel, inner, .. } = &p.transport {
            return Some(IpView {
                outer: Some(Outer {
                    ip: &p.ip,
                    kind: *tunnel,
                }),
                ip: &inner.ip,
                transport: &inner.transport,
            });
        }
        Some(IpView {
            outer: None,
            ip: &p.ip,
            transport: &p.transport,
        })
    }

    /// Source and destination ports (0 for protocols without ports).
    pub fn ports(&self) -> (u16, u16) {
        match self.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            Transport::Sctp(c) => (c.src_port, c.dst_port),
            _ => (0, 0),
        }
    }

    pub fn tcp(&self) -> Option<&'a Tcp> {
        match self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    pub fn icmp(&self) -> Option<&'a Icmp> {
        match self.transport {
            Transport::Icmp(i) => Some(i),
            _ => None,
        }
    }

    pub fn has_ports(&self) -> bool {
        matches!(
            self.transport,
            Transport::Tcp(_) | Transport::Udp(_) | Transport::Sctp(_)
        )
    }

    /// Transport payload length and hash (0, 0 when there is no TCP/UDP payload).
    pub fn payload(&self) -> (u32, u64) {
        match self.transport {
            Transport::Tcp(t) => (t.payload_len, t.payload_hash),
            Transport::Udp(u) => (u.payload_len, u.payload_hash),
            Transport::Sctp(c) => (c.payload_len, c.payload_hash),
            _ => (0, 0),
        }
    }

    /// Which end is the server, for one packet seen on its own: a TCP SYN goes to the server and
    /// a SYN-ACK comes from it; otherwise the lower port is taken to be the service's.
    /// Returns (server port, packet goes to the server).
    pub fn server_side(&self) -> (u16, bool) {
        let (sp, dp) = self.ports();
        // SCTP's INIT goes to the server, its INIT ACK comes from it, as TCP's SYN and SYN-ACK.
        if let Transport::Sctp(c) = self.transport {
            match c.first_chunk {
                Some(Sctp::INIT) => return (dp, true),
                Some(Sctp::INIT_ACK) => return (sp, false),
                _ => {}
            }
        }
        if let Some(t) = self.tcp() {
            if t.has(Tcp::SYN) {
                return if t.has(Tcp::ACK) {
                    (sp, false)
                } else {
                    (dp, true)
                };
            }
        }
        if dp <= sp {
            (dp, true)
        } else {
            (sp, false)
        }
    }
}

pub fn is_unicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 0
}

/// Which way the frame went, from the Linux cooked header when there is one, else from the
/// capturing host's MAC address.
pub fn direction(link: &Link, local_mac: Option<MacAddr>) -> Direction {
    if let Some(t) = link.sll_packet_type {
        return match t {
            4 => Direction::Out,
            0..=2 => Direction::In,
            _ => Direction::Unknown,
        };
    }
    let Some(local) = local_mac else {
        return Direction::Unknown;
    };
    if link.src_mac == Some(local.0) {
        Direction::Out
    } else if link.dst_mac == Some(local.0) || link.dst_mac.is_some_and(|m| !is_unicast(&m)) {
        Direction::In
    } else {
        Direction::Unknown
    }
}
