//! A pcapng copy of a capture with comments on chosen frames (`opt_comment`, which Wireshark
//! shows as `frame.comment`), every frame kept, in its order and with its number.
//!
//! A pcapng input is copied block by block as it lies in the file: section headers, interface
//! descriptions, name resolution, interface statistics, custom and unknown blocks unchanged,
//! in each section's own byte order, but for a section header's length, which becomes -1
//! (unknown) when it is given, since comments lengthen the section. A packet block that gets comments gets them as options
//! added before its end-of-options marker, after any it has (pcapng allows several
//! `opt_comment`s on one packet, so comments already there stay); nothing else in it changes. A
//! simple packet block has no room for options: one that gets comments is written as an
//! enhanced packet block of the section's first interface, with the time the reader gives it
//! (that of the frame before it, [`super::pcapng`]). A pcap input becomes a section with one
//! interface of its link type and snap length (`if_tsresol` 9 for nanosecond files) and an
//! enhanced packet block per record.
//!
//! pcap-file writes the section header and interface description of a converted pcap file. The
//! packet blocks, and every block of a pcapng input, are written here from their bytes, for the
//! reasons [`super::pcapng`] reads them itself (pcap-file 3.0.0-rc.3): its reader refuses frames
//! Wireshark and lvscheck read (an original length below the captured one, a negative
//! `if_tsoffset`, an `if_tsresol` beyond 10^-9, an interface name that is not UTF-8; its
//! `write_raw_block` decodes section headers and interface descriptions and fails on the same),
//! so a copy through it could lose frames and shift every frame number after them, which the
//! comments and the findings' evidence name; and a block it parses and writes again is
//! re-encoded (its options rebuilt from their parsed values, its time through a `Duration`),
//! not copied.
//!
//! The copy walks the file as the reader does and stops where the reader stops (a block or
//! record cut short, an impossible length, an unknown byte order): what the analysis read is
//! what the copy holds. Memory is one record and the comments of one frame.

use std::fmt;
use std::io::{self, Read, Write};

use byteorder_slice::{BigEndian, LittleEndian};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::blocks::{
    ENHANCED_PACKET_BLOCK, INTERFACE_DESCRIPTION_BLOCK, PACKET_BLOCK, SECTION_HEADER_BLOCK,
    SIMPLE_PACKET_BLOCK,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::{DataLink, Endianness};

use super::block::FrameBlock;
use super::error::{format_hint, hex_prefix, CaptureError};
use super::frame::Format;
use super::input::{open_source, unwrap_gzip, StreamBuf};
use super::pcapng::{idb_fields, numbered_not_packet, TsResolution, MAX_BLOCK_LEN};
use super::{format_of, u16_at, u32_at, CaptureSource};

/// The comments of one frame, one line each, in a buffer used again for every frame: adding
/// them allocates nothing once it has grown to the longest.
#[derive(Debug, Default, Clone)]
pub struct Comments {
    text: String,
    ends: Vec<usize>,
}

/// An option's value holds at most this many bytes (its length is 16 bits).
const MAX_COMMENT_LEN: usize = u16::MAX as usize;

impl Comments {
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Adds one comment, formatted in place. Line breaks in it become spaces (a comment is one
    /// line), and one longer than an option holds (64 KiB) is cut at a character boundary.
    pub fn add(&mut self, line: fmt::Arguments<'_>) {
        let start = self.text.len();
        // Writing to a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut self.text, line);
        if self.text[start..].contains(['\n', '\r']) {
            let one_line = self.text[start..].replace(['\n', '\r'], " ");
            self.text.truncate(start);
            self.text.push_str(&one_line);
        }
        if self.text.len() - start > MAX_COMMENT_LEN {
            let mut end = start + MAX_COMMENT_LEN;
            while !self.text.is_char_boundary(end) {
                end -= 1;
            }
            self.text.truncate(end);
        }
        self.ends.push(self.text.len());
    }

    /// The comments, in the order added.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, e)| &self.text[s..*e])
    }

    /// Bytes the comments take as pcapng options.
    fn options_len(&self) -> usize {
        self.lines().map(|l| 4 + padded(l.len())).sum()
    }
}

/// What a copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The input's format.
    pub format: Format,
    /// Frames written, numbered as Wireshark numbers them (packet blocks, and systemd journal
    /// entries and custom blocks, which Wireshark shows as frames too).
    pub frames: u64,
    /// Frames that got comments.
    pub commented: u64,
    /// Simple packet blocks written as enhanced ones to carry their comments.
    pub simple_converted: u64,
    /// Frames whose comments could not be added: a packet block whose options are malformed
    /// (copied as it is).
    pub uncommented: u64,
    /// Where and why the copy ended before the end of the input (where the reader stops too).
    pub stopped: Option<String>,
}

/// An interface of the current pcapng section, as far as converting a simple packet block
/// needs it.
#[derive(Debug, Clone, Copy)]
struct Clock {
    resolution: TsResolution,
    offset_s: i64,
    snaplen: u32,
}

enum Layout {
    /// The byte order of the pcap file's records and its time unit in nanoseconds.
    Pcap {
        big: bool,
        frac_ns: i64,
        caplen_limit: u32,
    },
    Pcapng {
        /// The current section's byte order and interfaces.
        big: bool,
        interfaces: Vec<Clock>,
        /// The time of the last frame that had one, in nanoseconds since the epoch, as the
        /// reader gives it to a simple packet block after it.
        last_ts_ns: i64,
    },
}

/// A capture being copied: frames are asked for in increasing order ([`AnnotatedCopy::comment`]),
/// the frames between are copied as they are, and [`AnnotatedCopy::finish`] copies the rest.
pub struct AnnotatedCopy<W: Write> {
    name: String,
    input: StreamBuf<'static, Box<dyn Read>>,
    out: W,
    layout: Layout,
    /// The number the next frame read will have.
    next: u64,
    done: bool,
    report: CopyReport,
}

/// Length rounded up to a multiple of 4.
fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

const ZEROS: [u8; 4] = [0; 4];
const OPT_COMMENT: u16 = 1;

fn u32_bytes(v: u32, big: bool) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u16_bytes(v: u16, big: bool) -> [u8; 2] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// Writes the comments as `opt_comment` options.
fn write_comments(out: &mut impl Write, comments: &Comments, big: bool) -> io::Result<()> {
    for line in comments.lines() {
        out.write_all(&u16_bytes(OPT_COMMENT, big))?;
        out.write_all(&u16_bytes(line.len() as u16, big))?;
        out.write_all(line.as_bytes())?;
        out.write_all(&ZEROS[..padded(line.len()) - line.len()])?;
    }
    Ok(())
}

/// Where the options of a packet block end: the offset of its end-of-options marker in
/// `options` (which the comments go before), or `options.len()` when the list runs to the end
/// without one (the comments then need a marker after them). None when an option runs past
/// the end: the list is malformed.
fn options_end(options: &[u8], big: bool) -> Option<(usize, bool)> {
    let mut at = 0;
    while at < options.len() {
        if options.len() - at < 4 {
            return None;
        }
        let code = u16_at(options, at, big);
        if code == 0 {
            return Some((at, true));
        }
        let len = usize::from(u16_at(options, at + 2, big));
        let next = at + 4 + padded(len);
        if next > options.len() {
            return None;
        }
        at = next;
    }
    Some((at, false))
}

/// An enhanced packet block's fields, written with its comments.
struct Epb<'a> {
    interface: u32,
    ticks: u64,
    wire_len: u32,
    data: &'a [u8],
}

impl Epb<'_> {
    fn write(&self, out: &mut impl Write, comments: &Comments, big: bool) -> io::Result<()> {
        let options = if comments.is_empty() {
            0
        } else {
            comments.options_len() + 4
        };
        let len = (12 + 20 + padded(self.data.len()) + options) as u32;
        let u32b = |v| u32_bytes(v, big);
        out.write_all(&u32b(ENHANCED_PACKET_BLOCK))?;
        out.write_all(&u32b(len))?;
        out.write_all(&u32b(self.interface))?;
        out.write_all(&u32b((self.ticks >> 32) as u32))?;
        out.write_all(&u32b(self.ticks as u32))?;
        out.write_all(&u32b(self.data.len() as u32))?;
        out.write_all(&u32b(self.wire_len))?;
        out.write_all(self.data)?;
        out.write_all(&ZEROS[..padded(self.data.len()) - self.data.len()])?;
        if !comments.is_empty() {
            write_comments(out, comments, big)?;
            out.write_all(&ZEROS)?;
        }
        out.write_all(&u32b(len))
    }
}

/// The section header and interface description a pcap file becomes.
fn pcap_header_blocks(link_type: u32, snaplen: u32, nano: bool) -> io::Result<Vec<u8>> {
    let section = SectionHeaderBlock {
        endianness: Endianness::Little,
        major_version: 1,
        minor_version: 0,
        section_length: -1,
        options: vec![SectionHeaderOption::UserApplication(
            concat!(
                "lvscheck ",
                env!("CARGO_PKG_VERSION"),
                " (verify --annotate)"
            )
            .into(),
        )],
    };
    let to_io =
        |e: pcap_file::pcapng::PcapNgWriteError| io::Error::other(super::describe_error(&e));
    let mut writer = PcapNgWriter::with_section_header(Vec::new(), section).map_err(to_io)?;
    let mut interface = InterfaceDescriptionBlock::new(DataLink::from(link_type), snaplen);
    if nano {
        interface
            .options
            .push(InterfaceDescriptionOption::IfTsResol(
                InterfaceTsResolution::NANO,
            ));
    }
    writer.write_block(&interface.into_block()).map_err(to_io)?;
    Ok(writer.into_inner())
}

impl<W: Write> AnnotatedCopy<W> {
    /// Opens `source` (decompressing gzip) and starts the copy into `out`: for a pcap input,
    /// its section header and interface are written now.
    pub fn new(source: &CaptureSource, mut out: W) -> Result<Self, CaptureError> {
        let name = source.display_name();
        let read_error = |file: &str, offset, source| CaptureError::Read {
            file: file.to_string(),
            offset,
            source,
        };
        let raw = open_source(source)?;
        let (reader, gzip) = unwrap_gzip(raw).map_err(|e| read_error(&name, 0, e))?;
        let mut input = StreamBuf::keeping(reader, FrameBlock::default(), None);
        let have = input.fill_to(24).map_err(|e| read_error(&name, 0, e))?;
        if have == 0 {
            return Err(CaptureError::Empty { file: name, gzip });
        }
        let head = &input.bytes()[..have.min(4)];
        let Some(format) = format_of(head) else {
            return Err(CaptureError::UnknownFormat {
                file: name,
                gzip,
                magic: hex_prefix(head),
                hint: format_hint(head),
            });
        };
        let layout = match format {
            Format::Pcapng => Layout::Pcapng {
                big: false,
                interfaces: Vec::new(),
                last_ts_ns: 0,
            },
            Format::PcapMicro | Format::PcapNano => {
                if have < 24 {
                    return Err(CaptureError::TruncatedHeader {
                        file: name,
                        what: "pcap file header",
                        need: 24,
                        have,
                    });
                }
                let header = &input.bytes()[..24];
                let big = header[0] == 0xa1;
                let nano = format == Format::PcapNano;
                let snaplen = u32_at(header, 16, big);
                let link_type = u32_at(header, 20, big) & 0xffff;
                let blocks = pcap_header_blocks(link_type, snaplen, nano)
                    .map_err(|e| read_error(&name, 0, e))?;
                out.write_all(&blocks)
                    .map_err(|e| read_error(&name, 0, e))?;
                input.consume(24);
                Layout::Pcap {
                    big,
                    frac_ns: if nano { 1 } else { 1000 },
                    caplen_limit: super::pcap::caplen_limit(snaplen),
                }
            }
        };
        Ok(AnnotatedCopy {
            name,
            input,
            out,
            layout,
            next: 1,
            done: false,
            report: CopyReport {
                format,
                frames: 0,
                commented: 0,
                simple_converted: 0,
                uncommented: 0,
                stopped: None,
            },
        })
    }

    /// Copies the frames before `frame` as they are, then `frame` with `comments` added.
    /// Frames must come in increasing order; a frame past the end of the capture is not
    /// written (the copy has ended). Errors are the output's.
    pub fn comment(&mut self, frame: u64, comments: &Comments) -> io::Result<()> {
        if frame < self.next {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: comments for frame {frame} came after frame {} was written",
                    self.name,
                    self.next - 1
                ),
            ));
        }
        while !self.done && self.next <= frame {
            self.step(frame, comments)?;
        }
        Ok(())
    }

    /// Copies the rest of the capture and flushes the output.
    pub fn finish(mut self) -> io::Result<(CopyReport, W)> {
        let none = Comments::default();
        while !self.done {
            self.step(0, &none)?;
        }
        self.out.flush()?;
        Ok((self.report, self.out))
    }

    /// Ends the copy where the reader ends.
    fn stop(&mut self, why: String) {
        self.done = true;
        self.report.stopped = Some(format!("{}: {why}", self.name));
    }

    /// Makes `n` bytes available; false (and the copy stopped) when the input ends first or
    /// cannot be read.
    fn have(&mut self, n: usize, what: &str) -> bool {
        let offset = self.input.offset();
        match self.input.fill_to(n) {
            Ok(have) if have >= n => true,
            Ok(have) => {
                self.stop(format!(
                    "{what} at byte {offset} is cut short ({have} of {n} bytes)"
                ));
                false
            }
            Err(e) => {
                self.stop(format!("{what} at byte {offset} could not be read: {e}"));
                false
            }
        }
    }

    /// Copies one block or record, with `comments` if it is frame `frame`.
    fn step(&mut self, frame: u64, comments: &Comments) -> io::Result<()> {
        match self.input.fill_to(1) {
            Ok(0) => {
                self.done = true;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                let offset = self.input.offset();
                self.stop(format!("byte {offset} could not be read: {e}"));
                return Ok(());
            }
        }
        match self.layout {
            Layout::Pcap { .. } => self.pcap_record(frame, comments),
            Layout::Pcapng { .. } => self.pcapng_block(frame, comments),
        }
    }

    fn pcap_record(&mut self, frame: u64, comments: &Comments) -> io::Result<()> {
        let Layout::Pcap {
            big,
            frac_ns,
            caplen_limit,
        } = self.layout
        else {
            unreachable!("a pcap layout")
        };
        if !self.have(16, "record header") {
            return Ok(());
        }
        let header = &self.input.bytes()[..16];
        let caplen = u32_at(header, 8, big);
        if caplen > caplen_limit {
            let offset = self.input.offset();
            self.stop(format!(
                "record {} at byte {offset} claims {caplen} captured bytes",
                self.next
            ));
            return Ok(());
        }
        let need = 16 + caplen as usize;
        if !self.have(need, "record") {
            return Ok(());
        }
        let record = &self.input.bytes()[..need];
        let (sec, frac) = (
            u64::from(u32_at(record, 0, big)),
            u64::from(u32_at(record, 4, big)),
        );
        let per_second = 1_000_000_000 / frac_ns as u64;
        let none = Comments::default();
        let comments = if self.next == frame { comments } else { &none };
        Epb {
            interface: 0,
            ticks: sec * per_second + frac,
            wire_len: u32_at(record, 12, big),
            data: &record[16..],
        }
        .write(&mut self.out, comments, false)?;
        self.count(!comments.is_empty());
        self.input.consume(need);
        Ok(())
    }

    fn count(&mut self, commented: bool) {
        self.next += 1;
        self.report.frames += 1;
        if commented {
            self.report.commented += 1;
        }
    }

    fn pcapng_block(&mut self, frame: u64, comments: &Comments) -> io::Result<()> {
        let offset = self.input.offset();
        if !self.have(12, "block") {
            return Ok(());
        }
        let head = self.input.bytes();
        let Layout::Pcapng { big, .. } = self.layout else {
            unreachable!("a pcapng layout")
        };
        let is_shb = u32_at(head, 0, true) == SECTION_HEADER_BLOCK;
        let big = if is_shb {
            match u32_at(head, 8, true) {
                0x1A2B_3C4D => true,
                0x4D3C_2B1A => false,
                other => {
                    self.stop(format!(
                        "section header at byte {offset} has an unknown byte-order magic {other:#010x}"
                    ));
                    return Ok(());
                }
            }
        } else {
            big
        };
        let block_type = u32_at(head, 0, big);
        let len = u32_at(head, 4, big);
        if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK_LEN {
            self.stop(format!(
                "block at byte {offset} has an impossible length {len}"
            ));
            return Ok(());
        }
        let len = len as usize;
        if !self.have(len, "block") {
            return Ok(());
        }
        let block = &self.input.bytes()[..len];
        if u32_at(block, len - 4, big) as usize != len {
            self.stop(format!(
                "block at byte {offset} is corrupt (its trailing length differs)"
            ));
            return Ok(());
        }
        let number = self.next;
        let wanted = number == frame && !comments.is_empty();
        let body = &block[8..len - 4];
        let Layout::Pcapng {
            big: section_big,
            interfaces,
            last_ts_ns,
        } = &mut self.layout
        else {
            unreachable!("a pcapng layout")
        };
        match block_type {
            SECTION_HEADER_BLOCK => {
                *section_big = big;
                interfaces.clear();
                // A section length (bytes 16 to 24) other than -1 (unknown) would be wrong once
                // comments make the section longer: it becomes -1, which the format allows.
                match block.get(16..24) {
                    Some(length) if length != [0xff; 8] => {
                        self.out.write_all(&block[..16])?;
                        self.out.write_all(&[0xff; 8])?;
                        self.out.write_all(&block[24..])?;
                    }
                    _ => self.out.write_all(block)?,
                }
            }
            INTERFACE_DESCRIPTION_BLOCK => {
                let parsed = if big {
                    idb_fields::<BigEndian>(body)
                } else {
                    idb_fields::<LittleEndian>(body)
                };
                if let Some((idb, _)) = parsed {
                    interfaces.push(Clock {
                        resolution: idb.resolution,
                        offset_s: idb.offset_s,
                        snaplen: idb.snaplen,
                    });
                }
                self.out.write_all(block)?;
            }
            ENHANCED_PACKET_BLOCK | PACKET_BLOCK => {
                if body.len() >= 20 {
                    let interface = if block_type == PACKET_BLOCK {
                        usize::from(u16_at(body, 0, big))
                    } else {
                        u32_at(body, 0, big) as usize
                    };
                    if let Some(clock) = interfaces.get(interface) {
                        let ticks = (u64::from(u32_at(body, 4, big)) << 32)
                            | u64::from(u32_at(body, 8, big));
                        *last_ts_ns = clock.resolution.to_ns(ticks, clock.offset_s).0;
                    }
                }
                let written = wanted && write_with_comments(&mut self.out, block, big, comments)?;
                if !written {
                    self.out.write_all(block)?;
                    if wanted {
                        self.report.uncommented += 1;
                    }
                }
                self.count(written);
            }
            SIMPLE_PACKET_BLOCK => {
                let first = interfaces.first().copied();
                match first.filter(|_| wanted && body.len() >= 4) {
                    Some(clock) => {
                        let wire_len = u32_at(body, 0, big);
                        let mut caplen = (body.len() - 4).min(wire_len as usize);
                        if clock.snaplen != 0 {
                            caplen = caplen.min(clock.snaplen as usize);
                        }
                        Epb {
                            interface: 0,
                            ticks: clock.resolution.to_ticks(*last_ts_ns, clock.offset_s),
                            wire_len,
                            data: &body[4..4 + caplen],
                        }
                        .write(&mut self.out, comments, big)?;
                        self.report.simple_converted += 1;
                        self.count(true);
                    }
                    None => {
                        self.out.write_all(block)?;
                        if wanted {
                            self.report.uncommented += 1;
                        }
                        self.count(false);
                    }
                }
            }
            // Wireshark numbers a journal entry or custom block as a frame.
            t if numbered_not_packet(t) => {
                self.out.write_all(block)?;
                self.count(false);
            }
            _ => self.out.write_all(block)?,
        }
        self.input.consume(len);
        Ok(())
    }
}

/// Writes an enhanced or obsolete packet block with `comments` added to its options; false
/// (nothing written) when its fixed fields or options are malformed.
fn write_with_comments(
    out: &mut impl Write,
    block: &[u8],
    big: bool,
    comments: &Comments,
) -> io::Result<bool> {
    let len = block.len();
    let body = &block[8..len - 4];
    if body.len() < 20 {
        return Ok(false);
    }
    let caplen = u32_at(body, 12, big) as usize;
    let options_at = 20 + padded(caplen);
    if options_at > body.len() {
        return Ok(false);
    }
    let Some((end, marker)) = options_end(&body[options_at..], big) else {
        return Ok(false);
    };
    let insert = 8 + options_at + end;
    let added = comments.options_len() + if marker { 0 } else { 4 };
    let new_len = len + added;
    if new_len > u32::MAX as usize {
        return Ok(false);
    }
    let new_len = u32_bytes(new_len as u32, big);
    out.write_all(&block[..4])?;
    out.write_all(&new_len)?;
    out.write_all(&block[8..insert])?;
    write_comments(out, comments, big)?;
    if !marker {
        out.write_all(&ZEROS)?;
    }
    out.write_all(&block[insert..len - 4])?;
    out.write_all(&new_len)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_one_line_each_and_bounded() {
        let mut c = Comments::default();
        c.add(format_args!("a{}b", 1));
        c.add(format_args!("two\nlines\r"));
        c.add(format_args!("{}", "é".repeat(40_000)));
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "a1b");
        assert_eq!(lines[1], "two lines ");
        assert!(lines[2].len() <= MAX_COMMENT_LEN && lines[2].len() > MAX_COMMENT_LEN - 2);
        assert!(lines[2].chars().all(|ch| ch == 'é'));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.lines().count(), 0);
    }

    #[test]
    fn options_end_finds_the_marker_or_the_end() {
        // A flags option (4 bytes), then the end marker.
        let opts = [2, 0, 4, 0, 1, 2, 3, 4, 0, 0, 0, 0];
        assert_eq!(options_end(&opts, false), Some((8, true)));
        assert_eq!(options_end(&opts[..8], false), Some((8, false)));
        assert_eq!(options_end(&[], false), Some((0, false)));
        // A comment of 5 bytes, padded to 8.
        let opts = [0, 1, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0];
        assert_eq!(options_end(&opts, true), Some((12, false)));
        // Runs past the end.
        assert_eq!(options_end(&[1, 0, 9, 0, 1, 2], false), None);
    }
}
