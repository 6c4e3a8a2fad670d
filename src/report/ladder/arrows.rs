//! Packets into arrows. A packet seen at several vantage points (leaving the client, arriving
//! at the director, leaving it wrapped, arriving at the real server) is one arrow through all
//! of them; where it should have arrived next and the capture there, running at the time, did
//! not see it, it was lost; a request that reached its last vantage point and that no reply
//! ever acknowledged got no answer.

use super::columns::{Column, Place};
use super::label;
use crate::decode::packet::Tcp;
use crate::flows::trace::{OuterHeader, TracedPacket};
use crate::flows::{Connection, Form, Outcome};
use crate::topology::{FrameRef, Proto};
use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, SocketAddr};

/// Sightings of one packet further apart than this are of different packets.
const SAME_PACKET_NS: i64 = 1_000_000_000;
/// A director forwards a packet within this time of its arrival.
const FORWARD_NS: i64 = 200_000_000;
/// A request is unanswered when a capture that would see the answer ran this long after it.
const ANSWER_WAIT_NS: i64 = 1_000_000_000;

/// What an arrow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// Client to VIP (wrapped or not on the way).
    Request,
    /// VIP (or a real server's own address) to the client.
    Reply,
    /// An ICMP error about the connection.
    Icmp,
}

/// One sighting of the packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub column: usize,
    pub frame: FrameRef,
    /// Reference clock.
    pub at_ns: i64,
    pub form: Form,
    pub outer: Option<OuterHeader>,
}

/// What the arrow does at a column it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Captured here.
    Seen,
    /// On its way, and the capture here ran, but it was not captured here (it was further on).
    Missed,
    /// Not on its way: the arrow passes over this column (a reply over the director).
    Crossed,
    /// It should have arrived here next, the capture ran, and it never did.
    Lost,
}

/// One packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub kind: ArrowKind,
    /// The first sighting, by the reference clock.
    pub at_ns: i64,
    /// In the order the packet passed them.
    pub sightings: Vec<Sighting>,
    /// The columns it spans in the order it travelled, each with what it did there.
    pub cells: Vec<(usize, Cell)>,
    /// Per step between consecutive cells: whether it travelled wrapped in a tunnel.
    pub wrapped: Vec<bool>,
    /// "SYN seq 0", "PSH-ACK seq 1 ack 1 len 77", "ICMP port unreachable from 10.7.0.12".
    pub label: String,
    /// The tunnel's outer header, when it travelled wrapped.
    pub outer: Option<OuterHeader>,
    /// The (inner) packet's ends.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub retransmission: bool,
    /// The column where it should have arrived and did not.
    pub lost_at: Option<usize>,
    /// A request that reached its last vantage point and was never answered there.
    pub unanswered: bool,
}

impl Arrow {
    /// Whether it travels towards higher columns (requests), else towards lower ones.
    pub fn rightwards(&self) -> bool {
        match self.cells.as_slice() {
            [(a, _), .., (b, _)] => b > a,
            _ => self.kind == ArrowKind::Request,
        }
    }
    pub fn first_column(&self) -> usize {
        self.cells[0].0
    }
    pub fn last_column(&self) -> usize {
        self.cells[self.cells.len() - 1].0
    }
    pub fn frames(&self) -> impl Iterator<Item = &FrameRef> {
        self.sightings.iter().map(|s| &s.frame)
    }
}

/// Place of a sighting along its packet's path (requests from the client, replies from the
/// server).
fn position(place: Place, form: Form) -> u8 {
    match (form.is_request(), place, form) {
        (true, Place::Client, _) => 0,
        (true, Place::Other, _) => 1,
        (true, Place::Director, Form::Request) => 2,
        (true, Place::Director, _) => 3,
        (true, Place::RealServer, _) => 4,
        (true, Place::Decapsulated, _) => 5,
        (false, Place::RealServer | Place::Decapsulated, _) => 0,
        (false, Place::Director, _) => 1,
        (false, Place::Other, _) => 2,
        (false, Place::Client, _) => 3,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Packet(u64, bool),
    Icmp(IpAddr, IpAddr, u8, u8, Option<u32>),
}

fn key(p: &TracedPacket) -> Key {
    match p.icmp {
        Some(i) => Key::Icmp(p.src.ip(), p.dst.ip(), i.icmp_type, i.code, i.mtu),
        None => Key::Packet(p.identity, p.form.is_request()),
    }
}

/// The arrows of `conn`, in order of their first sighting. `packets` are in reference time
/// order ([`crate::flows::trace::collect`]).
pub fn arrows(columns: &[Column], conn: &Connection, packets: &[TracedPacket]) -> Vec<Arrow> {
    let column_of: HashMap<_, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.vantage, i))
        .collect();
    // Sightings of one packet: the same identity, each vantage point and form at most once.
    let mut groups: Vec<Vec<&TracedPacket>> = Vec::new();
    let mut open: HashMap<Key, Vec<usize>> = HashMap::default();
    for p in packets {
        if !column_of.contains_key(&p.vantage()) {
            continue;
        }
        let candidates = open.entry(key(p)).or_default();
        // A packet passes each vantage point once in each form, but a director twice in the
        // same form when it forwards without a tunnel (direct routing: in, then out to the
        // real server's MAC), soon after.
        let director = columns[column_of[&p.vantage()]].place == Place::Director;
        let fits = |g: &Vec<&TracedPacket>| {
            let same: Vec<&&TracedPacket> = g
                .iter()
                .filter(|q| q.vantage() == p.vantage() && q.form == p.form)
                .collect();
            let room = match same.as_slice() {
                [] => true,
                [q] => director && p.form == Form::Request && p.at_ns - q.at_ns <= FORWARD_NS,
                _ => false,
            };
            room && p.at_ns - g[g.len() - 1].at_ns <= SAME_PACKET_NS
        };
        match candidates.iter().find(|&&g| fits(&groups[g])) {
            Some(&g) => groups[g].push(p),
            None => {
                candidates.push(groups.len());
                groups.push(vec![p]);
            }
        }
    }
    let isns = label::Isns::of(conn, packets);
    let context = Context {
        columns,
        conn,
        packets,
    };
    let mut out: Vec<Arrow> = groups
        .iter()
        .map(|g| context.arrow(g, &column_of, &isns))
        .collect();
    out.sort_by_key(|a| {
        (
            a.at_ns,
            a.sightings[0].frame.capture,
            a.sightings[0].frame.frame,
        )
    });
    out
}

struct Context<'a> {
    columns: &'a [Column],
    conn: &'a Connection,
    packets: &'a [TracedPacket],
}

impl Context<'_> {
    fn arrow(
        &self,
        group: &[&TracedPacket],
        column_of: &HashMap<crate::topology::VantageId, usize>,
        isns: &label::Isns,
    ) -> Arrow {
        let first = group[0];
        let kind = if first.icmp.is_some() {
            ArrowKind::Icmp
        } else if first.form.is_request() {
            ArrowKind::Request
        } else {
            ArrowKind::Reply
        };
        let mut group: Vec<&TracedPacket> = group.to_vec();
        if kind != ArrowKind::Icmp {
            group.sort_by_key(|p| {
                let place = self.columns[column_of[&p.vantage()]].place;
                (position(place, p.form), p.at_ns)
            });
        }
        let sightings: Vec<Sighting> = group
            .iter()
            .map(|p| Sighting {
                column: column_of[&p.vantage()],
                frame: p.frame,
                at_ns: p.at_ns,
                form: p.form,
                outer: p.outer,
            })
            .collect();
        let at_ns = group.iter().map(|p| p.at_ns).min().unwrap_or(first.at_ns);
        let (cells, lost_at) = self.cells(kind, first, &sightings);
        // A step is wrapped when the packet arrived wrapped, or, where it did not arrive (lost,
        // missed), when it left wrapped.
        let wrapped = cells
            .windows(2)
            .map(|w| {
                let arriving = sightings.iter().find(|s| s.column == w[1].0);
                let leaving = sightings.iter().rev().find(|s| s.column == w[0].0);
                arriving.or(leaving).is_some_and(|s| s.outer.is_some())
            })
            .collect();
        let unanswered =
            kind == ArrowKind::Request && lost_at.is_none() && self.unanswered(first, &sightings);
        Arrow {
            kind,
            at_ns,
            label: label::label(first, isns),
            outer: group.iter().find_map(|p| p.outer),
            src: first.src,
            dst: first.dst,
            // As its sender (or the first capture on its way) saw it: a director's second copy
            // of a packet it forwards repeats its sequence space without being resent.
            retransmission: group[0].retransmission,
            cells,
            wrapped,
            sightings,
            lost_at,
            unanswered,
        }
    }

    /// Whether column `c` is on the way of a packet of this kind (the path a request or a
    /// reply of this connection takes through the captured hosts).
    fn on_path(&self, kind: ArrowKind, c: usize) -> bool {
        let col = &self.columns[c];
        let server = self.conn.real_server.is_some() && col.address == self.conn.real_server;
        match (kind, col.place) {
            (_, Place::Client) => kind != ArrowKind::Icmp,
            (ArrowKind::Request, Place::Director) => true,
            (ArrowKind::Request, Place::RealServer | Place::Decapsulated) => server,
            (ArrowKind::Reply, Place::RealServer) => server,
            _ => false,
        }
    }

    fn running(&self, c: usize, at_ns: i64) -> bool {
        self.columns[c]
            .span
            .is_some_and(|(from, to)| (from..=to).contains(&at_ns))
    }

    fn cells(
        &self,
        kind: ArrowKind,
        first: &TracedPacket,
        sightings: &[Sighting],
    ) -> (Vec<(usize, Cell)>, Option<usize>) {
        let seen = |c: usize| sightings.iter().any(|s| s.column == c);
        let start = sightings[0].column;
        let end = sightings[sightings.len() - 1].column;
        let last = &sightings[sightings.len() - 1];
        let rightwards = match kind {
            ArrowKind::Icmp => {
                if start == end {
                    // Towards the end of the path its destination stands at.
                    !self
                        .columns
                        .iter()
                        .take(start)
                        .any(|c| c.address == Some(first.dst.ip()))
                } else {
                    end > start
                }
            }
            ArrowKind::Request => end >= start,
            ArrowKind::Reply => end > start,
        };
        let step = |c: usize| {
            if rightwards {
                c.checked_add(1)
            } else {
                c.checked_sub(1)
            }
        };
        // A director that wraps this connection's requests and let this one in only: dropped
        // there (too big for the tunnel, no real server). Else the next column on its way
        // that a running capture should have seen it at.
        let mut lost_at = None;
        let director_drop = || {
            kind == ArrowKind::Request
                && self.columns[end].place == Place::Director
                && last.form == Form::Request
                && self.packets.iter().any(|p| {
                    p.form == Form::RequestWrapped && p.vantage() == self.columns[end].vantage
                })
        };
        if kind != ArrowKind::Icmp && director_drop() {
            lost_at = Some(end);
        } else if kind != ArrowKind::Icmp {
            let mut c = step(end);
            while let Some(i) = c.filter(|i| *i < self.columns.len()) {
                if self.on_path(kind, i) {
                    if self.running(i, last.at_ns) {
                        lost_at = Some(i);
                    }
                    break;
                }
                c = step(i);
            }
        }
        // A request seen unwrapped past the director never went through it (the client sent
        // it to a real server that claimed the VIP): the director did not miss it.
        let tunnelled = sightings.iter().any(|s| s.outer.is_some());
        let through = |c: usize| self.columns[c].place != Place::Director || tunnelled;
        let stop = lost_at.filter(|l| *l != end).unwrap_or(end);
        let mut cells = Vec::new();
        let mut c = start;
        loop {
            let cell = if Some(c) == lost_at && !seen(c) {
                Cell::Lost
            } else if seen(c) {
                Cell::Seen
            } else if self.on_path(kind, c) && self.running(c, last.at_ns) && through(c) {
                Cell::Missed
            } else {
                Cell::Crossed
            };
            cells.push((c, cell));
            if c == stop {
                break;
            }
            match step(c) {
                Some(n) => c = n,
                None => break,
            }
        }
        (cells, lost_at)
    }

    /// A request that takes sequence space (TCP) and that no reply seen anywhere acknowledged,
    /// though a capture that would have seen the answer ran on long enough; for UDP (and
    /// SCTP), a request of a connection that got no reply at all.
    fn unanswered(&self, p: &TracedPacket, sightings: &[Sighting]) -> bool {
        let at = sightings.iter().map(|s| s.at_ns).max().unwrap_or(p.at_ns);
        let watched = self.columns.iter().enumerate().any(|(i, c)| {
            self.on_path(ArrowKind::Reply, i)
                && c.span.is_some_and(|(_, to)| to >= at + ANSWER_WAIT_NS)
        });
        if !watched {
            return false;
        }
        let replies = || {
            self.packets
                .iter()
                .filter(|r| !r.form.is_request() && r.icmp.is_none())
        };
        if self.conn.proto != Proto::TCP {
            return self.conn.outcome == Outcome::Unanswered && replies().next().is_none();
        }
        let Some(end) = label::seq_end(p) else {
            return false;
        };
        !replies().any(|r| {
            r.tcp
                .is_some_and(|t| t.flags & Tcp::ACK != 0 && (t.ack.wrapping_sub(end) as i32) >= 0)
        })
    }
}
