//! How far the reading of the captures has gone, for a progress display: counters the readers
//! bump once per read of a file (hundreds of KiB), never per frame, and whoever shows them
//! reads. Nothing here draws anything.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The counters of one run. Bytes are the files' bytes as on disk (compressed, for a gzip
/// capture), so that they compare with the files' sizes.
#[derive(Debug, Default)]
pub struct ReadProgress {
    bytes: AtomicU64,
    total: AtomicU64,
    reads: AtomicU32,
    done: AtomicU32,
    pass: AtomicU8,
}

/// What the counters say at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// File bytes read so far, over every read of every capture.
    pub bytes: u64,
    /// File bytes to read: each capture's size, once for each time it is (being) read.
    pub total: u64,
    /// Reads of a capture begun, and those finished.
    pub reads: u32,
    pub done: u32,
    /// The analysis's pass (1: topology and clocks, 2: connections), 0 before the first.
    pub pass: u8,
}

impl ReadProgress {
    /// A read of a capture of `size` bytes begins.
    pub fn begin_read(&self, size: u64) {
        self.total.fetch_add(size, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more bytes were read from a file.
    pub fn read_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// A read of a capture reached its end.
    pub fn end_read(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_pass(&self, pass: u8) {
        self.pass.store(pass, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            bytes: self.bytes.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            pass: self.pass.load(Ordering::Relaxed),
        }
    }
}
