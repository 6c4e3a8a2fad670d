//! One module per check, each turning the connection records and the topology into a
//! [`CheckResult`] with evidence. A check's id names its module: `reply.source` lives in
//! `checks/reply.rs`, `tunnel.delivery` in `checks/tunnel.rs`.
//!
//! A check needs nothing but the [`Analysis`] (connections, topology, clock offsets) and the
//! read outcome of each capture. When the captures given cannot show what a check looks at
//! (no capture from any real server, say), the check is skipped and says why.

pub mod affected;
pub mod arp;
pub mod bypass;
pub mod capture;
pub mod finding;
pub mod mtu;
pub mod reply;
pub mod topology;
pub mod tunnel;

use std::collections::BTreeSet;
use std::net::IpAddr;

pub use affected::{Affected, Explained};
pub use finding::{CheckResult, Finding, PacketRef, Status, MAX_EVIDENCE};

use crate::flows::{Analysis, Connection, Leg};
use crate::report::time::rfc3339_ns;
use crate::topology::{FrameRef, Role};

/// What the checks read.
pub struct Context<'a> {
    pub analysis: &'a Analysis,
}

impl<'a> Context<'a> {
    pub fn new(analysis: &'a Analysis) -> Context<'a> {
        Context { analysis }
    }

    /// The file a frame reference points into.
    pub fn file(&self, frame: &FrameRef) -> String {
        self.analysis
            .captures
            .iter()
            .find(|c| c.capture == frame.capture)
            .map(|c| c.file.clone())
            .unwrap_or_else(|| format!("capture #{}", frame.capture))
    }

    /// A packet as evidence: file, Wireshark frame number, the capture's own time, a summary.
    pub fn packet(&self, frame: &FrameRef, summary: impl Into<String>) -> PacketRef {
        PacketRef {
            file: self.file(frame),
            frame: frame.frame,
            time: rfc3339_ns(frame.ts_ns),
            summary: summary.into(),
        }
    }

    /// Whether any capture was taken in this role.
    pub fn has_role(&self, role: Role) -> bool {
        self.analysis
            .topology
            .vantages
            .iter()
            .any(|v| v.role == role)
    }

    /// Host name for messages: the address, with its MAC when the topology knows one.
    pub fn host(&self, addr: IpAddr) -> String {
        let topo = &self.analysis.topology;
        let macs = topo
            .real_servers
            .iter()
            .chain(topo.directors.iter())
            .find(|h| h.addr == addr)
            .map(|h| &h.macs);
        match macs.and_then(|m| m.first()) {
            Some(mac) => format!("{addr} ({mac})"),
            None => addr.to_string(),
        }
    }

    /// The host a capture was taken on, for messages: its address when known, its MAC, and
    /// the file.
    pub fn vantage_host(&self, id: crate::topology::VantageId) -> String {
        let file = self.file(&FrameRef {
            capture: id.capture,
            interface: id.interface,
            frame: 0,
            ts_ns: 0,
        });
        match self.analysis.topology.vantage(id) {
            Some(v) => match (v.address, v.local_mac) {
                (Some(a), Some(m)) => format!("{a} ({m})"),
                (Some(a), None) => format!("{a} (captured in {file})"),
                (None, Some(m)) => format!("the host with MAC {m} (captured in {file})"),
                (None, None) => format!("the host captured in {file}"),
            },
            None => format!("the host captured in {file}"),
        }
    }

    /// The MACs the director uses: from its tunnelled packets, or from a capture taken on it.
    pub fn director_macs(&self) -> Vec<crate::topology::MacAddr> {
        let topo = &self.analysis.topology;
        let mut macs: Vec<_> = topo
            .directors
            .iter()
            .flat_map(|h| h.macs.iter().copied())
            .chain(
                topo.vantages
                    .iter()
                    .filter(|v| v.role == Role::Director)
                    .filter_map(|v| v.local_mac),
            )
            .collect();
        macs.sort();
        macs.dedup();
        macs
    }

    /// The legs of a connection seen at vantage points of a role.
    pub fn legs_at<'c>(&self, conn: &'c Connection, role: Role) -> impl Iterator<Item = &'c Leg> {
        conn.legs.iter().filter(move |l| l.role == role)
    }
}

/// Runs every check.
pub fn run_all(analysis: &Analysis) -> Vec<CheckResult> {
    let ctx = Context::new(analysis);
    vec![
        capture::check(&ctx),
        tunnel::encapsulation(&ctx),
        tunnel::delivery(&ctx),
        reply::present(&ctx),
        reply::source(&ctx),
        reply::direct(&ctx),
        arp::vip(&ctx),
        bypass::check(&ctx),
        mtu::check(&ctx),
        topology::check(&ctx),
    ]
}

/// A Wireshark display filter for the given connections: their clients' addresses and ports.
/// The client side is what every packet of a connection shares: requests, replies from the
/// VIP or from a real server's own address, the tunnelled copies (Wireshark matches the inner
/// header too) and ICMP errors quoting them.
pub fn connections_filter<'c>(conns: impl IntoIterator<Item = &'c Connection>) -> Option<String> {
    let mut clients = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut proto = "tcp";
    for c in conns {
        clients.insert(c.client.ip());
        ports.insert(c.client.port());
        if c.proto == crate::topology::Proto::UDP {
            proto = "udp";
        }
    }
    if clients.is_empty() {
        return None;
    }
    let client_part = clients
        .iter()
        .map(|a| format!("{} == {a}", ip_field(*a)))
        .collect::<Vec<_>>()
        .join(" || ");
    // Long port lists make filters nobody reads; the first ports are enough to find them.
    let ports: Vec<String> = ports.iter().take(12).map(|p| p.to_string()).collect();
    // Wireshark 4 wants set members separated by commas.
    Some(format!(
        "({client_part}) && {proto}.port in {{{}}}",
        ports.join(", ")
    ))
}

/// `ip.addr` or `ipv6.addr`.
pub fn ip_field(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "ip.addr",
        IpAddr::V6(_) => "ipv6.addr",
    }
}

/// "4 of 12" style counts.
pub fn of(n: usize, total: usize) -> String {
    format!("{n} of {total}")
}
