//! Connections that share one problem, with a few example packets: what a counted finding is
//! made of, so each check only says what the problem is, why, and how to fix it.
//!
//! Nothing here holds on to the connections: a check sees each connection once, as the analysis
//! hands it on, and keeps only a count, what a display filter needs (client addresses, a few
//! ports) and the examples of the connections that started first, whatever order they came in.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{ip_field, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::{ConnKey, Connection};
use crate::topology::Proto;

/// Ports a display filter lists at most: the first ones are enough to find the rest.
pub const FILTER_PORTS: usize = 12;

/// What a Wireshark display filter for some connections needs: their clients' addresses and
/// (the lowest) client ports. The client side is what every packet of a connection shares:
/// requests, replies from the VIP or from a real server's own address, the tunnelled copies
/// (Wireshark matches the inner header too) and ICMP errors quoting them.
#[derive(Debug, Default, Clone)]
pub struct FilterParts {
    clients: BTreeSet<IpAddr>,
    ports: BTreeSet<u16>,
    udp: bool,
}

impl FilterParts {
    pub fn add(&mut self, conn: &Connection) {
        self.add_client(conn.proto, conn.client);
    }

    /// A connection known by its client side only (a line of the director's table).
    pub fn add_client(&mut self, proto: Proto, client: std::net::SocketAddr) {
        self.clients.insert(client.ip());
        self.ports.insert(client.port());
        if self.ports.len() > FILTER_PORTS {
            self.ports.pop_last();
        }
        self.udp |= proto == Proto::UDP;
    }

    /// Adds another's clients and ports (the lowest ports kept).
    pub fn merge(&mut self, other: FilterParts) {
        self.clients.extend(other.clients);
        self.ports.extend(other.ports);
        while self.ports.len() > FILTER_PORTS {
            self.ports.pop_last();
        }
        self.udp |= other.udp;
    }

    /// `(ip.addr == A || ...) && tcp.port in {P, ...}`, or None without connections.
    pub fn filter(&self) -> Option<String> {
        if self.clients.is_empty() {
            return None;
        }
        let client_part = self
            .clients
            .iter()
            .map(|a| format!("{} == {a}", ip_field(*a)))
            .collect::<Vec<_>>()
            .join(" || ");
        let proto = if self.udp { "udp" } else { "tcp" };
        let ports: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        // Wireshark 4 wants set members separated by commas.
        Some(format!(
            "({client_part}) && {proto}.port in {{{}}}",
            ports.join(", ")
        ))
    }
}

/// Example packets of the connections that started first (at most [`MAX_EVIDENCE`]), in order
/// of start: the same examples whichever order the connections are seen in.
#[derive(Debug, Default, Clone)]
pub struct Examples {
    kept: Vec<((i64, ConnKey), PacketRef)>,
}

impl Examples {
    /// Offers the example of a connection; `make` is called only when it would be kept.
    pub fn offer(&mut self, conn: &Connection, make: impl FnOnce() -> Option<PacketRef>) {
        let at = (conn.first_ts_ns, conn.key());
        let pos = self.kept.partition_point(|(k, _)| *k <= at);
        if pos >= MAX_EVIDENCE {
            return;
        }
        if let Some(p) = make() {
            self.kept.insert(pos, (at, p));
            self.kept.truncate(MAX_EVIDENCE);
        }
    }

    /// Adds another's examples, keeping those of the connections that started first.
    pub fn merge(&mut self, other: Examples) {
        for (at, p) in other.kept {
            let pos = self.kept.partition_point(|(k, _)| *k <= at);
            if pos < MAX_EVIDENCE {
                self.kept.insert(pos, (at, p));
                self.kept.truncate(MAX_EVIDENCE);
            }
        }
    }

    pub fn into_vec(self) -> Vec<PacketRef> {
        self.kept.into_iter().map(|(_, p)| p).collect()
    }
}

#[derive(Debug, Default, Clone)]
pub struct Affected {
    count: usize,
    all_udp: bool,
    filter: FilterParts,
    examples: Examples,
}

/// The words of a finding: what, on which host, the likely cause, the fix.
pub struct Explained {
    pub summary: String,
    pub host: Option<String>,
    pub likely_cause: String,
    pub fix: String,
}

impl Affected {
    /// Adds a connection; the example packet is made only when it is among the first.
    pub fn add(&mut self, conn: &Connection, example: impl FnOnce() -> Option<PacketRef>) {
        self.all_udp = (self.count == 0 || self.all_udp) && conn.proto == Proto::UDP;
        self.count += 1;
        self.filter.add(conn);
        self.examples.offer(conn, example);
    }

    /// Adds another group's connections: one finding for connections gathered apart (per
    /// capture, say) that turn out to share the problem.
    pub fn merge(&mut self, other: Affected) {
        self.all_udp = match (self.count, other.count) {
            (0, _) => other.all_udp,
            (_, 0) => self.all_udp,
            _ => self.all_udp && other.all_udp,
        };
        self.count += other.count;
        self.filter.merge(other.filter);
        self.examples.merge(other.examples);
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every connection added was UDP.
    pub fn all_udp(&self) -> bool {
        self.all_udp
    }

    /// The finding: these connections out of the `out_of` judged, their example packets, and a
    /// display filter that shows them.
    pub fn finding(
        self,
        check: &'static str,
        severity: Status,
        out_of: usize,
        text: Explained,
    ) -> Finding {
        Finding {
            snapshot: Vec::new(),
            check,
            severity,
            summary: text.summary,
            host: text.host,
            count: self.count as u64,
            out_of: Some(out_of as u64),
            display_filter: self.filter.filter(),
            evidence: self.examples.into_vec(),
            likely_cause: text.likely_cause,
            fix: text.fix,
        }
    }
}
