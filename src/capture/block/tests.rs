//! Reading into blocks must hand on what reading frame by frame hands on: the same frames with
//! the same bytes, the same summary and warnings, and chunk boundaries where a chunk filled
//! frame by frame would end; with reads of any size, and without growing the buffer for the
//! usual capture.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::*;
use crate::capture::{read_blocks_from, read_capture_from, CaptureOutcome};

/// One frame, owned, to compare: interface, number, time, wire length, link type, offset,
/// bytes.
type Seen = (u32, u64, i64, u32, u32, u64, Vec<u8>);

fn seen(f: &Frame) -> Seen {
    let fields = (
        f.interface,
        f.number,
        f.ts_ns,
        f.wire_len,
        f.link_type,
        f.offset,
    );
    let (interface, number, ts_ns, wire_len, link_type, offset) = fields;
    (
        interface,
        number,
        ts_ns,
        wire_len,
        link_type,
        offset,
        f.data.to_vec(),
    )
}

/// The limits of the feed's chunks (src/flows/feed.rs) with the default look-ahead.
const FEED: BlockLimits = BlockLimits {
    frame_bytes: 256 << 10,
    frames: 2048,
};

/// A sink that keeps every block and recycles nothing.
#[derive(Default)]
struct Collect {
    blocks: Vec<FrameBlock>,
}

impl BlockSink for Collect {
    fn empty(&mut self) -> FrameBlock {
        FrameBlock::default()
    }
    fn full(&mut self, block: FrameBlock) {
        self.blocks.push(block);
    }
}

/// A reader handing out at most `step` bytes a call, to put refills everywhere.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

fn outcome_text(outcome: &CaptureOutcome) -> String {
    match outcome {
        Ok(summary) => serde_json::to_string(summary).unwrap(),
        Err(e) => format!("error: {e}"),
    }
}

/// Reads `bytes` frame by frame and in blocks (with each of a few limits and read sizes) and
/// checks that both agree; returns the blocks of the last reading.
fn agree(name: &str, bytes: &[u8]) -> Vec<FrameBlock> {
    let mut expected = Vec::new();
    let plain = read_capture_from(0, name, bytes, |f| expected.push(seen(f)));
    let mut last = Vec::new();
    for limits in [
        BlockLimits {
            frame_bytes: 100,
            frames: 3,
        },
        BlockLimits {
            frame_bytes: 16 << 10,
            frames: 64,
        },
        FEED,
    ] {
        for step in [usize::MAX, 4093, 7] {
            // A byte at a time or so takes long in a debug build: small files only.
            if step < 64 && bytes.len() > 1 << 20 {
                continue;
            }
            let mut sink = Collect::default();
            let reader = Trickle { bytes, step };
            let (outcome, rest) = read_blocks_from(0, name, reader, limits, &mut sink);
            assert_eq!(
                outcome_text(&outcome),
                outcome_text(&plain),
                "{name}: {limits:?}, reads of {step}"
            );
            let mut frames = Vec::new();
            for block in &sink.blocks {
                // Full after its last frame and not before: where frame-by-frame filling ends.
                assert!(limits.full(block), "{name}: a block handed on early");
                let before = FrameBlock {
                    buf: Vec::new(),
                    records: block.records[..block.records.len() - 1].to_vec(),
                    frame_bytes: block.frame_bytes - block.records.last().unwrap().len as usize,
                };
                assert!(!limits.full(&before), "{name}: a block handed on late");
            }
            assert!(!limits.full(&rest) || rest.is_empty());
            for block in sink.blocks.iter().chain([&rest]) {
                block.for_each(0, &mut |f| frames.push(seen(f)));
            }
            assert!(
                frames == expected,
                "{name}: {limits:?}, reads of {step}: frames differ"
            );
            sink.blocks.push(rest);
            // Shrunk as the look-ahead keeps them: the same frames, in nothing but their bytes.
            let mut shrunk = Vec::new();
            for block in &mut sink.blocks {
                block.shrink_to_frames();
                assert_eq!(block.buf.len(), block.frame_bytes, "{name}: gaps kept");
                block.for_each(0, &mut |f| shrunk.push(seen(f)));
            }
            assert!(
                shrunk == expected,
                "{name}: {limits:?}, reads of {step}: frames differ once shrunk"
            );
            last = sink.blocks;
        }
    }
    last
}

fn captures_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            captures_under(&path, found);
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "gz")
        {
            found.push(path);
        }
    }
}

#[test]
fn every_fixture_and_corpus_capture_reads_the_same_in_blocks() {
    let mut files = Vec::new();
    captures_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut files,
    );
    assert!(files.len() > 100, "the fixtures are missing");
    // Other projects' captures, when the shared corpus is there (see tests/corpus.rs).
    let corpus = std::env::var_os("LVSCHECK_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    captures_under(&corpus, &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        agree(&file.display().to_string(), &bytes);
    }
}

/// 32-bit fields, little-endian.
fn words(fields: &[u32]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// A pcap file of `frames` frames of `len` bytes each, little-endian, microseconds.
fn pcap(frames: usize, len: usize) -> Vec<u8> {
    let mut out = words(&[0xa1b2_c3d4, 0x0004_0002, 0, 0, 65535, 1]);
    for i in 0..frames {
        out.extend(words(&[i as u32, 7, len as u32, len as u32]));
        out.extend((0..len).map(|b| (b + i) as u8));
    }
    out
}

#[test]
fn the_usual_capture_fits_its_blocks_without_growing_them() {
    for len in [60, 1514] {
        let bytes = pcap(5000, len);
        let limits = FEED;
        let mut sink = Collect::default();
        let (outcome, _) = read_blocks_from(0, "t", &bytes[..], limits, &mut sink);
        assert_eq!(outcome.unwrap().frames, 5000);
        assert!(sink.blocks.len() >= 2);
        for block in &sink.blocks {
            assert_eq!(block.buf.len(), limits.buffer_len(), "{len}-byte frames");
        }
    }
    // Cut short in the middle of a record, and truncated in every way: still the same.
    let bytes = pcap(300, 1514);
    for cut in [24, 30, 40, 1000, bytes.len() - 1] {
        agree("cut", &bytes[..cut]);
    }
}

#[test]
fn a_shrunk_block_of_small_frames_gives_back_the_readers_buffer() {
    // 60-byte frames end a feed chunk by their number (2048 frames, 120 KiB of bytes) in a
    // buffer sized for 256 KiB of frames: kept as read, a chunk holds three times its frames.
    let bytes = pcap(5000, 60);
    let mut sink = Collect::default();
    read_blocks_from(0, "t", &bytes[..], FEED, &mut sink)
        .0
        .unwrap();
    let block = &mut sink.blocks[0];
    assert_eq!(block.frames(), FEED.frames);
    assert_eq!(block.buf.len(), FEED.buffer_len());
    block.shrink_to_frames();
    assert_eq!(block.buf.len(), FEED.frames * 60);
    assert!(block.buf.capacity() < FEED.buffer_len() / 2);
}

/// A little-endian pcapng block of `block_type` with `body`.
fn ng_block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut out = words(&[block_type, len]);
    out.extend_from_slice(body);
    out.extend(words(&[len]));
    out
}

#[test]
fn large_blocks_between_frames_do_not_grow_the_buffer_without_bound() {
    let mut bytes = ng_block(
        0x0A0D_0D0A,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    bytes.extend(ng_block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
    let custom = vec![0x5au8; 1 << 20];
    for i in 0..40u32 {
        bytes.extend(ng_block(0x0000_0BAD, &custom));
        let mut epb = words(&[0, 0, i, 60, 60]);
        epb.extend((0..60).map(|b| (b as u32 + i) as u8));
        bytes.extend(ng_block(6, &epb));
    }
    let mut sink = Collect::default();
    let (outcome, last) = read_blocks_from(0, "ng", &bytes[..], FEED, &mut sink);
    assert_eq!(outcome.unwrap().frames, 40);
    // The 40 MiB of custom blocks are not kept: the frames' bytes are moved together.
    assert!(
        last.buf.len() <= 8 << 20,
        "the buffer grew to {}",
        last.buf.len()
    );
    let mut frames = Vec::new();
    last.for_each(0, &mut |f| frames.push(seen(f)));
    let mut expected = Vec::new();
    read_capture_from(0, "ng", &bytes[..], |f| expected.push(seen(f))).unwrap();
    assert!(frames == expected);
}
