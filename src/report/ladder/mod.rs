//! Ladder diagrams of one connection: one column per vantage point (client, director, real
//! server, the real server's tunnel end), one arrow per packet through every vantage point that
//! saw it, at its clock-corrected time; the wrapped request with its outer and inner headers,
//! the reply straight from the real server to the client, losses and retransmissions marked.
//!
//! [`build`] lays a connection out from its traced packets ([`crate::flows::trace`]);
//! [`text`], [`svg`] and [`mermaid`] draw the layout for a terminal, a web page and a ticket.

pub mod arrows;
pub mod columns;
pub mod findings;
pub mod label;
pub mod mermaid;
pub mod svg;
pub mod text;

pub use arrows::{Arrow, ArrowKind, Cell, Sighting};
pub use columns::{Clock, Column, Place};
pub use mermaid::mermaid;
pub use svg::svg;
pub use text::text;

use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::flows::trace::{collect, TracedPacket};
use crate::flows::{Analysis, Connection, Outcome};
use crate::report::flows::vantage_label;
use crate::topology::Proto;
use std::net::{IpAddr, SocketAddr};

/// Packets drawn per connection, at most: past this the ladder says how many it left out.
pub const PACKET_LIMIT: usize = 5000;

/// The ladders of `conns` (connections of `analysis`), the captures read again for their
/// packets ([`crate::flows::trace::collect`], at most [`PACKET_LIMIT`] each). Also returns
/// the captures that could not be read again, and why.
pub fn of_connections(
    files: &[CaptureSource],
    decode: DecodeOptions,
    analysis: &Analysis,
    conns: &[&Connection],
) -> (Vec<Ladder>, Vec<String>) {
    let traces = collect(files, decode, analysis, conns, PACKET_LIMIT);
    let ladders = conns
        .iter()
        .zip(&traces.packets)
        .zip(&traces.left_out)
        .map(|((c, packets), left_out)| build(analysis, c, packets, *left_out))
        .collect();
    (ladders, traces.unread)
}

/// A connection laid out as a ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// The connection's number (as the flows table numbers it).
    pub id: u64,
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real_server: Option<IpAddr>,
    pub outcome: Outcome,
    /// The reference capture, escaped for a terminal ([`vantage_label`]).
    pub reference: Option<String>,
    /// The first packet, by the reference clock: times are shown relative to it.
    pub start_ns: i64,
    pub columns: Vec<Column>,
    /// In order of their first sighting.
    pub arrows: Vec<Arrow>,
    /// Packets of the connection past the number read, not drawn.
    pub left_out: u64,
}

/// Lays out `conn` (a connection of `analysis`) from its packets, as
/// [`crate::flows::trace::collect`] gathers them (in reference time order). `left_out` is the
/// number of its packets that were not gathered (the collect limit).
pub fn build(
    analysis: &Analysis,
    conn: &Connection,
    packets: &[TracedPacket],
    left_out: u64,
) -> Ladder {
    let columns = columns::columns(analysis, conn, packets);
    let arrows = arrows::arrows(&columns, conn, packets);
    let reference = analysis
        .clock_offsets
        .first()
        .map(|o| vantage_label(analysis, o.reference));
    Ladder {
        id: conn.id,
        proto: conn.proto,
        client: conn.client,
        vip: conn.vip,
        real_server: conn.real_server,
        outcome: conn.outcome,
        reference,
        start_ns: arrows
            .iter()
            .map(|a| a.at_ns)
            .min()
            .unwrap_or(conn.first_ts_ns),
        columns,
        arrows,
        left_out,
    }
}

impl Ladder {
    /// "Connection 2: tcp 172.25.254.67:34746 > 172.25.67.100:80, real server 172.25.67.2,
    /// completed".
    pub fn title(&self) -> String {
        let rs = match self.real_server {
            Some(r) => format!("real server {r}"),
            None => "real server unknown".into(),
        };
        format!(
            "Connection {}: {} {} > {}, {rs}, {}",
            self.id, self.proto, self.client, self.vip, self.outcome
        )
    }

    /// Milliseconds after the first packet.
    pub fn ms(&self, at_ns: i64) -> String {
        format!("{:.3}", (at_ns - self.start_ns) as f64 / 1e6)
    }

    /// What the legend says about each mark, for those the ladder uses.
    pub fn notes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let any = |f: &dyn Fn(&Arrow) -> bool| self.arrows.iter().any(f);
        if any(&|a| a.wrapped.iter().any(|w| *w)) {
            out.push("wrapped: inside the tunnel, outer header director > real server");
        }
        if any(&|a| a.lost_at.is_some()) {
            out.push(
                "lost: should have arrived there next, and the capture there ran but never saw it",
            );
        }
        if any(&|a| a.unanswered) {
            out.push("no answer: reached its last capture and no reply ever acknowledged it");
        }
        if any(&|a| a.cells.iter().any(|c| c.1 == Cell::Missed)) {
            out.push(
                "not captured: passed there (it was seen further on) but that capture missed it",
            );
        }
        if any(&|a| a.retransmission) {
            out.push("retransmission: repeats sequence space its sender had sent before");
        }
        out
    }
}

/// A column's heading: "client 172.25.254.67", "real server 172.25.67.2".
pub fn heading(c: &Column) -> String {
    match c.address {
        Some(a) => format!("{} {a}", c.name),
        None => c.name.clone(),
    }
}

/// A column's clock: "reference clock", "clock -0.008 ms ± 0.121 ms".
pub fn clock(c: &Column) -> String {
    match c.clock {
        Clock::Reference => "reference clock".into(),
        Clock::Offset {
            offset_ns,
            uncertainty_ns,
        } => format!(
            "clock {:+.3} ms ± {:.3} ms",
            offset_ns as f64 / 1e6,
            uncertainty_ns as f64 / 1e6
        ),
        Clock::Unknown => "clock not matched (taken as the reference's)".into(),
    }
}
