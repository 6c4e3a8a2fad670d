//! Where capture bytes come from: a file or standard input, gzip-compressed or not, and the
//! buffer the record parsers read from.
//!
//! The parsers work on slices. `StreamBuf` keeps just enough of the stream in memory for the
//! record at hand (it grows to the largest record seen, which the format readers cap), so memory
//! does not depend on the number of packets, and it knows the stream offset of every byte for
//! error messages. A reader that keeps its frames ([`super::block`]) reads into blocks it hands
//! on whole instead.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::read::MultiGzDecoder;

use super::block::{BlockLimits, BlockSink, FrameBlock, FrameRecord};
use super::error::CaptureError;
use super::frame::Frame;

/// One input named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// `-`: the capture arrives on standard input (`tcpdump -w - | lvscheck ...`).
    Stdin,
    File(PathBuf),
    /// An input that can be read only once (standard input, a FIFO, a pipe), copied to an
    /// unlinked temporary file by [`spool_streams`](super::spool::spool_streams): `name` is
    /// what the user gave, `path` where the copy is read from.
    Spooled {
        name: String,
        path: PathBuf,
    },
}

impl CaptureSource {
    /// The size of the file read, in bytes (as on disk); None for standard input or what
    /// cannot be asked.
    pub fn size(&self) -> Option<u64> {
        match self {
            CaptureSource::Stdin => None,
            CaptureSource::File(path) | CaptureSource::Spooled { path, .. } => {
                std::fs::metadata(path)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            }
        }
    }

    /// `-` means standard input; anything else is a path.
    pub fn from_arg(arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        if arg == "-" {
            CaptureSource::Stdin
        } else {
            CaptureSource::File(PathBuf::from(arg))
        }
    }

    /// The name used in summaries and messages.
    pub fn display_name(&self) -> String {
        match self {
            CaptureSource::Stdin => "<stdin>".to_string(),
            CaptureSource::File(path) => path.display().to_string(),
            CaptureSource::Spooled { name, .. } => name.clone(),
        }
    }
}

/// Standard input can be consumed once per process; a second reader would see an empty stream
/// and report a misleading "empty file".
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Opens a source for reading (not yet sniffed for compression).
pub(crate) fn open_source(source: &CaptureSource) -> Result<Box<dyn Read>, CaptureError> {
    match source {
        CaptureSource::Stdin => {
            if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
                return Err(CaptureError::StdinAlreadyRead);
            }
            Ok(Box::new(io::stdin()))
        }
        CaptureSource::File(path) | CaptureSource::Spooled { path, .. } => {
            let file = source.display_name();
            let meta = std::fs::metadata(path).map_err(|source| CaptureError::Open {
                file: file.clone(),
                source,
            })?;
            // Opening a directory succeeds on Linux; only the first read fails, with a less
            // helpful message.
            if meta.is_dir() {
                return Err(CaptureError::IsDirectory { file });
            }
            let handle = File::open(path).map_err(|source| CaptureError::Open { file, source })?;
            Ok(Box::new(handle))
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Looks at the first bytes of `raw` and, when they are the gzip magic, puts a decompressor in
/// front. The bytes looked at are given back to the reader, so nothing is lost. Returns the
/// reader of the (decompressed) capture and whether it was compressed.
pub(crate) fn unwrap_gzip<'r>(
    mut raw: Box<dyn Read + 'r>,
) -> io::Result<(Box<dyn Read + 'r>, bool)> {
    let mut head = [0u8; 2];
    let got = read_up_to(&mut raw, &mut head)?;
    let rejoined: Box<dyn Read + 'r> = Box::new(Cursor::new(head[..got].to_vec()).chain(raw));
    if got == 2 && head == GZIP_MAGIC {
        // Multi-member: `gzip -c a.pcap >> all.gz` style files decompress to the concatenation.
        Ok((Box::new(MultiGzDecoder::new(rejoined)), true))
    } else {
        Ok((rejoined, false))
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Buffer size to start with: large reads keep system-call and decompression overhead low.
const INITIAL_BUFFER: usize = 256 * 1024;

/// Where a reader that keeps its frames hands its full blocks, and when they are full.
pub(crate) struct Keeper<'k> {
    pub(crate) limits: BlockLimits,
    pub(crate) sink: &'k mut dyn BlockSink,
}

/// A window on a byte stream that the record parsers read from.
///
/// Without a [`Keeper`], consumed bytes are given up and their room reused. With one, the
/// buffer is a [`FrameBlock`]'s: frames are indexed where they lie ([`StreamBuf::keep`]), and
/// a full block is handed on whole, the bytes after its last record moving to the next.
pub(crate) struct StreamBuf<'k, R> {
    reader: R,
    block: FrameBlock,
    start: usize,
    end: usize,
    /// Stream offset of `block.buf[start]`.
    offset: u64,
    eof: bool,
    keeper: Option<Keeper<'k>>,
}

impl<'k, R: Read> StreamBuf<'k, R> {
    #[cfg(test)]
    pub(crate) fn new(reader: R) -> Self {
        Self::keeping(reader, FrameBlock::default(), None)
    }

    /// A window that reads into `block` and, with a keeper, keeps the frames in blocks.
    pub(crate) fn keeping(reader: R, mut block: FrameBlock, keeper: Option<Keeper<'k>>) -> Self {
        block.clear();
        let len = keeper
            .as_ref()
            .map_or(INITIAL_BUFFER, |k| k.limits.buffer_len());
        make_len(&mut block.buf, len);
        StreamBuf {
            reader,
            block,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            keeper,
        }
    }

    /// The block read into, with the frames kept since the last full one.
    pub(crate) fn into_block(self) -> FrameBlock {
        self.block
    }

    /// Stream offset of the first unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The unconsumed bytes in memory.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.block.buf[self.start..self.end]
    }

    /// Makes at least `n` bytes available unless the stream ends first; returns how many are
    /// available (possibly more than `n`; less only at the end of the stream). The caller
    /// bounds `n`: the buffer grows to it.
    #[inline]
    pub(crate) fn fill_to(&mut self, n: usize) -> io::Result<usize> {
        // Most records are in memory already: no call for them.
        let available = self.end - self.start;
        if available >= n {
            return Ok(available);
        }
        self.read_to(n)
    }

    /// [`StreamBuf::fill_to`] when the bytes are not all in memory.
    fn read_to(&mut self, n: usize) -> io::Result<usize> {
        while self.end - self.start < n && !self.eof {
            if self.block.buf.len() - self.start < n {
                self.make_room(n);
            }
            // A keeper's block reads about what it lacks: what is read past its end moves.
            let limit = match &self.keeper {
                None => self.block.buf.len(),
                Some(k) => {
                    let ahead = k.limits.read_ahead(&self.block, self.start);
                    (self.end + ahead)
                        .max(self.start + n)
                        .min(self.block.buf.len())
                }
            };
            match self.reader.read(&mut self.block.buf[self.end..limit]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }

    /// Room for `n` bytes from `start`: the unconsumed bytes move to just after the frames
    /// kept (to the front when there are none), and the buffer grows if that is not enough.
    fn make_room(&mut self, n: usize) {
        let kept_end = self.block.close_gaps();
        self.block.buf.copy_within(self.start..self.end, kept_end);
        self.end = kept_end + (self.end - self.start);
        self.start = kept_end;
        let need = self.start + n;
        if self.block.buf.len() < need {
            // Doubling bounds the copies when the frames kept make the buffer grow often.
            let len = if kept_end == 0 {
                need
            } else {
                need.max(2 * self.block.buf.len())
            };
            self.block.buf.resize(len, 0);
        }
    }

    /// Marks `n` available bytes as read; hands the block on if it is full.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
        if self
            .keeper
            .as_ref()
            .is_some_and(|k| k.limits.full(&self.block))
        {
            self.hand_on();
        }
    }

    /// Keeps a frame whose bytes are at `bytes` of [`StreamBuf::bytes`], if frames are kept.
    #[inline]
    pub(crate) fn keep(&mut self, frame: &Frame, bytes: Range<usize>) {
        if self.keeper.is_some() {
            let at = self.start + bytes.start..self.start + bytes.end;
            self.block.push(FrameRecord::new(frame, at));
        }
    }

    /// Hands the full block on and reads on into an empty one, which starts with the bytes
    /// not yet consumed.
    fn hand_on(&mut self) {
        let Some(keeper) = self.keeper.as_mut() else {
            return;
        };
        let mut next = keeper.sink.empty();
        next.clear();
        let tail = self.end - self.start;
        make_len(&mut next.buf, keeper.limits.buffer_len().max(tail));
        next.buf[..tail].copy_from_slice(&self.block.buf[self.start..self.end]);
        let full = std::mem::replace(&mut self.block, next);
        keeper.sink.full(full);
        self.start = 0;
        self.end = tail;
    }
}

/// Makes the buffer at least `len` long. A new buffer is allocated zeroed, which leaves its
/// pages untouched (and out of the resident set) until read into.
fn make_len(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() == 0 {
        *buf = vec![0; len];
    } else if buf.len() < len {
        buf.resize(len, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, to exercise refills at every position.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn fill_to_gathers_small_reads_and_tracks_offset() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mut sb = StreamBuf::new(Trickle(&data));
        assert_eq!(sb.fill_to(10).unwrap(), 10);
        assert_eq!(&sb.bytes()[..10], &data[..10]);
        sb.consume(7);
        assert_eq!(sb.offset(), 7);
        assert!(sb.fill_to(100).unwrap() >= 100);
        assert_eq!(sb.bytes()[0], 7);
        sb.consume(100);
        // Only 149 bytes are left: asking for more returns what there is.
        assert_eq!(sb.fill_to(1000).unwrap(), 149);
        assert_eq!(sb.offset(), 107);
    }

    #[test]
    fn fill_to_grows_past_initial_buffer() {
        let data = vec![0xabu8; INITIAL_BUFFER * 2 + 5];
        let mut sb = StreamBuf::new(&data[..]);
        sb.fill_to(3).unwrap();
        sb.consume(3);
        assert!(sb.fill_to(INITIAL_BUFFER + 10).unwrap() >= INITIAL_BUFFER + 10);
        assert_eq!(sb.offset(), 3);
    }

    #[test]
    fn gzip_sniffing_gives_back_the_peeked_bytes() {
        let plain = b"\xd4\xc3\xb2\xa1rest".to_vec();
        let (mut r, gz) = unwrap_gzip(Box::new(Cursor::new(plain.clone()))).unwrap();
        assert!(!gz);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);

        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, &plain).unwrap();
        let compressed = enc.finish().unwrap();
        let (mut r, gz) = unwrap_gzip(Box::new(Cursor::new(compressed))).unwrap();
        assert!(gz);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
    }
}
