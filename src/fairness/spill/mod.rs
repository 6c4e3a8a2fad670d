//! The connection table of a long capture, on disk: what keeps `verify`'s memory from growing
//! with every connection of the capture.
//!
//! Past a number of connections ([`super::table::ConnTable`] decides), the rows go to an
//! unnamed temporary file (in `TMPDIR`, removed by the system when it is closed) as sorted
//! runs, as `sort(1)` does: the rows come in the order their connections ended, a run at a time
//! is sorted in memory and written. When every row is in, the runs are merged into one file
//! in table order, in blocks of [`BLOCK_ROWS`] rows with the place of each block kept in memory.
//! The replay reads the table nearly always in order, and from several threads (one list
//! order each): each thread reads the block it is in and keeps it ([`Sorted::head`]), where a row's
//! fixed part is read in place.
//!
//! A file that cannot be made or written does not stop the analysis: what could not go to disk
//! stays in memory, encoded, and the table says so ([`Spill::trouble`]). Reading back what was
//! written is the one failure with no way around it (the rows would be lost): it stops the run
//! with the file's error.

mod runs;
mod sorted;
mod store;

pub(super) use runs::Spill;
pub(super) use sorted::{RowHead, Sorted};

use super::input::TcpMarks;
use crate::topology::FrameRef;
use crate::varint;
use std::cmp::Ordering;
use std::net::IpAddr;

/// Rows sorted and written at a time while the connections come.
pub(super) const RUN_ROWS: usize = 16_384;
/// Rows in a block of the sorted table: what a thread decodes at once.
pub(super) const BLOCK_ROWS: usize = 1024;
/// Bytes of a run read at a time by the merge.
pub(super) const READ_BYTES: usize = 64 * 1024;
/// The most bytes one row takes (see [`put_row`]): its start, client, port and server, then the
/// details ([`put_details`]).
pub(super) const MAX_ROW: usize = 10 + 5 + 3 + 5 + MAX_DETAILS;
/// The most bytes one connection's details take: the flags; the last packet, four TCP marks,
/// the first frame's time and the response time as variable-length differences; the first
/// frame's capture, interface and number.
pub(super) const MAX_DETAILS: usize = 1 + 10 * 7 + 5 + 5 + 10;

/// No real server seen for the connection.
pub(super) const NO_SERVER: u32 = u32::MAX;

// What the first byte of a connection's details says is there.
const HAS_TCP: u8 = 1;
const HAS_SYN: u8 = 1 << 1;
const HAS_ACK: u8 = 1 << 2;
const HAS_FIN: u8 = 1 << 3;
const HAS_RST: u8 = 1 << 4;
const HAS_FRAME: u8 = 1 << 5;
/// The entry was created by the first packet (rows only; the in-memory record keeps it apart).
const CREATED_AT_START: u8 = 1 << 6;
const HAS_RESPONSE: u8 = 1 << 7;

/// One connection of the table, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Row {
    pub start_ns: i64,
    /// Index into the table's client addresses.
    pub client: u32,
    pub port: u16,
    pub created_at_start: bool,
    /// Index into the table's servers, or [`NO_SERVER`].
    pub rs: u32,
    pub last_ns: i64,
    pub tcp: Option<TcpMarks>,
    pub first_frame: Option<FrameRef>,
    pub response_ns: Option<i64>,
}

/// What [`get_details`] reads back.
pub(super) struct Details {
    pub last_ns: i64,
    pub tcp: Option<TcpMarks>,
    pub first_frame: Option<FrameRef>,
    /// Client's first request to the server's first answer ([`super::input::ConnObs`]).
    pub response_ns: Option<i64>,
}

/// Writes a connection's details: the times as differences from `start`, and whether its entry
/// was created by its first packet (a row's flag; the in-memory record and the sorted blocks
/// keep it in their fixed part and pass false).
pub(super) fn put_details(out: &mut Vec<u8>, start: i64, d: &Details, created_at_start: bool) {
    let m = d.tcp.unwrap_or_default();
    let marks = [
        (m.syn_ns, HAS_SYN),
        (m.ack_ns, HAS_ACK),
        (m.fin_ns, HAS_FIN),
        (m.rst_ns, HAS_RST),
    ];
    let mut flags = if d.tcp.is_some() { HAS_TCP } else { 0 };
    for (t, bit) in marks {
        if t.is_some() {
            flags |= bit;
        }
    }
    if d.first_frame.is_some() {
        flags |= HAS_FRAME;
    }
    if created_at_start {
        flags |= CREATED_AT_START;
    }
    if d.response_ns.is_some() {
        flags |= HAS_RESPONSE;
    }
    out.push(flags);
    varint::put_diff(out, d.last_ns, start);
    for t in marks.iter().filter_map(|m| m.0) {
        varint::put_diff(out, t, start);
    }
    if let Some(f) = d.first_frame {
        varint::put(out, u64::from(f.capture));
        varint::put(out, u64::from(f.interface));
        varint::put(out, f.frame);
        varint::put_diff(out, f.ts_ns, start);
    }
    if let Some(r) = d.response_ns {
        varint::put_diff(out, r, 0);
    }
}

/// The times of a connection's details (at `*at`, moved past them), its flags, and, when
/// `all`, its first frame and response time (without, `*at` stops before them).
pub(super) fn get_details(bytes: &[u8], at: &mut usize, start: i64, all: bool) -> (Details, u8) {
    let flags = bytes[*at];
    *at += 1;
    let last_ns = varint::get_diff(bytes, at, start);
    let mut mark = |bit: u8| (flags & bit != 0).then(|| varint::get_diff(bytes, at, start));
    let marks = TcpMarks {
        syn_ns: mark(HAS_SYN),
        ack_ns: mark(HAS_ACK),
        fin_ns: mark(HAS_FIN),
        rst_ns: mark(HAS_RST),
    };
    let first_frame = (all && flags & HAS_FRAME != 0).then(|| FrameRef {
        capture: varint::get(bytes, at) as u32,
        interface: varint::get(bytes, at) as u32,
        frame: varint::get(bytes, at),
        ts_ns: varint::get_diff(bytes, at, start),
    });
    let response_ns = (all && flags & HAS_RESPONSE != 0).then(|| varint::get_diff(bytes, at, 0));
    let details = Details {
        last_ns,
        tcp: (flags & HAS_TCP != 0).then_some(marks),
        first_frame,
        response_ns,
    };
    (details, flags)
}

impl Row {
    pub fn details(&self) -> Details {
        Details {
            last_ns: self.last_ns,
            tcp: self.tcp,
            first_frame: self.first_frame,
            response_ns: self.response_ns,
        }
    }
}

/// Appends `r`, its start as a difference from `previous` (the row before it, sorted).
pub(super) fn put_row(out: &mut Vec<u8>, r: &Row, previous: i64) {
    varint::put_diff(out, r.start_ns, previous);
    varint::put(out, u64::from(r.client));
    varint::put(out, u64::from(r.port));
    varint::put(out, u64::from(r.rs.wrapping_add(1)));
    put_details(out, r.start_ns, &r.details(), r.created_at_start);
}

pub(super) fn get_row(bytes: &[u8], at: &mut usize, previous: i64) -> Row {
    let start_ns = varint::get_diff(bytes, at, previous);
    let client = varint::get(bytes, at) as u32;
    let port = varint::get(bytes, at) as u16;
    let rs = (varint::get(bytes, at) as u32).wrapping_sub(1);
    let (d, flags) = get_details(bytes, at, start_ns, true);
    Row {
        start_ns,
        client,
        port,
        created_at_start: flags & CREATED_AT_START != 0,
        rs,
        last_ns: d.last_ns,
        tcp: d.tcp,
        first_frame: d.first_frame,
        response_ns: d.response_ns,
    }
}

/// Table order: first packet, then client address, then port (the arrival order breaks the
/// remaining ties: a stable sort, and runs merged in the order they were written).
pub(super) fn table_order(a: &Row, b: &Row, clients: &[IpAddr]) -> Ordering {
    (a.start_ns, clients[a.client as usize], a.port).cmp(&(
        b.start_ns,
        clients[b.client as usize],
        b.port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn row(start: i64, client: u32, port: u16, rs: u32) -> Row {
        Row {
            start_ns: start,
            client,
            port,
            created_at_start: start.rem_euclid(2) == 0,
            rs,
            last_ns: start.wrapping_add(5),
            tcp: Some(TcpMarks {
                syn_ns: Some(start),
                ack_ns: None,
                fin_ns: Some(start.wrapping_add(4)),
                rst_ns: None,
            }),
            first_frame: port.is_multiple_of(3).then_some(FrameRef {
                capture: 1,
                interface: 0,
                frame: u64::from(port),
                ts_ns: start.wrapping_sub(7),
            }),
            response_ns: (port % 2 == 1).then_some(start / 3),
        }
    }

    #[test]
    fn rows_come_back_sorted_by_start_client_port_then_arrival() {
        // Client 0 is the larger address: the order is by address, not by index.
        let clients: Vec<IpAddr> = vec!["10.0.0.9".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        let rank = [1, 0];
        let mut spill = Spill::new(RUN_ROWS);
        let mut want = Vec::new();
        // Three and a half runs, starts going down and up, many ties.
        let n = RUN_ROWS * 3 + RUN_ROWS / 2;
        for k in 0..n {
            let start = ((k * 7919) % 5000) as i64 - 100;
            let r = row(start, (k % 2) as u32, (k % 3) as u16, (k % 5) as u32);
            let r = Row {
                rs: if k % 11 == 0 { NO_SERVER } else { r.rs },
                // Arrival, to check the ties: the frame number.
                first_frame: Some(FrameRef {
                    capture: 0,
                    interface: 0,
                    frame: k as u64,
                    ts_ns: 0,
                }),
                ..r
            };
            spill.push(r, &clients);
            want.push(r);
        }
        assert_eq!(spill.len(), n);
        want.sort_by(|a, b| table_order(a, b, &clients));
        let sorted = spill.sort(&clients, &rank);
        assert!(sorted.trouble().is_none(), "{:?}", sorted.trouble());
        assert_eq!(sorted.len(), n);
        let got: Vec<Row> = (0..n).map(|i| sorted.row(i)).collect();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                *g,
                Row {
                    client: rank[w.client as usize],
                    ..*w
                }
            );
        }
        // Read out of order too (another block, then back).
        assert_eq!(sorted.row(5).start_ns, want[5].start_ns);
        assert_eq!(sorted.head(n - 1).1, want[n - 1].port);
        assert_eq!(sorted.head(6).4, want[6].start_ns);
    }

    #[test]
    fn extreme_rows_survive_the_trip() {
        let mut r = row(i64::MAX, u32::MAX - 1, u16::MAX, NO_SERVER);
        r.last_ns = i64::MIN;
        r.tcp = None;
        let mut bytes = Vec::new();
        put_row(&mut bytes, &r, i64::MIN);
        assert!(bytes.len() <= MAX_ROW);
        let mut at = 0;
        assert_eq!(get_row(&bytes, &mut at, i64::MIN), r);
        assert_eq!(at, bytes.len());
    }
}
