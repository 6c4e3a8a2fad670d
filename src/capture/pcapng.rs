//! pcapng files: any number of sections, each with its own byte order and interfaces, each
//! interface with its own link type, `if_tsresol` and `if_tsoffset`.
//!
//! pcap-file checks the block framing (`RawBlock::from_slice`: alignment, minimum length,
//! trailing length; we check the same first, cheaper, and ask it only for the message of a
//! block that fails) and decodes interface descriptions with their options. We do not use its
//! `PcapNgParser`/`PcapNgReader` or its packet blocks, for these reasons (pcap-file
//! 3.0.0-rc.3):
//! - its `EnhancedPacketBlock` collects the block's options into a `Vec` for every packet and
//!   rejects an original length below the captured length;
//! - its timestamps are `Duration`s, which cannot hold a time before 1970 (a negative
//!   `if_tsoffset` makes the whole block an error);
//! - it refuses `if_tsresol` above 10^-9 or 2^-29 (the interface description fails, and with it
//!   the file), and an interface description with a non-zero reserved field or a name that is
//!   not UTF-8: we then read the three options we need leniently (`lenient_idb`) and warn;
//! - its buffered reader cannot tell a block cut short from a block larger than its buffer.
//!
//! So we peek at each block header, refuse absurd lengths before buffering, and decode enhanced,
//! simple and (obsolete) packet blocks from their fixed fields.

use std::io::Read;

use byteorder_slice::{BigEndian, ByteOrder, LittleEndian};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::{
    CUSTOM_BLOCK_COPIABLE, CUSTOM_BLOCK_NON_COPIABLE, ENHANCED_PACKET_BLOCK,
    INTERFACE_DESCRIPTION_BLOCK, INTERFACE_STATISTIC_BLOCK, NAME_RESOLUTION_BLOCK, PACKET_BLOCK,
    SECTION_HEADER_BLOCK, SIMPLE_PACKET_BLOCK, SYSTEMD_JOURNAL_EXPORT_BLOCK,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgState, RawBlock};

use super::error::CaptureError;
use super::frame::{Frame, InterfaceInfo};
use super::input::StreamBuf;
use super::options;
use super::summary::Recorder;
use super::{describe_error, u16_at, u32_at};

/// Smallest block: type, length, trailing length.
const MIN_BLOCK_LEN: usize = 12;
/// Where a block's body starts: after its type and length.
const BODY_AT: usize = 8;
/// Largest block we buffer. A 256 KiB snaplen packet plus options is far below; anything above
/// is taken as a corrupt length field.
pub(crate) const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Interfaces a capture may describe, over all its sections.
pub(crate) const MAX_INTERFACES: usize = 1 << 16;
/// Fixed part of a section header body: byte-order magic, version, section length.
const SHB_FIXED_LEN: usize = 16;
/// Fixed part of enhanced and (obsolete) packet blocks: interface, time high/low, lengths.
const PACKET_FIXED_LEN: usize = 20;

const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const BYTE_ORDER_MAGIC_SWAPPED: u32 = 0x4D3C_2B1A;

/// Timestamp unit of an interface (`if_tsresol`): 10^-n or 2^-n seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsResolution {
    Decimal(u8),
    Binary(u8),
}

impl TsResolution {
    /// Microseconds, the default when an interface has no `if_tsresol`.
    pub(crate) const DEFAULT: TsResolution = TsResolution::Decimal(6);

    pub(crate) fn from_option_byte(byte: u8) -> Self {
        if byte & 0x80 != 0 {
            TsResolution::Binary(byte & 0x7f)
        } else {
            TsResolution::Decimal(byte)
        }
    }

    pub(crate) fn ns_per_tick(self) -> f64 {
        match self {
            TsResolution::Decimal(d) => 10f64.powi(9 - i32::from(d)),
            TsResolution::Binary(b) => 1e9 / 2f64.powi(i32::from(b)),
        }
    }

    /// Nanoseconds since the epoch of a raw 64-bit timestamp plus `if_tsoffset` seconds,
    /// rounded down as Wireshark does, saturating at the ends of `i64`.
    ///
    /// The flag says whether the time fell outside what `i64` nanoseconds hold (before 1677 or
    /// after 2262) and was clamped.
    pub(crate) fn to_ns(self, ticks: u64, offset_s: i64) -> (i64, bool) {
        let ticks = u128::from(ticks);
        let ns: u128 = match self {
            TsResolution::Decimal(d) if d <= 9 => ticks * 10u128.pow(9 - u32::from(d)),
            TsResolution::Decimal(d) => 10u128
                .checked_pow(u32::from(d) - 9)
                .map_or(0, |div| ticks / div),
            // ticks < 2^64, so ticks * 10^9 < 2^94: no overflow; the shift is at most 127.
            TsResolution::Binary(b) => (ticks * 1_000_000_000) >> b,
        };
        let total = ns as i128 + i128::from(offset_s) * 1_000_000_000;
        let clamped = total.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        (clamped as i64, clamped != total)
    }

    /// The raw timestamp of a time in nanoseconds since the epoch, for an interface with this
    /// resolution and `if_tsoffset`: the inverse of [`TsResolution::to_ns`], which reads the
    /// time `to_ns` gave back as it was (0 for a time before the offset).
    pub(crate) fn to_ticks(self, ns: i64, offset_s: i64) -> u64 {
        let since = i128::from(ns) - i128::from(offset_s) * 1_000_000_000;
        let since = since.max(0) as u128;
        let ticks = match self {
            TsResolution::Decimal(d) if d <= 9 => since / 10u128.pow(9 - u32::from(d)),
            TsResolution::Decimal(d) => 10u128
                .checked_pow(u32::from(d) - 9)
                .map_or(u128::MAX, |m| since.saturating_mul(m)),
            // Rounded up: to_ns rounds down, and a tick of 2^-b s is no whole nanosecond.
            TsResolution::Binary(b) => {
                let scaled = 1u128
                    .checked_shl(u32::from(b))
                    .map_or(u128::MAX, |m| since.saturating_mul(m));
                scaled.saturating_add(999_999_999) / 1_000_000_000
            }
        };
        ticks.min(u128::from(u64::MAX)) as u64
    }
}

/// An interface of the current section.
struct Interface {
    global_id: u32,
    link_type: u32,
    snaplen: u32,
    resolution: TsResolution,
    offset_s: i64,
}

/// What an interface description block says that we use.
pub(crate) struct IdbFields {
    pub(crate) link_type: u32,
    pub(crate) snaplen: u32,
    pub(crate) name: Option<String>,
    pub(crate) filter: Option<String>,
    pub(crate) resolution: TsResolution,
    pub(crate) offset_s: i64,
}

/// Reads the first section header (errors are fatal) and then every block (problems become
/// warnings). Returns whether the file was read to its end.
pub(crate) fn read<R: Read, F: FnMut(&Frame)>(
    input: &mut StreamBuf<'_, R>,
    rec: &mut Recorder<F>,
) -> Result<bool, CaptureError> {
    let mut section: Vec<Interface> = Vec::new();
    let mut big = false;
    // One warning a file for timestamps out of range: every frame after the first says nothing new.
    let mut warned_saturation = false;
    // Interfaces of the current section past MAX_INTERFACES: counted, not kept.
    let mut section_unkept: usize = 0;
    let mut warned_interface_limit = false;
    let mut first = true;
    let mut warned_untimed = false;

    loop {
        let offset = input.offset();
        let number = rec.next_number();
        // Fatal at the first block (nothing readable), a stop afterwards.
        macro_rules! give_up {
            ($what:expr, $frame:expr, $msg:expr) => {{
                if first {
                    return Err(CaptureError::BadHeader {
                        file: rec.summary.file.clone(),
                        what: "pcapng section header block",
                        reason: $msg,
                    });
                }
                rec.stop(
                    offset,
                    $frame,
                    format!("{} at byte {offset} {}", $what, $msg),
                );
                return Ok(false);
            }};
        }

        let have = match input.fill_to(MIN_BLOCK_LEN) {
            Ok(n) => n,
            Err(e) => {
                if first {
                    return Err(CaptureError::Read {
                        file: rec.summary.file.clone(),
                        offset,
                        source: e,
                    });
                }
                give_up!("block", None, format!("could not be read: {e}"));
            }
        };
        if have == 0 && !first {
            return Ok(true);
        }
        if have < MIN_BLOCK_LEN {
            if first {
                return Err(CaptureError::TruncatedHeader {
                    file: rec.summary.file.clone(),
                    what: "pcapng section header block",
                    need: MIN_BLOCK_LEN,
                    have,
                });
            }
            give_up!(
                "block",
                None,
                format!("is cut short (a block header needs {MIN_BLOCK_LEN} bytes, {have} remain)")
            );
        }

        let head = input.bytes();
        // The section header's type reads the same in both byte orders; its own byte order is
        // given by the magic that follows its length.
        let is_shb = u32_at(head, 0, true) == SECTION_HEADER_BLOCK;
        let block_big = if is_shb {
            match u32_at(head, 8, true) {
                BYTE_ORDER_MAGIC => true,
                BYTE_ORDER_MAGIC_SWAPPED => false,
                other => give_up!(
                    "section header block",
                    None,
                    format!("has an unknown byte-order magic {other:#010x}")
                ),
            }
        } else {
            big
        };
        let block_type = u32_at(head, 0, block_big);
        let len = u32_at(head, 4, block_big);
        let is_packet = matches!(
            block_type,
            ENHANCED_PACKET_BLOCK | PACKET_BLOCK | SIMPLE_PACKET_BLOCK
        );
        let frame = is_packet.then_some(number);
        let what = BlockWhat {
            block_type,
            number: frame,
        };

        if (len as usize) < MIN_BLOCK_LEN || !len.is_multiple_of(4) || len > MAX_BLOCK_LEN {
            give_up!(
                what,
                frame,
                format!("has an impossible length {len} (a multiple of 4 from {MIN_BLOCK_LEN} to {MAX_BLOCK_LEN} expected)")
            );
        }
        let len = len as usize;
        let have = match input.fill_to(len) {
            Ok(n) => n,
            Err(e) => give_up!(what, frame, format!("could not be read: {e}")),
        };
        if have < len {
            if first {
                return Err(CaptureError::TruncatedHeader {
                    file: rec.summary.file.clone(),
                    what: "pcapng section header block",
                    need: len,
                    have,
                });
            }
            give_up!(
                what,
                frame,
                format!("is cut short (header says {len} bytes, {have} remain)")
            );
        }

        let block = &input.bytes()[..len];
        // Past the checks above (length, alignment, byte-order magic), pcap-file's framing
        // check fails only on a trailing length that differs: it is asked then, for its
        // message, and not for every block.
        if u32_at(block, len - 4, block_big) as usize != len {
            let framing = if block_big {
                RawBlock::from_slice::<BigEndian>(block)
            } else {
                RawBlock::from_slice::<LittleEndian>(block)
            };
            if let Err(e) = framing {
                give_up!(what, frame, format!("is corrupt: {}", describe_error(&e)));
            }
        }
        let body = &block[BODY_AT..len - 4];

        match block_type {
            SECTION_HEADER_BLOCK => {
                // Byte-order magic, major and minor version, section length: all we need. Its
                // options (comments, hardware, OS) are not, so they are not parsed, and a
                // malformed one cannot make the section unreadable.
                if body.len() < SHB_FIXED_LEN {
                    give_up!(
                        what,
                        None,
                        format!(
                            "is too short ({} bytes of body, at least {SHB_FIXED_LEN} expected)",
                            body.len()
                        )
                    );
                }
                big = block_big;
                section.clear();
                section_unkept = 0;
                rec.summary.sections += 1;
                let (major, minor) = (u16_at(body, 4, big), u16_at(body, 6, big));
                // libpcap and Wireshark read 1.0, and 1.2 (which some old writers wrote);
                // they refuse any other version.
                if !(major == 1 && (minor == 0 || minor == 2)) {
                    rec.warn(
                        offset,
                        None,
                        format!("section header at byte {offset} has version {major}.{minor}, which libpcap and Wireshark refuse; read as 1.0"),
                    );
                }
            }
            INTERFACE_DESCRIPTION_BLOCK => {
                let parsed = if big {
                    idb_fields::<BigEndian>(body)
                } else {
                    idb_fields::<LittleEndian>(body)
                };
                let (idb, lenient_reason) = match parsed {
                    Some(found) => found,
                    None => give_up!(
                        what,
                        None,
                        format!(
                            "is too short ({} bytes of body, at least 8 expected)",
                            body.len()
                        )
                    ),
                };
                if rec.summary.interfaces.len() >= MAX_INTERFACES {
                    // Interfaces are kept for the summary; a file of nothing but interface
                    // descriptions must not make that list grow without bound. Past the limit
                    // an interface is only counted, and its packets are skipped; reading goes
                    // on for the interfaces kept.
                    if section_unkept == 0 && !warned_interface_limit {
                        warned_interface_limit = true;
                        rec.warn(
                            offset,
                            None,
                            format!("{what} at byte {offset} would be interface number {MAX_INTERFACES}, more than lvscheck keeps: it and the interfaces after it are not kept, and their packets are skipped"),
                        );
                    }
                    section_unkept += 1;
                } else {
                    if let Some(reason) = lenient_reason {
                        rec.warn(
                        offset,
                        None,
                        format!("interface description at byte {offset} has options pcap-file rejects ({reason}); read leniently"),
                    );
                    }
                    let global_id = rec.add_interface(InterfaceInfo {
                        id: 0,
                        link_type: idb.link_type,
                        name: idb.name,
                        snaplen: idb.snaplen,
                        ts_resolution_ns: idb.resolution.ns_per_tick(),
                        filter: idb.filter,
                        if_drop: None,
                        os_drop: None,
                        cut_at: None,
                        cut_frames: 0,
                    });
                    section.push(Interface {
                        global_id,
                        link_type: idb.link_type,
                        snaplen: idb.snaplen,
                        resolution: idb.resolution,
                        offset_s: idb.offset_s,
                    });
                }
            }
            ENHANCED_PACKET_BLOCK | PACKET_BLOCK => {
                // Both start with interface, time high, time low, captured and original length;
                // the obsolete packet block has a 16-bit interface and a drop count.
                let fields = (body.len() >= PACKET_FIXED_LEN).then(|| {
                    let interface = if block_type == PACKET_BLOCK {
                        u32::from(u16_at(body, 0, big))
                    } else {
                        u32_at(body, 0, big)
                    };
                    let ticks =
                        (u64::from(u32_at(body, 4, big)) << 32) | u64::from(u32_at(body, 8, big));
                    (
                        interface,
                        ticks,
                        u32_at(body, 12, big),
                        u32_at(body, 16, big),
                    )
                });
                match fields {
                    None => {
                        rec.warn(
                            offset,
                            frame,
                            format!("{what} at byte {offset} is too short for a packet block ({len} bytes); skipped"),
                        );
                        rec.skip_record();
                    }
                    Some((interface, ticks, caplen, wire_len)) => {
                        let room = body.len() - PACKET_FIXED_LEN;
                        let unkept = (interface as usize)
                            .checked_sub(section.len())
                            .is_some_and(|beyond| beyond < section_unkept);
                        match section.get(interface as usize) {
                            None if unkept => rec.skip_record(),
                            None => {
                                rec.warn(
                                    offset,
                                    frame,
                                    format!(
                                        "{what} at byte {offset} names interface {interface}, but its section describes {}; skipped",
                                        section.len()
                                    ),
                                );
                                rec.skip_record();
                            }
                            Some(_) if caplen as usize > room => {
                                rec.warn(
                                    offset,
                                    frame,
                                    format!("{what} at byte {offset} claims {caplen} captured bytes but its block holds {room}; skipped"),
                                );
                                rec.skip_record();
                            }
                            Some(iface) => {
                                let data = BODY_AT + PACKET_FIXED_LEN
                                    ..BODY_AT + PACKET_FIXED_LEN + caplen as usize;
                                let (ts_ns, saturated) =
                                    iface.resolution.to_ns(ticks, iface.offset_s);
                                if saturated && !warned_saturation {
                                    warned_saturation = true;
                                    rec.warn(
                                        offset,
                                        frame,
                                        format!("{what} at byte {offset} has a timestamp before 1677 or after 2262, beyond what lvscheck's nanosecond clock holds; it and any later such frame are read at the nearest time it can hold"),
                                    );
                                }
                                rec.frame(
                                    input,
                                    iface.global_id,
                                    iface.link_type,
                                    ts_ns,
                                    true,
                                    wire_len,
                                    data,
                                    offset,
                                );
                            }
                        }
                    }
                }
            }
            SIMPLE_PACKET_BLOCK => match (body.len() >= 4, section.first()) {
                (true, Some(iface)) => {
                    let wire_len = u32_at(body, 0, big);
                    let mut caplen = (body.len() - 4).min(wire_len as usize);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    if !warned_untimed {
                        warned_untimed = true;
                        rec.warn(
                            offset,
                            frame,
                            format!(
                                "{what} at byte {offset} has no time (simple packet blocks carry none): such frames get the time of the frame before them"
                            ),
                        );
                    }
                    let ts_ns = rec.summary.last_ts_ns.unwrap_or(0);
                    rec.frame(
                        input,
                        iface.global_id,
                        iface.link_type,
                        ts_ns,
                        false,
                        wire_len,
                        BODY_AT + 4..BODY_AT + 4 + caplen,
                        offset,
                    );
                }
                _ => {
                    rec.warn(
                        offset,
                        frame,
                        format!("{what} at byte {offset} has no interface to belong to or no length; skipped"),
                    );
                    rec.skip_record();
                }
            },
            // Wireshark shows each journal entry and custom block as a frame; it is not a packet
            // for us, but it takes its number so that the frame numbers after it match.
            t if numbered_not_packet(t) => rec.skip_record(),
            // Counters are cumulative: the largest any block gives is the capture's total.
            INTERFACE_STATISTIC_BLOCK => match options::isb_drops(body, big) {
                Some(drops) => {
                    let global = section.get(drops.interface as usize).map(|i| i.global_id);
                    match global.and_then(|g| rec.summary.interfaces.get_mut(g as usize)) {
                        Some(info) => {
                            info.if_drop = info.if_drop.max(drops.if_drop);
                            info.os_drop = info.os_drop.max(drops.os_drop);
                        }
                        None => rec.warn(
                            offset,
                            None,
                            format!(
                                "{what} at byte {offset} names interface {}, but its section \
                                 describes {}; ignored",
                                drops.interface,
                                section.len()
                            ),
                        ),
                    }
                }
                None => rec.warn(
                    offset,
                    None,
                    format!("{what} at byte {offset} is too short ({len} bytes); ignored"),
                ),
            },
            // Name resolution, decryption secrets: not frames.
            _ => {}
        }

        first = false;
        input.consume(len);
    }
}

/// A block as messages name it: "record N (enhanced packet block)" for a packet, the block's
/// name otherwise, its type in hex when it has none. Written only when a message is: naming
/// every block up front cost an allocation a packet.
#[derive(Clone, Copy)]
struct BlockWhat {
    block_type: u32,
    /// The frame number, for a packet block.
    number: Option<u64>,
}

impl std::fmt::Display for BlockWhat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.number, block_name(self.block_type)) {
            (Some(number), Some(name)) => write!(f, "record {number} ({name})"),
            (None, Some(name)) => f.write_str(name),
            (_, None) => write!(f, "block of type {:#x}", self.block_type),
        }
    }
}

/// Names of the block types a user may meet, for messages.
fn block_name(block_type: u32) -> Option<&'static str> {
    Some(match block_type {
        SECTION_HEADER_BLOCK => "section header block",
        INTERFACE_DESCRIPTION_BLOCK => "interface description block",
        PACKET_BLOCK => "obsolete packet block",
        SIMPLE_PACKET_BLOCK => "simple packet block",
        NAME_RESOLUTION_BLOCK => "name resolution block",
        INTERFACE_STATISTIC_BLOCK => "interface statistics block",
        ENHANCED_PACKET_BLOCK => "enhanced packet block",
        SYSTEMD_JOURNAL_EXPORT_BLOCK => "systemd journal export block",
        _ => return None,
    })
}

/// Blocks that are no packets but that Wireshark lists as frames of their own, each taking a
/// frame number: systemd journal entries, and custom blocks, copiable or not (tshark 4.0 shows
/// one as "PCAPNG ... Custom Block"; capinfos counts packets only).
pub(crate) fn numbered_not_packet(block_type: u32) -> bool {
    matches!(
        block_type,
        SYSTEMD_JOURNAL_EXPORT_BLOCK | CUSTOM_BLOCK_COPIABLE | CUSTOM_BLOCK_NON_COPIABLE
    )
}

/// Link type, snaplen, name, `if_filter`, `if_tsresol` and `if_tsoffset` of an interface
/// description body;
/// with pcap-file's complaint when we had to read it leniently. `None` if the body cannot hold
/// the fixed fields.
pub(crate) fn idb_fields<B: ByteOrder>(body: &[u8]) -> Option<(IdbFields, Option<String>)> {
    if body.len() < 8 {
        return None;
    }
    let big = B::read_u32(&[0, 0, 0, 1]) == 1;
    let mut fields = IdbFields {
        // Read the raw number: pcap-file's `DataLink` enum does not map every value back to itself.
        link_type: u32::from(u16_at(body, 0, big)),
        snaplen: u32_at(body, 4, big),
        name: None,
        filter: None,
        resolution: TsResolution::DEFAULT,
        offset_s: 0,
    };
    // pcap-file hands the filter back as raw bytes; read it from the options ourselves.
    options::walk(&body[8..], big, |code, value| {
        if code == options::OPT_IF_FILTER {
            fields.filter = options::filter_string(value);
        }
    });
    match InterfaceDescriptionBlock::from_slice::<B>(&PcapNgState::default(), body) {
        Ok((_, idb)) => {
            let resolution = idb.ts_resolution();
            fields.resolution = if resolution.is_bin() {
                TsResolution::Binary(resolution.resolution())
            } else {
                TsResolution::Decimal(resolution.resolution())
            };
            fields.offset_s = idb.ts_offset();
            fields.name = idb.options.iter().find_map(|opt| match opt {
                InterfaceDescriptionOption::IfName(name) => Some(name.to_string()),
                _ => None,
            });
            Some((fields, None))
        }
        Err(e) => {
            lenient_idb(&body[8..], big, &mut fields);
            Some((fields, Some(describe_error(&e))))
        }
    }
}

const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Reads `if_name`, `if_tsresol` and `if_tsoffset` from an option list, stopping quietly at the
/// end marker or at an option that runs past the end.
fn lenient_idb(options: &[u8], big: bool, fields: &mut IdbFields) {
    options::walk(options, big, |code, value| match code {
        OPT_IF_NAME => fields.name = Some(String::from_utf8_lossy(value).into_owned()),
        OPT_IF_TSRESOL if value.len() == 1 => {
            fields.resolution = TsResolution::from_option_byte(value[0])
        }
        OPT_IF_TSOFFSET if value.len() == 8 => {
            let (first, second) = (
                u64::from(u32_at(value, 0, big)),
                u64::from(u32_at(value, 4, big)),
            );
            let raw = if big {
                (first << 32) | second
            } else {
                (second << 32) | first
            };
            fields.offset_s = raw as i64;
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_back_to_ticks() {
        let ns = 1_795_629_504_691_167_123;
        assert_eq!(
            TsResolution::Decimal(6).to_ticks(ns, 0),
            1_795_629_504_691_167
        );
        assert_eq!(TsResolution::Decimal(9).to_ticks(ns, 0), ns as u64);
        assert_eq!(TsResolution::Decimal(12).to_ticks(7, 0), 7_000);
        assert_eq!(TsResolution::Decimal(6).to_ticks(2_500_000_000, 2), 500_000);
        // Before the offset: 0, not a wrap; far after it (a huge negative offset): the largest.
        assert_eq!(TsResolution::Decimal(6).to_ticks(1, 10), 0);
        assert_eq!(
            TsResolution::Binary(64).to_ticks(i64::MAX, i64::MIN),
            u64::MAX
        );
        assert_eq!(
            TsResolution::Decimal(19).to_ticks(i64::MAX, i64::MIN),
            u64::MAX
        );
        for r in [
            TsResolution::Decimal(3),
            TsResolution::Decimal(6),
            TsResolution::Decimal(9),
            TsResolution::Binary(10),
            TsResolution::Binary(30),
        ] {
            for ticks in [0u64, 1, 1536, 1_795_629_504_691] {
                let (ns, _) = r.to_ns(ticks, -3);
                assert_eq!(r.to_ns(r.to_ticks(ns, -3), -3).0, ns, "{r:?} {ticks}");
            }
        }
    }

    #[test]
    fn resolutions_convert_ticks_to_nanoseconds() {
        assert_eq!(
            TsResolution::Decimal(6).to_ns(1_500_000, 0).0,
            1_500_000_000
        );
        assert_eq!(TsResolution::Decimal(9).to_ns(7, 0).0, 7);
        assert_eq!(TsResolution::Decimal(3).to_ns(2_001, 0).0, 2_001_000_000);
        assert_eq!(TsResolution::Decimal(0).to_ns(3, -1).0, 2_000_000_000);
        // 10^-12: picoseconds, rounded down to nanoseconds.
        assert_eq!(TsResolution::Decimal(12).to_ns(1_999, 0).0, 1);
        // 2^-10 s: 1024 ticks a second; 1536 ticks = 1.5 s; 1 tick = 976562.5 ns -> 976562.
        assert_eq!(TsResolution::Binary(10).to_ns(1536, 0).0, 1_500_000_000);
        assert_eq!(TsResolution::Binary(10).to_ns(1, 0).0, 976_562);
        // Before the epoch is representable.
        assert_eq!(TsResolution::Decimal(6).to_ns(0, -10).0, -10_000_000_000);
        // Absurd values saturate instead of overflowing.
        assert_eq!(
            TsResolution::Decimal(0).to_ns(u64::MAX, i64::MAX),
            (i64::MAX, true)
        );
        assert_eq!(
            TsResolution::Decimal(6).to_ns(0, -10),
            (-10_000_000_000, false)
        );
        assert_eq!(TsResolution::Decimal(127).to_ns(u64::MAX, 0).0, 0);
        assert_eq!(TsResolution::Binary(127).to_ns(u64::MAX, 0).0, 0);
    }

    #[test]
    fn resolution_option_byte() {
        assert_eq!(TsResolution::from_option_byte(9), TsResolution::Decimal(9));
        assert_eq!(
            TsResolution::from_option_byte(0x8a),
            TsResolution::Binary(10)
        );
        assert_eq!(TsResolution::Decimal(3).ns_per_tick(), 1e6);
        assert_eq!(TsResolution::Binary(10).ns_per_tick(), 1e9 / 1024.0);
    }

    #[test]
    fn lenient_idb_reads_the_options_it_needs() {
        // if_name "eth\xff" (not UTF-8), if_tsresol 12, if_tsoffset -5, end.
        let mut opts = Vec::new();
        opts.extend_from_slice(&[2, 0, 4, 0, b'e', b't', b'h', 0xff]);
        opts.extend_from_slice(&[9, 0, 1, 0, 12, 0, 0, 0]);
        opts.extend_from_slice(&[14, 0, 8, 0]);
        opts.extend_from_slice(&(-5i64).to_le_bytes());
        opts.extend_from_slice(&[0, 0, 0, 0]);
        let mut fields = IdbFields {
            link_type: 1,
            snaplen: 0,
            name: None,
            filter: None,
            resolution: TsResolution::DEFAULT,
            offset_s: 0,
        };
        lenient_idb(&opts, false, &mut fields);
        assert_eq!(fields.name.as_deref(), Some("eth\u{fffd}"));
        assert_eq!(fields.resolution, TsResolution::Decimal(12));
        assert_eq!(fields.offset_s, -5);

        // An option running past the end is ignored rather than read out of bounds.
        let mut fields2 = IdbFields {
            name: None,
            ..fields
        };
        lenient_idb(&[2, 0, 200, 0, b'x'], false, &mut fields2);
        assert_eq!(fields2.name, None);
    }
}
