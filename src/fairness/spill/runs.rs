//! Rows on their way to disk: sorted runs while the connections come, merged into the sorted
//! table when they have all come.

use super::sorted::{Sorted, SortedWriter};
use super::store::{Place, Store};
use super::{get_row, put_row, table_order, Row, MAX_ROW, READ_BYTES, RUN_ROWS};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// Rows on their way to disk: sorted runs, and the rows of the run being filled.
pub(crate) struct Spill {
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
        let mut out = SortedWriter::new(self.store, self.rows);
        while let Some(Reverse(head)) = heads.pop() {
            let mut row = head.row;
            row.client = rank[row.client as usize];
            out.push(&row);
            if let Some(next) = readers[head.run].next(out.store()) {
                heads.push(Reverse(Head::of(next, head.run, clients)));
            }
        }
        out.finish()
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
