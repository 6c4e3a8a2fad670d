//! How the director wraps requests for each real server: IP-in-IP (either family, either
//! way round), GUE or GRE, as the tunnelled packets show it. The checks word their findings
//! and fixes by it: what the receiving side needs is a different device and command for each
//! (`tunl0`, `ip6tnl0`, `ip fou add port N gue`, `gre0`).

use serde::Serialize;
use std::net::IpAddr;

use crate::decode::ip::{PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_UDP};

/// One real server's tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Encap {
    /// IP protocol of the outer header: 4 or 41 (IP-in-IP), 47 (GRE), 17 (GUE).
    pub outer_proto: u8,
    pub outer_v6: bool,
    pub inner_v6: bool,
    /// GUE's UDP destination port, when the traffic or the rules name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
}

impl Encap {
    /// From the rules' `--tun-type` (`ipip`, `gue`, `gre`; none means ipip) for a real
    /// server at `rs` of a service on `vip`.
    pub fn from_rules(tun_type: Option<&str>, port: Option<u16>, rs: IpAddr, vip: IpAddr) -> Self {
        let outer_proto = match tun_type {
            Some("gue") => PROTO_UDP,
            Some("gre") => PROTO_GRE,
            _ if vip.is_ipv6() => PROTO_IPV6,
            _ => PROTO_IPIP,
        };
        Encap {
            outer_proto,
            outer_v6: rs.is_ipv6(),
            inner_v6: vip.is_ipv6(),
            gue_port: port.filter(|_| outer_proto == PROTO_UDP),
        }
    }

    pub fn is_gue(&self) -> bool {
        self.outer_proto == PROTO_UDP
    }

    pub fn is_gre(&self) -> bool {
        self.outer_proto == PROTO_GRE
    }

    /// The plain case, whose texts predate the others: IPv4 in IPv4.
    pub fn is_ipip4(&self) -> bool {
        !self.is_gue() && !self.is_gre() && !self.outer_v6 && !self.inner_v6
    }

    /// `IP-in-IP`, `IPv6-in-IPv6`, `GUE (UDP port 6080)`, `GRE`.
    pub fn name(&self) -> String {
        if self.is_gue() {
            return match self.gue_port {
                Some(p) => format!("GUE (UDP port {p})"),
                None => "GUE".into(),
            };
        }
        if self.is_gre() {
            return "GRE".into();
        }
        match (self.inner_v6, self.outer_v6) {
            (false, false) => "IP-in-IP",
            (true, true) => "IPv6-in-IPv6",
            (false, true) => "IPv4-in-IPv6",
            (true, false) => "IPv6-in-IPv4",
        }
        .into()
    }

    /// The device that receives the decapsulated packets on the real server, where the VIP
    /// belongs: ipip's `tunl0` (also behind GUE, whose fou socket hands IPv4 to ipip),
    /// `ip6tnl0`, an ipip6-mode ip6tnl device (IPv4 in IPv6), `sit0` (IPv6 in IPv4), `gre0` /
    /// `ip6gre0`.
    pub fn device(&self) -> &'static str {
        if self.is_gre() {
            return if self.outer_v6 { "ip6gre0" } else { "gre0" };
        }
        match (self.inner_v6, self.outer_v6) {
            (false, true) => "an ip6tnl device in ipip6 mode",
            (true, true) => "ip6tnl0",
            (true, false) => "sit0",
            (false, false) => "tunl0",
        }
    }

    /// The commands that make a real server take these tunnelled packets for `vip`.
    pub fn receive_setup(&self, vip: &str) -> String {
        // IPv4 in IPv6: ip6tnl0, the fallback device, takes IPv6-in-IPv6 only; an ipip6
        // device with any remote takes the rest (recorded: fixtures/ipv6-mixed).
        if !self.is_gue() && !self.is_gre() && self.outer_v6 && !self.inner_v6 {
            return format!(
                "modprobe ip6_tunnel; ip -6 tunnel add t4in6 mode ipip6 local <its IPv6 \
                 address> remote any; ip link set t4in6 up; ip addr add {vip}/32 dev t4in6; \
                 sysctl -w net.ipv4.conf.t4in6.rp_filter=0 and net.ipv4.conf.all.rp_filter=0"
            );
        }
        let dev = self.device();
        let addr = if self.inner_v6 {
            format!("ip -6 addr add {vip}/128 dev {dev}")
        } else {
            format!("ip addr add {vip}/32 dev {dev}")
        };
        let rp = if self.inner_v6 {
            String::new()
        } else {
            format!(
                "; sysctl -w net.ipv4.conf.{dev}.rp_filter=0 and net.ipv4.conf.all.rp_filter=0 \
                 (the kernel uses the larger of the two)"
            )
        };
        let fou = match (self.is_gue(), self.gue_port) {
            (true, Some(p)) => format!("ip fou add port {p} gue (modprobe fou); "),
            (true, None) => "ip fou add port <the --tun-port> gue (modprobe fou); ".into(),
            _ => String::new(),
        };
        let module = match (self.is_gre(), self.outer_v6) {
            (true, false) => "modprobe ip_gre; ",
            (true, true) => "modprobe ip6_gre; ",
            (false, true) => "modprobe ip6_tunnel; ",
            _ => "",
        };
        format!("{fou}{module}ip link set {dev} up; {addr}{rp}")
    }

    /// How a firewall on the real server lets the tunnel in, and the module that takes it:
    /// `(rule, module)`.
    pub fn accept_rule(&self) -> (String, &'static str) {
        let tables = if self.outer_v6 {
            "ip6tables"
        } else {
            "iptables"
        };
        if self.is_gue() {
            let port = self
                .gue_port
                .map_or("<the --tun-port>".into(), |p| p.to_string());
            return (
                format!("{tables} -A INPUT -p udp --dport {port} -j ACCEPT"),
                "fou",
            );
        }
        if self.is_gre() {
            let m = if self.outer_v6 { "ip6_gre" } else { "ip_gre" };
            return (format!("{tables} -A INPUT -p gre -j ACCEPT"), m);
        }
        let m = if self.outer_v6 { "ip6_tunnel" } else { "ipip" };
        (
            format!("{tables} -A INPUT -p {} -j ACCEPT", self.outer_proto),
            m,
        )
    }

    /// What the tunnel is called in words for a firewall: `IP protocol 4`, `UDP port 6080`...
    pub fn wire_name(&self) -> String {
        if self.is_gue() {
            return match self.gue_port {
                Some(p) => format!("UDP port {p} (GUE)"),
                None => "the GUE UDP port".into(),
            };
        }
        let what = if self.outer_v6 {
            "IPv6 next header"
        } else {
            "IP protocol"
        };
        format!("{what} {}", self.outer_proto)
    }

    /// A Wireshark display filter for the tunnelled packets to `rs`.
    pub fn display_filter(&self, rs: IpAddr) -> String {
        let dst = if rs.is_ipv6() { "ipv6.dst" } else { "ip.dst" };
        let what = match (self.is_gue(), self.gue_port) {
            (true, Some(p)) => format!("udp.dstport == {p}"),
            (true, None) => "udp".into(),
            _ if self.outer_v6 => format!("ipv6.nxt == {}", self.outer_proto),
            _ => format!("ip.proto == {}", self.outer_proto),
        };
        format!("{what} && {dst} == {rs}")
    }

    /// What the tunnel adds to each packet: outer IP header, plus GRE's 4 or GUE's 8 + 4.
    pub fn overhead(&self) -> u32 {
        let outer = if self.outer_v6 { 40 } else { 20 };
        outer
            + if self.is_gue() {
                12
            } else if self.is_gre() {
                4
            } else {
                0
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_tunnel_type_names_its_receiving_side() {
        let v4 = |t, p| Encap::from_rules(t, p, ip("10.0.0.2"), ip("10.0.0.100"));
        let ipip = v4(Some("ipip"), None);
        assert_eq!(
            (ipip.name(), ipip.device(), ipip.overhead()),
            ("IP-in-IP".into(), "tunl0", 20)
        );
        assert!(ipip.is_ipip4());
        let gue = v4(Some("gue"), Some(6080));
        assert_eq!(gue.name(), "GUE (UDP port 6080)");
        assert_eq!(gue.overhead(), 32);
        assert!(gue
            .receive_setup("10.0.0.100")
            .starts_with("ip fou add port 6080 gue"));
        let gre = v4(Some("gre"), None);
        assert_eq!(
            (gre.name(), gre.device(), gre.overhead()),
            ("GRE".into(), "gre0", 24)
        );
        let v6 = Encap::from_rules(None, None, ip("2001:db8::2"), ip("2001:db8::100"));
        assert_eq!(
            (v6.name(), v6.device(), v6.overhead()),
            ("IPv6-in-IPv6".into(), "ip6tnl0", 40)
        );
        assert_eq!(
            v6.receive_setup("2001:db8::100"),
            "modprobe ip6_tunnel; ip link set ip6tnl0 up; ip -6 addr add 2001:db8::100/128 dev ip6tnl0"
        );
        let mixed = Encap::from_rules(None, None, ip("2001:db8::2"), ip("10.0.0.100"));
        assert_eq!(mixed.name(), "IPv4-in-IPv6");
        assert!(mixed.receive_setup("10.0.0.100").contains("mode ipip6"));
    }
}
