//! The table in order on disk: blocks of rows whose fixed part is read in place, each thread
//! keeping the blocks it read last.

use super::store::{Place, Store};
use super::{get_details, put_details, Row, BLOCK_ROWS};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Source of [`Sorted::id`]: each sorted table has its own, so that the blocks a thread keeps
/// are never taken for another table's.
static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

/// The table in order, in blocks of [`BLOCK_ROWS`] rows on disk (or in memory).
pub(crate) struct Sorted {
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
        put_details(&mut self.details, r.start_ns, &r.details(), false);
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

/// Writes the sorted table block by block, the rows coming in order.
pub(super) struct SortedWriter {
    table: Sorted,
    block: BlockWriter,
}

impl SortedWriter {
    /// A table of `len` rows, written into `store` after what it holds.
    pub(super) fn new(store: Store, len: usize) -> SortedWriter {
        SortedWriter {
            table: Sorted {
                store,
                blocks: Vec::new(),
                len,
                id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            },
            block: BlockWriter::default(),
        }
    }

    /// Where the table is written (the runs being merged are read from there too).
    pub(super) fn store(&self) -> &Store {
        &self.table.store
    }

    pub(super) fn push(&mut self, row: &Row) {
        self.block.push(row);
        if self.block.rows == BLOCK_ROWS {
            let bytes = self.block.finish();
            self.table.blocks.push(self.table.store.append(&bytes));
        }
    }

    pub(super) fn finish(mut self) -> Sorted {
        if self.block.rows > 0 {
            let bytes = self.block.finish();
            self.table.blocks.push(self.table.store.append(&bytes));
        }
        self.table
    }
}

/// The fixed part of a row: client, port, whether its entry was created by its first packet,
/// server, start.
pub type RowHead = (u32, u16, bool, u32, i64);

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
