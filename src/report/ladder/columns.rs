//! The ladder's columns: one per vantage point, in the order a request passes them (client,
//! director, real server, the real server's decapsulating interface), so that requests run
//! left to right and replies right to left.

use crate::decode::packet::TunnelKind;
use crate::flows::clock::{offset_of, OffsetMethod};
use crate::flows::trace::TracedPacket;
use crate::flows::{Analysis, Connection, Form};
use crate::report::flows::vantage_label;
use crate::topology::{Role, VantageId};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Where along the path a column stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    Client,
    /// A capture that is none of the others (a mirror port left whole, a router).
    Other,
    Director,
    /// A real server where the tunnel arrives (its eth0).
    RealServer,
    /// A real server's interface that shows the requests unwrapped (tunl0, a GUE or GRE
    /// device): the tunnel's end.
    Decapsulated,
}

impl Place {
    /// A word for machines (the SVG's `data-place`).
    pub fn id(self) -> &'static str {
        match self {
            Place::Client => "client",
            Place::Other => "other",
            Place::Director => "director",
            Place::RealServer => "real_server",
            Place::Decapsulated => "tunnel_end",
        }
    }
    /// The words a column header uses.
    pub fn name(self) -> &'static str {
        match self {
            Place::Client => "client",
            Place::Other => "other",
            Place::Director => "director",
            Place::RealServer => "real server",
            Place::Decapsulated => "RS tunnel end",
        }
    }
}

/// A column's clock against the reference capture's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Reference,
    /// This capture's clock minus the reference's, within +- the uncertainty.
    Offset {
        offset_ns: i64,
        uncertainty_ns: i64,
    },
    /// No packet in common with the captures linked to the reference: taken as the same.
    Unknown,
}

/// One vantage point of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub vantage: VantageId,
    pub place: Place,
    /// What the column is called: the place's name, or for a tunnel's end the device
    /// ("RS tunl0": the interface's name when the capture gives it, tunl0 for IP-in-IP).
    pub name: String,
    /// The host's address as far as LVS goes (the client's for a client capture).
    pub address: Option<IpAddr>,
    /// The capture file, and the interface or hop when it has several: escaped for a terminal
    /// (control characters written out), not yet for XML or Mermaid.
    pub capture: String,
    /// The interface name the capture gives, escaped as `capture` is.
    pub interface: Option<String>,
    /// This capture's clock against the reference's.
    pub clock: Clock,
    /// When the capture ran, by the reference clock.
    pub span: Option<(i64, i64)>,
}

/// The columns for `conn`: every vantage point that saw it, and the captures of the real
/// server it went to that saw none of it (where its requests should have arrived).
pub fn columns(a: &Analysis, conn: &Connection, packets: &[TracedPacket]) -> Vec<Column> {
    let mut seen: BTreeSet<VantageId> = conn.legs.iter().map(|l| l.vantage).collect();
    seen.extend(packets.iter().map(|p| p.vantage()));
    let wrapped_at = |v: VantageId| {
        packets
            .iter()
            .any(|p| p.vantage() == v && p.form == Form::RequestWrapped)
            || conn
                .legs
                .iter()
                .any(|l| l.vantage == v && l.request_wrapped.is_some())
    };
    let mut out: Vec<Column> = Vec::new();
    for vantage in &a.topology.vantages {
        let ours = seen.contains(&vantage.id);
        let server_capture = vantage.role == Role::RealServer
            && conn.real_server.is_some()
            && vantage.address == conn.real_server;
        if !(ours || server_capture) {
            continue;
        }
        let raw = crate::flows::join::is_raw_ip(vantage.link_type);
        let place = match vantage.role {
            Role::Client => Place::Client,
            Role::Director => Place::Director,
            Role::RealServer if !wrapped_at(vantage.id) && raw => Place::Decapsulated,
            Role::RealServer
                if !wrapped_at(vantage.id)
                    && ours
                    && wrapped_elsewhere(a, conn, vantage.address, packets) =>
            {
                Place::Decapsulated
            }
            Role::RealServer => Place::RealServer,
            Role::Other => Place::Other,
        };
        let address = match place {
            Place::Client => Some(conn.client.ip()),
            _ => vantage.address,
        };
        let interface = a
            .captures
            .iter()
            .find(|c| c.capture == vantage.id.capture)
            .and_then(|c| {
                c.interfaces
                    .iter()
                    .find(|(i, _)| *i == vantage.id.interface)
            })
            .map(|(_, n)| crate::escape::printable(n, 64));
        let offset = offset_of(&a.clock_offsets, vantage.id);
        let own_to_reference = offset.map(|o| o.offset_ns).unwrap_or(0);
        let name = match (place, &interface) {
            (Place::Decapsulated, Some(i)) => format!("RS {i}"),
            (Place::Decapsulated, None) if ipip(packets, address) => "RS tunl0".into(),
            _ => place.name().to_string(),
        };
        out.push(Column {
            vantage: vantage.id,
            place,
            name,
            address,
            capture: vantage_label(a, vantage.id),
            interface,
            clock: match offset {
                Some(o) if o.method == OffsetMethod::Reference => Clock::Reference,
                Some(o) if o.method != OffsetMethod::Unmatched => Clock::Offset {
                    offset_ns: o.offset_ns,
                    uncertainty_ns: o.uncertainty_ns,
                },
                _ => Clock::Unknown,
            },
            span: vantage
                .first_ts_ns
                .zip(vantage.last_ts_ns)
                .map(|(f, l)| (f - own_to_reference, l - own_to_reference)),
        });
    }
    // Along the path: clients, others, directors, then each real server followed by the
    // interface where its tunnel ends.
    out.sort_by_key(|c| {
        let group = match c.place {
            Place::Client => 0,
            Place::Other => 1,
            Place::Director => 2,
            Place::RealServer | Place::Decapsulated => 3,
        };
        (group, c.address, c.place, c.vantage)
    });
    out
}

/// Whether the requests to the real server at `address` were wrapped in IPv4 IP-in-IP, whose
/// end on Linux is tunl0.
fn ipip(packets: &[TracedPacket], address: Option<IpAddr>) -> bool {
    packets.iter().any(|p| {
        p.outer
            .is_some_and(|o| o.kind == TunnelKind::IpIp && Some(o.dst) == address)
    })
}

/// Whether another capture of the real server at `address` saw this connection's requests
/// wrapped: then a capture of it that saw them unwrapped is where the tunnel ends (`tcpdump -i
/// tunl0` on a cooked or Ethernet link).
fn wrapped_elsewhere(
    a: &Analysis,
    conn: &Connection,
    address: Option<IpAddr>,
    packets: &[TracedPacket],
) -> bool {
    let at_server = |v: VantageId| {
        a.topology
            .vantages
            .iter()
            .any(|x| x.id == v && x.role == Role::RealServer && x.address == address)
    };
    packets
        .iter()
        .any(|p| p.form == Form::RequestWrapped && at_server(p.vantage()))
        || conn
            .legs
            .iter()
            .any(|l| l.request_wrapped.is_some() && at_server(l.vantage))
}
