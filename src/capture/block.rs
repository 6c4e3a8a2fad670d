//! Frames kept where they were read: the buffer a capture was read into, with an index of the
//! frames in it, handed on whole.
//!
//! Copying every frame out of the reader's buffer into a buffer of its own cost as much as the
//! kernel's read before it. A reader that keeps its frames instead reads the file straight into
//! a block's buffer (gzip decompresses straight into it), indexes each frame where it lies, and
//! once the block is full hands the buffer on and reads on into an empty one: only the bytes
//! read past the last whole record (a record cut by the read) move to the next block.

use std::ops::Range;

use super::frame::{CaptureId, Frame};

/// One frame of a block: the [`Frame`] without its bytes, which are at `start..start + len`
/// of the block's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameRecord {
    interface: u32,
    wire_len: u32,
    number: u64,
    ts_ns: i64,
    offset: u64,
    link_type: u32,
    start: u32,
    len: u32,
}

/// What one frame's record costs in a block besides its bytes.
pub const RECORD_BYTES: usize = std::mem::size_of::<FrameRecord>();

impl FrameRecord {
    /// The record of a frame whose bytes are at `bytes` of the buffer. Buffers are bounded
    /// far below 4 GiB (records of at most 16 MiB, blocks of a few records' worth).
    pub(crate) fn new(frame: &Frame, bytes: Range<usize>) -> FrameRecord {
        FrameRecord {
            interface: frame.interface,
            wire_len: frame.wire_len,
            number: frame.number,
            ts_ns: frame.ts_ns,
            offset: frame.offset,
            link_type: frame.link_type,
            start: bytes.start as u32,
            len: bytes.len() as u32,
        }
    }

    fn bytes(&self) -> Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// A buffer a capture was read into and the frames in it, in file order.
#[derive(Default)]
pub struct FrameBlock {
    /// What was read: the frames' bytes and, around them, their headers, other blocks of the
    /// file, and the start of the next block's bytes (handed on with it, not looked at).
    pub(crate) buf: Vec<u8>,
    records: Vec<FrameRecord>,
    /// The frames' bytes, summed.
    frame_bytes: usize,
}

impl FrameBlock {
    /// Frames in the block.
    pub fn frames(&self) -> usize {
        self.records.len()
    }

    /// Bytes of the frames in the block (not of their headers nor of the buffer).
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets the frames; the buffer is kept to be read into again.
    pub fn clear(&mut self) {
        self.records.clear();
        self.frame_bytes = 0;
    }

    /// Hands on every frame of the block, in file order.
    pub fn for_each(&self, capture: CaptureId, each: &mut dyn FnMut(&Frame)) {
        for r in &self.records {
            each(&Frame {
                capture,
                interface: r.interface,
                number: r.number,
                ts_ns: r.ts_ns,
                wire_len: r.wire_len,
                link_type: r.link_type,
                data: &self.buf[r.bytes()],
                offset: r.offset,
            });
        }
    }

    pub(crate) fn push(&mut self, record: FrameRecord) {
        self.frame_bytes += record.len as usize;
        self.records.push(record);
    }

    /// Gives back the memory the frames do not use: the buffer's gaps (record headers, bytes
    /// read past the block) and the spare room of both vectors. For a block kept a while (the
    /// look-ahead), whose memory is then what it is counted as: a block of small frames
    /// otherwise holds a reader's whole buffer and a record vector grown by doubling.
    pub fn shrink_to_frames(&mut self) {
        let end = self.close_gaps();
        self.buf.truncate(end);
        self.buf.shrink_to_fit();
        self.records.shrink_to_fit();
    }

    /// Moves the frames' bytes together at the front of the buffer, giving up what lay between
    /// them (record headers, other blocks of the file); returns where they end. A copy, but
    /// only when a block's frames and what is around them outgrow its buffer, which a block
    /// sized by [`BlockLimits::buffer_len`] does not in the usual capture.
    pub(crate) fn close_gaps(&mut self) -> usize {
        let mut to = 0;
        for r in &mut self.records {
            let from = r.bytes();
            if from.start != to {
                self.buf.copy_within(from, to);
                r.start = to as u32;
            }
            to += r.len as usize;
        }
        to
    }
}

/// When a block is full: after the frame that brings its frames' bytes to `frame_bytes` (so a
/// larger frame gets a block of its own), or at `frames` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    pub frame_bytes: usize,
    pub frames: usize,
}

/// The least a read asks for near the end of a block: a few system calls a block, and at
/// most this much read past the block's end, to be moved to the next one.
const MIN_READ: usize = 16 << 10;

impl BlockLimits {
    pub(crate) fn full(&self, block: &FrameBlock) -> bool {
        block.frame_bytes >= self.frame_bytes || block.records.len() >= self.frames
    }

    /// The buffer a block starts with: room for its frames, their headers (pcap 16 bytes,
    /// pcapng 32 and options) and the reads ending it, so that it does not grow in the usual
    /// capture. Growing is possible (a record may be up to 16 MiB) but costs a copy.
    pub(crate) fn buffer_len(&self) -> usize {
        self.frame_bytes + self.frame_bytes / 4 + (64 << 10)
    }

    /// How much is worth reading into a block that has `spanned` bytes of its buffer parsed:
    /// about what the block still lacks, so that little is read past its end (bytes that
    /// would be moved to the next block).
    pub(crate) fn read_ahead(&self, block: &FrameBlock, spanned: usize) -> usize {
        let bytes_left = self.frame_bytes.saturating_sub(block.frame_bytes);
        // Headers add a few per cent to the frames' bytes.
        let mut ahead = bytes_left + bytes_left / 16;
        let frames = block.records.len();
        if frames > 0 {
            // Small frames end a block by their number before their bytes fill it.
            let per_frame = spanned.div_ceil(frames);
            ahead = ahead.min(self.frames.saturating_sub(frames).saturating_mul(per_frame));
        }
        ahead.max(MIN_READ)
    }
}

/// Where a reader that keeps its frames in blocks hands them on.
pub trait BlockSink {
    /// A block to read on into; its frames (if any) are forgotten and its buffer reused.
    fn empty(&mut self) -> FrameBlock;
    /// A full block.
    fn full(&mut self, block: FrameBlock);
}

#[cfg(test)]
mod tests;
