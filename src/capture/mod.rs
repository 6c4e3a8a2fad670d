//! Capture files -> timestamped frames.
//!
//! Contract: a capture (pcap with micro- or nanosecond times in either byte order, or pcapng
//! with any number of sections and interfaces; plain or gzip-compressed; a file or `-` for
//! standard input) is recognised by its magic bytes, never by its name, and streamed: each
//! frame is handed to a callback as a [`Frame`] that borrows the reader's buffer, numbered from
//! 1 as Wireshark numbers it, with its time in nanoseconds since the epoch, so memory does not
//! grow with the number of packets. A reader that keeps frames for later instead reads the file
//! straight into [`block::FrameBlock`]s and indexes the frames where they lie, copying no
//! frame a second time.
//! A capture of which nothing can be read gives a [`CaptureError`]; a problem after that (a
//! record cut short, an absurd length, a corrupt block, a read error) stops or disturbs reading
//! but keeps what was read, and is a [`ReadWarning`] in the [`CaptureSummary`], which says
//! whether the capture was read `complete`ly. Every message names the file and the frame number
//! and/or byte offset (in the decompressed stream); no input makes the reader panic or allocate
//! more than a bounded buffer (largest record: 16 MiB).

pub mod annotate;
pub mod block;
pub mod error;
pub mod frame;
pub mod identity;
mod input;
mod options;
mod pcap;
mod pcapng;
pub mod progress;
pub mod spool;
pub mod summary;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

pub use block::{BlockLimits, BlockSink, FrameBlock};
pub use error::CaptureError;
pub use frame::{CaptureId, Format, Frame, InterfaceInfo, ReadWarning};
pub use input::CaptureSource;
pub use summary::{CaptureSummary, MAX_EMPTY_INTERFACES_SHOWN, MAX_WARNINGS};

use input::{open_source, unwrap_gzip, Keeper, StreamBuf};
use summary::Recorder;

/// What reading one capture gave: its summary, or why nothing of it could be read.
pub type CaptureOutcome = Result<CaptureSummary, CaptureError>;

/// Reads one capture, calling `on_frame` for every frame in file order.
pub fn read_capture(
    id: CaptureId,
    source: &CaptureSource,
    on_frame: impl FnMut(&Frame),
) -> CaptureOutcome {
    let reader = open_source(source)?;
    read_capture_from(id, source.display_name(), reader, on_frame)
}

/// Reads one capture keeping its frames where they were read, in blocks handed to `sink` as
/// they fill up (see [`block`]); the last block, which may hold frames, is given back with the
/// outcome. It ends early, as at the end of the file, once `stop` is set: for a reader on its
/// own thread whose frames are no longer wanted. What was read by then is summarised as usual
/// (the summary then says nothing useful about the rest of the file). The bytes read from the
/// file are counted in `progress`, when given.
pub fn read_capture_in_blocks(
    id: CaptureId,
    source: &CaptureSource,
    stop: Arc<AtomicBool>,
    limits: BlockLimits,
    sink: &mut dyn BlockSink,
    progress: Option<Arc<progress::ReadProgress>>,
) -> (CaptureOutcome, FrameBlock) {
    let reader = match open_source(source) {
        Ok(reader) => reader,
        Err(e) => return (Err(e), FrameBlock::default()),
    };
    let reader = Stoppable {
        inner: reader,
        stop,
        progress,
    };
    let keeper = Keeper { limits, sink };
    read_stream(
        id,
        source.display_name(),
        Box::new(reader),
        FrameBlock::default(),
        Some(keeper),
        |_| {},
    )
}

/// A byte stream that ends when told to, and counts what it gives (one atomic add per read
/// of the file, each of a whole buffer).
struct Stoppable<R> {
    inner: R,
    stop: Arc<AtomicBool>,
    progress: Option<Arc<progress::ReadProgress>>,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.read_bytes(n as u64);
        }
        Ok(n)
    }
}

/// Reads one capture from any byte stream; `name` is used in the summary and in messages.
pub fn read_capture_from<R: Read>(
    id: CaptureId,
    name: impl Into<String>,
    reader: R,
    on_frame: impl FnMut(&Frame),
) -> CaptureOutcome {
    let no_block = FrameBlock::default();
    read_stream(id, name.into(), Box::new(reader), no_block, None, on_frame).0
}

/// [`read_capture_in_blocks`] from any byte stream, without a stop.
pub fn read_blocks_from<R: Read>(
    id: CaptureId,
    name: impl Into<String>,
    reader: R,
    limits: BlockLimits,
    sink: &mut dyn BlockSink,
) -> (CaptureOutcome, FrameBlock) {
    let keeper = Keeper { limits, sink };
    let first = FrameBlock::default();
    read_stream(
        id,
        name.into(),
        Box::new(reader),
        first,
        Some(keeper),
        |_| {},
    )
}

/// Reads a capture into `block` (and the blocks after it, with a keeper), handing every frame
/// to `on_frame`; gives back the outcome and the block read into last.
fn read_stream<'k>(
    id: CaptureId,
    file: String,
    reader: Box<dyn Read + 'k>,
    block: FrameBlock,
    keeper: Option<Keeper<'k>>,
    on_frame: impl FnMut(&Frame),
) -> (CaptureOutcome, FrameBlock) {
    let (reader, gzip) = match unwrap_gzip(reader) {
        Ok(unwrapped) => unwrapped,
        Err(source) => {
            let error = CaptureError::Read {
                file,
                offset: 0,
                source,
            };
            return (Err(error), block);
        }
    };
    let mut input = StreamBuf::keeping(reader, block, keeper);
    let outcome = read_format(id, file, gzip, &mut input, on_frame);
    (outcome, input.into_block())
}

/// Recognises the format by its magic and reads the capture in it.
fn read_format<R: Read>(
    id: CaptureId,
    file: String,
    gzip: bool,
    input: &mut StreamBuf<'_, R>,
    on_frame: impl FnMut(&Frame),
) -> CaptureOutcome {
    let have = input.fill_to(4).map_err(|source| CaptureError::Read {
        file: file.clone(),
        offset: 0,
        source,
    })?;
    if have == 0 {
        return Err(CaptureError::Empty { file, gzip });
    }
    let head = &input.bytes()[..have.min(4)];
    let Some(format) = format_of(head) else {
        if have < 4 && MAGICS.iter().any(|(magic, _)| magic.starts_with(head)) {
            return Err(CaptureError::TruncatedHeader {
                file,
                what: "file header",
                need: 4,
                have,
            });
        }
        return Err(CaptureError::UnknownFormat {
            file,
            gzip,
            magic: error::hex_prefix(head),
            hint: error::format_hint(head),
        });
    };

    let mut rec = Recorder::new(id, file, format, gzip, on_frame);
    let complete = match format {
        Format::Pcapng => pcapng::read(input, &mut rec)?,
        Format::PcapMicro | Format::PcapNano => pcap::read(input, &mut rec)?,
    };
    Ok(rec.finish(input.offset(), complete))
}

/// Reads several captures at once (one rayon task each). For each capture, `init` makes the
/// state that `visit` then receives with every frame of that capture, in file order. Results
/// come back in the order of `sources`. Only the first `-` reads standard input; any later one
/// gets `CaptureError::StdinAlreadyRead`.
pub fn read_captures_parallel<T: Send>(
    sources: &[CaptureSource],
    init: impl Fn(CaptureId) -> T + Sync,
    visit: impl Fn(&mut T, &Frame) + Sync,
) -> Vec<(CaptureOutcome, T)> {
    let first_stdin = sources.iter().position(|s| *s == CaptureSource::Stdin);
    sources
        .par_iter()
        .enumerate()
        .map(|(index, source)| {
            let id = index as CaptureId;
            let mut state = init(id);
            let outcome = if *source == CaptureSource::Stdin && Some(index) != first_stdin {
                Err(CaptureError::StdinAlreadyRead)
            } else {
                read_capture(id, source, |frame| visit(&mut state, frame))
            };
            (outcome, state)
        })
        .collect()
}

/// The magic numbers we read, as they appear in the first four bytes.
const MAGICS: [([u8; 4], Format); 5] = [
    ([0xa1, 0xb2, 0xc3, 0xd4], Format::PcapMicro),
    ([0xd4, 0xc3, 0xb2, 0xa1], Format::PcapMicro),
    ([0xa1, 0xb2, 0x3c, 0x4d], Format::PcapNano),
    ([0x4d, 0x3c, 0xb2, 0xa1], Format::PcapNano),
    ([0x0a, 0x0d, 0x0d, 0x0a], Format::Pcapng),
];

fn format_of(head: &[u8]) -> Option<Format> {
    MAGICS
        .iter()
        .find(|(magic, _)| head == magic)
        .map(|(_, format)| *format)
}

/// A 32-bit field in the given byte order. Callers check lengths first; a field out of range
/// reads as 0 rather than panicking.
#[inline]
pub(crate) fn u32_at(bytes: &[u8], at: usize, big: bool) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => {
            if big {
                u32::from_be_bytes([a, b, c, d])
            } else {
                u32::from_le_bytes([a, b, c, d])
            }
        }
        _ => 0,
    }
}

/// A 16-bit field in the given byte order; see [`u32_at`].
#[inline]
pub(crate) fn u16_at(bytes: &[u8], at: usize, big: bool) -> u16 {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => {
            if big {
                u16::from_be_bytes([a, b])
            } else {
                u16::from_le_bytes([a, b])
            }
        }
        _ => 0,
    }
}

/// An error and its sources on one line: pcap-file's errors put the detail in the source.
pub(crate) fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}
