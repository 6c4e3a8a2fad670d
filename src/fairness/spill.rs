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

use super::input::TcpMarks;
use crate::topology::FrameRef;
use crate::varint;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// Rows sorted and written at a time while the connections come.
const RUN_ROWS: usize = 16_384;
/// Rows in a block of the sorted table: what a thread decodes at once.
const BLOCK_ROWS: usize = 1024;
/// Bytes of a run read at a time by the merge.
const READ_BYTES: usize = 64 * 1024;
/// The most bytes one row takes (see [`put_row`]): its start, client, port and server, then the
/// details ([`put_details`]).
const MAX_ROW: usize = 10 + 5 + 3 + 5 + MAX_DETAILS;
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

/// Writes a connection's details: the times as differences from `start`.
pub(super) fn put_details(
    out: &mut Vec<u8>,
    start: i64,
    d: &Details,
    created_at_start: Option<bool>,
) {
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
    if created_at_start == Some(true) {
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
fn put_row(out: &mut Vec<u8>, r: &Row, previous: i64) {
    varint::put_diff(out, r.start_ns, previous);
    varint::put(out, u64::from(r.client));
    varint::put(out, u64::from(r.port));
    varint::put(out, u64::from(r.rs.wrapping_add(1)));
    put_details(out, r.start_ns, &r.details(), Some(r.created_at_start));
}

fn get_row(bytes: &[u8], at: &mut usize, previous: i64) -> Row {
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
fn table_order(a: &Row, b: &Row, clients: &[IpAddr]) -> Ordering {
    (a.start_ns, clients[a.client as usize], a.port).cmp(&(
        b.start_ns,
        clients[b.client as usize],
        b.port,
    ))
}

/// Where bytes went: the file, or memory when the file could not be made or written.
struct Store {
    /// The temporary file and how many bytes it holds.
    file: Option<(File, u64)>,
    /// Whether more bytes may go to the file (not after a failed write).
    writable: bool,
    memory: Vec<u8>,
    /// Why the file is not (or no longer) used.
    trouble: Option<String>,
}

/// A span of bytes in a [`Store`]: its start and length.
#[derive(Debug, Clone, Copy)]
enum Place {
    File(u64, usize),
    Memory(usize, usize),
}

impl Place {
    fn len(self) -> usize {
        match self {
            Place::File(_, n) | Place::Memory(_, n) => n,
        }
    }
}

impl Store {
    fn new() -> Store {
        let dir = std::env::temp_dir();
        match tempfile::tempfile_in(&dir) {
            Ok(file) => Store {
                file: Some((file, 0)),
                writable: true,
                memory: Vec::new(),
                trouble: None,
            },
            Err(e) => Store {
                file: None,
                writable: false,
                memory: Vec::new(),
                trouble: Some(format!(
                    "no temporary file could be made in {} ({e})",
                    dir.display()
                )),
            },
        }
    }

    /// Writes `bytes` at the end; returns where they are.
    fn append(&mut self, bytes: &[u8]) -> Place {
        if let Some((file, len)) = self.file.as_mut().filter(|_| self.writable) {
            match file.write_all_at(bytes, *len) {
                Ok(()) => {
                    let place = Place::File(*len, bytes.len());
                    *len += bytes.len() as u64;
                    return place;
                }
                Err(e) => {
                    // What was written stays readable; nothing more goes there.
                    self.writable = false;
                    self.trouble = Some(format!(
                        "the temporary file in {} could not be written past {} bytes ({e})",
                        std::env::temp_dir().display(),
                        len
                    ));
                }
            }
        }
        let place = Place::Memory(self.memory.len(), bytes.len());
        self.memory.extend_from_slice(bytes);
        place
    }

    /// Reads `len` bytes from `skip` bytes into `place` into `buf` (replacing its contents).
    fn read(&self, place: Place, skip: usize, len: usize, buf: &mut Vec<u8>) {
        buf.clear();
        match place {
            Place::File(offset, _) => {
                buf.resize(len, 0);
                let (file, _) = self
                    .file
                    .as_ref()
                    .expect("only the file hands out places in it");
                if let Err(e) = file.read_exact_at(buf, offset + skip as u64) {
                    // The rows written there cannot be had any other way.
                    panic!(
                        "the connection table's temporary file in {} could not be read back \
                         ({e}); rerun with TMPDIR on another file system",
                        std::env::temp_dir().display()
                    );
                }
            }
            Place::Memory(start, _) => buf.extend_from_slice(&self.memory[start + skip..][..len]),
        }
    }
}

/// Rows on their way to disk: sorted runs, and the rows of the run being filled.
pub(super) struct Spill {
    store: Store,
    /// Each run's place and row count, in the order written.
    runs: Vec<(Place, usize)>,
    buffer: Vec<Row>,
    /// Rows a run holds.
    run_rows: usize,
    rows: usize,
}

impl Spill {
    /// Rows are sorted and written `run_rows` at a time (at most [`RUN_ROWS`]).
    pub fn new(run_rows: usize) -> Spill {
        let run_rows = run_rows.clamp(1, RUN_ROWS);
        Spill {
            store: Store::new(),
            runs: Vec::new(),
            buffer: Vec::with_capacity(run_rows),
            run_rows,
            rows: 0,
        }
    }

    /// Why some or all of the table stayed in memory, if it did.
    pub fn trouble(&self) -> Option<&str> {
        self.store.trouble.as_deref()
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// Adds a row; `clients` are the table's client addresses (for the order of a run).
    pub fn push(&mut self, row: Row, clients: &[IpAddr]) {
        self.buffer.push(row);
        self.rows += 1;
        if self.buffer.len() == self.run_rows {
            self.write_run(clients);
        }
    }

    fn write_run(&mut self, clients: &[IpAddr]) {
        if self.buffer.is_empty() {
            return;
        }
        self.buffer.sort_by(|a, b| table_order(a, b, clients));
        let mut bytes = Vec::with_capacity(self.buffer.len() * 32);
        let mut previous = 0;
        for r in &self.buffer {
            put_row(&mut bytes, r, previous);
            previous = r.start_ns;
        }
        let place = self.store.append(&bytes);
        self.runs.push((place, self.buffer.len()));
        self.buffer.clear();
    }

    /// Merges the runs into the table's order; `rank` gives each client index its place in
    /// address order, which the sorted rows carry instead.
    pub fn sort(mut self, clients: &[IpAddr], rank: &[u32]) -> Sorted {
        self.write_run(clients);
        self.buffer = Vec::new();
        let mut readers: Vec<RunReader> = self
            .runs
            .iter()
            .map(|&(place, rows)| RunReader::new(place, rows))
            .collect();
        // (start, client address, port, run): runs were written in arrival order, so the run
        // breaks ties as arrival does.
        let mut heads = BinaryHeap::with_capacity(readers.len());
        for (k, r) in readers.iter_mut().enumerate() {
            if let Some(row) = r.next(&self.store) {
                heads.push(Reverse(Head::of(row, k, clients)));
            }
        }
        // The sorted table goes in the runs' file, after them: one file, and the runs are not
        // read again once merged.
        let mut out = Sorted {
            store: self.store,
            blocks: Vec::new(),
            len: self.rows,
            id: NEXT_TABLE.fetch_add(1, AtomicOrdering::Relaxed),
        };
        let mut block = BlockWriter::default();
        while let Some(Reverse(head)) = heads.pop() {
            let mut row = head.row;
            row.client = rank[row.client as usize];
            block.push(&row);
            if block.rows == BLOCK_ROWS {
                out.blocks.push(out.store.append(&block.finish()));
            }
            if let Some(next) = readers[head.run].next(&out.store) {
                heads.push(Reverse(Head::of(next, head.run, clients)));
            }
        }
        if block.rows > 0 {
            out.blocks.push(out.store.append(&block.finish()));
        }
        out
    }
}

/// A row at the head of its run, ordered as the table is.
struct Head {
    key: (i64, IpAddr, u16, usize),
    row: Row,
    run: usize,
}

impl Head {
    fn of(row: Row, run: usize, clients: &[IpAddr]) -> Head {
        Head {
            key: (row.start_ns, clients[row.client as usize], row.port, run),
            row,
            run,
        }
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.key == other.key
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Reads one run's rows in order, [`READ_BYTES`] at a time.
struct RunReader {
    place: Place,
    rows_left: usize,
    /// Bytes of the run read so far.
    taken: usize,
    buf: Vec<u8>,
    at: usize,
    previous: i64,
}

impl RunReader {
    fn new(place: Place, rows: usize) -> RunReader {
        RunReader {
            place,
            rows_left: rows,
            taken: 0,
            buf: Vec::new(),
            at: 0,
            previous: 0,
        }
    }

    fn next(&mut self, store: &Store) -> Option<Row> {
        if self.rows_left == 0 {
            self.buf = Vec::new();
            return None;
        }
        let unread = self.place.len() - self.taken;
        if self.buf.len() - self.at < MAX_ROW && unread > 0 {
            // Keep the rest of the buffer, read what follows after it.
            let rest = self.buf.split_off(self.at);
            let len = unread.min(READ_BYTES);
            store.read(self.place, self.taken, len, &mut self.buf);
            self.buf.splice(0..0, rest);
            self.taken += len;
            self.at = 0;
        }
        let row = get_row(&self.buf, &mut self.at, self.previous);
        self.previous = row.start_ns;
        self.rows_left -= 1;
        Some(row)
    }
}

/// Source of [`Sorted::id`]: each sorted table has its own, so that the blocks a thread keeps
/// are never taken for another table's.
static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

/// The table in order, in blocks of [`BLOCK_ROWS`] rows on disk (or in memory).
pub(super) struct Sorted {
    store: Store,
    /// Where each block is.
    blocks: Vec<Place>,
    len: usize,
    id: u64,
}

/// Bytes of a row's fixed part in a block: start (8), client (4), port (2), whether the entry
/// was created by the first packet (1), server (4), where its details start in the block (4).
const HEAD_BYTES: usize = 23;

/// One block of the sorted table as written: the rows' fixed parts, each [`HEAD_BYTES`] long,
/// then their details ([`put_details`]). A row's fixed part is read where it lies, with no
/// decoding: the order search reads the client, server and creation time of every connection
/// once per list order it tries.
#[derive(Default)]
struct BlockWriter {
    heads: Vec<u8>,
    details: Vec<u8>,
    rows: usize,
}

impl BlockWriter {
    fn push(&mut self, r: &Row) {
        let at = u32::try_from(self.details.len()).expect("a block under 4 GB");
        self.heads.extend_from_slice(&r.start_ns.to_le_bytes());
        self.heads.extend_from_slice(&r.client.to_le_bytes());
        self.heads.extend_from_slice(&r.port.to_le_bytes());
        self.heads.push(u8::from(r.created_at_start));
        self.heads.extend_from_slice(&r.rs.to_le_bytes());
        self.heads.extend_from_slice(&at.to_le_bytes());
        put_details(&mut self.details, r.start_ns, &r.details(), None);
        self.rows += 1;
    }

    /// The block's bytes; the writer is empty again.
    fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.heads);
        bytes.append(&mut self.details);
        self.rows = 0;
        bytes
    }
}

/// The fixed part of a row: client, port, whether its entry was created by its first packet,
/// server, start.
pub(super) type RowHead = (u32, u16, bool, u32, i64);

/// A block a thread read: its table, its number, its bytes (as [`BlockWriter`] wrote them).
struct Block {
    table: u64,
    number: usize,
    bytes: Vec<u8>,
}

impl Block {
    fn head(&self, k: usize) -> (RowHead, usize) {
        let b = &self.bytes[k * HEAD_BYTES..][..HEAD_BYTES];
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let start = i64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let port = u16::from_le_bytes([b[12], b[13]]);
        (
            (word(8), port, b[14] != 0, word(15), start),
            word(19) as usize,
        )
    }

    /// Row `k` of a block of `rows` rows.
    fn row(&self, k: usize, rows: usize) -> Row {
        let ((client, port, created_at_start, rs, start_ns), at) = self.head(k);
        let mut at = rows * HEAD_BYTES + at;
        let (d, _) = get_details(&self.bytes, &mut at, start_ns, true);
        Row {
            start_ns,
            client,
            port,
            created_at_start,
            rs,
            last_ns: d.last_ns,
            tcp: d.tcp,
            first_frame: d.first_frame,
            response_ns: d.response_ns,
        }
    }
}

/// The blocks this thread read last (two: the replay reads the connection it is at and, now
/// and then, one a little before it).
#[derive(Default)]
struct Kept {
    blocks: Vec<Block>,
}

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(Kept { blocks: Vec::new() }) };
}

/// Blocks kept per thread.
const KEPT_BLOCKS: usize = 2;

impl Sorted {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Why some or all of the table stayed in memory, if it did.
    pub fn trouble(&self) -> Option<&str> {
        self.store.trouble.as_deref()
    }

    /// Row `i` (in table order).
    pub fn row(&self, i: usize) -> Row {
        let rows = self.rows_in(i / BLOCK_ROWS);
        self.with_block(i, |b| b.row(i % BLOCK_ROWS, rows))
    }

    /// The fixed part of row `i`.
    pub fn head(&self, i: usize) -> RowHead {
        self.with_block(i, |b| b.head(i % BLOCK_ROWS).0)
    }

    fn rows_in(&self, number: usize) -> usize {
        BLOCK_ROWS.min(self.len - number * BLOCK_ROWS)
    }

    /// Calls `f` with the block of row `i`, read unless this thread has it.
    fn with_block<R>(&self, i: usize, f: impl FnOnce(&Block) -> R) -> R {
        assert!(i < self.len, "row {i} of {}", self.len);
        let number = i / BLOCK_ROWS;
        KEPT.with_borrow_mut(|kept| {
            if let Some(b) = kept.blocks.first() {
                if b.table == self.id && b.number == number {
                    return f(b);
                }
            }
            let found = kept
                .blocks
                .iter()
                .position(|b| b.table == self.id && b.number == number);
            let k = match found {
                Some(k) => k,
                None => {
                    // The least recently used block (last) gives its room.
                    let mut bytes = if kept.blocks.len() < KEPT_BLOCKS {
                        Vec::new()
                    } else {
                        kept.blocks.pop().expect("blocks kept").bytes
                    };
                    let place = self.blocks[number];
                    self.store.read(place, 0, place.len(), &mut bytes);
                    kept.blocks.push(Block {
                        table: self.id,
                        number,
                        bytes,
                    });
                    kept.blocks.len() - 1
                }
            };
            // Most recently used first.
            kept.blocks[..=k].rotate_right(1);
            f(&kept.blocks[0])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_store_without_a_file_keeps_the_rows_in_memory() {
        let mut store = Store {
            file: None,
            writable: false,
            memory: Vec::new(),
            trouble: Some("none".into()),
        };
        let a = store.append(&[1, 2, 3]);
        let b = store.append(&[4, 5]);
        let mut buf = Vec::new();
        store.read(b, 1, 1, &mut buf);
        assert_eq!(buf, [5]);
        store.read(a, 0, 3, &mut buf);
        assert_eq!(buf, [1, 2, 3]);
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
