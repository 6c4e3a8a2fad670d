//! What an arrow says: TCP flags, sequence and acknowledgement numbers relative to each side's
//! initial one, payload length; an ICMP error's meaning and sender; a tunnel's outer header.

use crate::decode::packet::{Tcp, TunnelKind};
use crate::flows::trace::{IcmpError, OuterHeader, TracedPacket};
use crate::flows::Connection;
use crate::topology::Proto;

/// The initial sequence numbers that relative numbers count from.
#[derive(Debug, Clone, Copy)]
pub struct Isns {
    proto: Proto,
    client: Option<u32>,
    server: Option<u32>,
}

impl Isns {
    /// The client's from its SYN (else its first segment), the server's from its SYN-ACK
    /// (else its first segment).
    pub fn of(conn: &Connection, packets: &[TracedPacket]) -> Isns {
        let first = |request: bool| {
            let side = || {
                packets
                    .iter()
                    .filter(move |p| p.icmp.is_none() && p.form.is_request() == request)
                    .filter_map(|p| p.tcp)
            };
            side()
                .find(|t| t.flags & Tcp::SYN != 0)
                .or_else(|| side().next())
                .map(|t| t.seq)
        };
        Isns {
            proto: conn.proto,
            client: first(true).or(conn.isn),
            server: first(false),
        }
    }
}

/// The flags as people say them: SYN, SYN-ACK, ACK, PSH-ACK, FIN-ACK, RST, RST-ACK.
pub fn flags(f: u8) -> String {
    let names = [
        (Tcp::SYN, "SYN"),
        (Tcp::RST, "RST"),
        (Tcp::FIN, "FIN"),
        (Tcp::PSH, "PSH"),
        (Tcp::ACK, "ACK"),
    ];
    let mut parts: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if f & 0x20 != 0 {
        parts.push("URG");
    }
    if parts.is_empty() {
        return "no flags".into();
    }
    parts.join("-")
}

/// The end of the sequence space a segment takes (SYN and FIN count one), when it takes any.
pub fn seq_end(p: &TracedPacket) -> Option<u32> {
    let t = p.tcp?;
    let len = p.payload_len + u32::from(t.flags & (Tcp::SYN | Tcp::FIN) != 0);
    (len > 0).then(|| t.seq.wrapping_add(len))
}

/// The label of a packet.
pub fn label(p: &TracedPacket, isns: &Isns) -> String {
    if let Some(i) = p.icmp {
        return format!("ICMP {} from {}", icmp(&i), p.src.ip());
    }
    let Some(t) = p.tcp else {
        let proto = isns.proto.to_string().to_uppercase();
        return format!("{proto} len {}", p.payload_len);
    };
    let (own, theirs) = if p.form.is_request() {
        (isns.client, isns.server)
    } else {
        (isns.server, isns.client)
    };
    let relative = |n: u32, base: Option<u32>| base.map_or(n, |b| n.wrapping_sub(b));
    let mut s = format!("{} seq {}", flags(t.flags), relative(t.seq, own));
    if t.flags & Tcp::ACK != 0 {
        s.push_str(&format!(" ack {}", relative(t.ack, theirs)));
    }
    if p.payload_len > 0 {
        s.push_str(&format!(" len {}", p.payload_len));
    }
    s
}

/// "port unreachable", "fragmentation needed (MTU 1480)", ...
pub fn icmp(i: &IcmpError) -> String {
    let what = match (i.v6, i.icmp_type, i.code) {
        (false, 3, 0) => "net unreachable",
        (false, 3, 1) | (true, 1, 3) => "host unreachable",
        (false, 3, 2) => "protocol unreachable",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 4) => "fragmentation needed",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "administratively prohibited",
        (false, 3, _) | (true, 1, _) => "destination unreachable",
        (true, 2, _) => "packet too big",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        (false, 12, _) | (true, 4, _) => "parameter problem",
        _ => "error",
    };
    match i.mtu {
        Some(m) => format!("{what} (MTU {m})"),
        None if what == "error" || what == "destination unreachable" => {
            format!("{what} (type {} code {})", i.icmp_type, i.code)
        }
        None => what.to_string(),
    }
}

/// "IPIP", "GUE", ...: the tunnel as the header line names it.
pub fn tunnel(kind: TunnelKind) -> &'static str {
    match kind {
        TunnelKind::IpIp => "IPIP",
        TunnelKind::Ipv6InIpv4 => "IPv6-in-IPv4",
        TunnelKind::IpInIpv6 => "IP-in-IPv6",
        TunnelKind::Gre => "GRE",
        TunnelKind::Gue => "GUE",
    }
}

/// "IPIP 10.0.0.1 > 10.0.0.2".
pub fn outer(o: &OuterHeader) -> String {
    format!("{} {} > {}", tunnel(o.kind), o.src, o.dst)
}

#[cfg(test)]
mod tests {
    use super::{flags, icmp};
    use crate::decode::packet::Tcp;
    use crate::flows::trace::IcmpError;

    #[test]
    fn flags_read_as_people_say_them() {
        assert_eq!(flags(Tcp::SYN), "SYN");
        assert_eq!(flags(Tcp::SYN | Tcp::ACK), "SYN-ACK");
        assert_eq!(flags(Tcp::PSH | Tcp::ACK), "PSH-ACK");
        assert_eq!(flags(Tcp::FIN | Tcp::ACK), "FIN-ACK");
        assert_eq!(flags(Tcp::RST), "RST");
        assert_eq!(flags(0), "no flags");
    }

    #[test]
    fn icmp_errors_are_named_with_their_mtu() {
        let e = |v6, icmp_type, code, mtu| IcmpError {
            v6,
            icmp_type,
            code,
            mtu,
        };
        assert_eq!(icmp(&e(false, 3, 3, None)), "port unreachable");
        assert_eq!(icmp(&e(true, 1, 4, None)), "port unreachable");
        assert_eq!(
            icmp(&e(false, 3, 4, Some(1480))),
            "fragmentation needed (MTU 1480)"
        );
        assert_eq!(
            icmp(&e(true, 2, 0, Some(1280))),
            "packet too big (MTU 1280)"
        );
        assert_eq!(
            icmp(&e(false, 3, 7, None)),
            "destination unreachable (type 3 code 7)"
        );
    }
}
