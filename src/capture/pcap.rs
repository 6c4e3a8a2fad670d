//! Classic pcap (libpcap) files: micro- or nanosecond timestamps, either byte order.
//!
//! pcap-file parses the file header. A record header is four 32-bit fields in the file's byte
//! order, which we read ourselves, where the record lies in the reader's buffer: so that an
//! absurd captured length is refused before the buffer grows for it, so a record cut short can
//! say how many bytes it lacks, and without pcap-file's per-record parse (its `RawPcapPacket`
//! reads the same four fields; its validated `PcapPacket` rejects records Wireshark reads: a
//! captured length above the file's snaplen, which some writers put as 0 or wrong in the
//! header, and a microsecond field of a million or more).

use std::io::Read;

use pcap_file::pcap::{PcapParser, PcapTsResolution};

use super::error::CaptureError;
use super::frame::{Format, Frame, InterfaceInfo};
use super::input::StreamBuf;
use super::summary::Recorder;
use super::{describe_error, u32_at};

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Bits 16-25 of the file header's link-type field, which the pcap specification reserves (must
/// be zero); bits 26-31 say whether frames end with an FCS and how long it is.
const LINK_TYPE_RESERVED: u32 = 0x03ff_0000;

/// Captured lengths up to this are always accepted: it is tcpdump's and Wireshark's default
/// snaplen (262144).
const STANDARD_MAX_CAPLEN: u32 = 256 * 1024;
/// A snaplen in the file header can raise the limit up to this, and no further.
const HARD_MAX_CAPLEN: u32 = 16 * 1024 * 1024;

/// The largest captured length a record of this file may claim; beyond it, the length field is
/// taken as corruption rather than a reason to allocate.
pub(crate) fn caplen_limit(snaplen: u32) -> u32 {
    snaplen.clamp(STANDARD_MAX_CAPLEN, HARD_MAX_CAPLEN)
}

/// Reads the file header (errors are fatal) and then every record (problems become warnings).
/// Returns whether the file was read to its end.
pub(crate) fn read<R: Read, F: FnMut(&Frame)>(
    input: &mut StreamBuf<'_, R>,
    rec: &mut Recorder<F>,
) -> Result<bool, CaptureError> {
    let file = || rec.summary.file.clone();
    let have = input
        .fill_to(FILE_HEADER_LEN)
        .map_err(|source| CaptureError::Read {
            file: file(),
            offset: 0,
            source,
        })?;
    if have < FILE_HEADER_LEN {
        return Err(CaptureError::TruncatedHeader {
            file: file(),
            what: "pcap file header",
            need: FILE_HEADER_LEN,
            have,
        });
    }
    let header_bytes = &input.bytes()[..FILE_HEADER_LEN];
    let parser = match PcapParser::new(header_bytes) {
        Ok((_, parser)) => parser,
        Err(e) => {
            return Err(CaptureError::BadHeader {
                file: file(),
                what: "pcap file header",
                reason: format!("is unreadable: {}", describe_error(&e)),
            })
        }
    };
    let header = parser.header();
    let big = header.endianness.is_big();
    // The upper bits of the link-type field carry FCS information (pcap spec, LinkType field).
    let link_field = u32_at(header_bytes, 20, big);
    let link_type = link_field & 0xffff;
    let (major, minor) = (header.version_major, header.version_minor);
    if major != 2 {
        // libpcap calls a version below 2 "archaic" and refuses the file, as Wireshark does.
        rec.warn(
            4,
            None,
            format!("the file header says pcap version {major}.{minor}, which libpcap and Wireshark refuse; read as 2.4"),
        );
    }
    if link_field & LINK_TYPE_RESERVED != 0 {
        rec.warn(
            20,
            None,
            format!(
                "the link-type field 0x{link_field:08x} has reserved bits set (libpcap and Wireshark refuse the file); read as link type {link_type}"
            ),
        );
    }
    let nano = header.ts_resolution == PcapTsResolution::NanoSecond;
    rec.summary.format = if nano {
        Format::PcapNano
    } else {
        Format::PcapMicro
    };
    rec.summary.sections = 1;
    rec.add_interface(InterfaceInfo {
        id: 0,
        link_type,
        name: None,
        snaplen: header.snaplen,
        ts_resolution_ns: if nano { 1.0 } else { 1000.0 },
        filter: None,
        if_drop: None,
        os_drop: None,
        cut_at: None,
        cut_frames: 0,
    });
    input.consume(FILE_HEADER_LEN);

    let frac_ns: i64 = if nano { 1 } else { 1000 };
    let limit = caplen_limit(header.snaplen);
    loop {
        let offset = input.offset();
        let number = rec.next_number();
        let have = match input.fill_to(RECORD_HEADER_LEN) {
            Ok(n) => n,
            Err(e) => {
                rec.stop(
                    offset,
                    Some(number),
                    format!("record {number} at byte {offset} could not be read: {e}"),
                );
                return Ok(false);
            }
        };
        if have == 0 {
            return Ok(true);
        }
        if have < RECORD_HEADER_LEN {
            rec.stop(
                offset,
                Some(number),
                format!(
                    "record {number} at byte {offset} is cut short (its header needs {RECORD_HEADER_LEN} bytes, {have} remain)"
                ),
            );
            return Ok(false);
        }
        if input.bytes()[..RECORD_HEADER_LEN].iter().all(|&b| b == 0) {
            skip_zeros(input, rec);
            continue;
        }
        let caplen = u32_at(input.bytes(), 8, big);
        if caplen > limit {
            rec.stop(
                offset,
                Some(number),
                format!(
                    "record {number} at byte {offset} claims {caplen} captured bytes, more than the {limit} a record may hold"
                ),
            );
            return Ok(false);
        }
        let need = RECORD_HEADER_LEN + caplen as usize;
        let have = match input.fill_to(need) {
            Ok(n) => n,
            Err(e) => {
                rec.stop(
                    offset,
                    Some(number),
                    format!("record {number} at byte {offset} could not be read: {e}"),
                );
                return Ok(false);
            }
        };
        if have < need {
            rec.stop(
                offset,
                Some(number),
                format!(
                    "record {number} at byte {offset} is cut short (header says {caplen} bytes, {} remain)",
                    have - RECORD_HEADER_LEN
                ),
            );
            return Ok(false);
        }
        // The record header: seconds, fraction (micro- or nanoseconds), captured length
        // (read above), original length.
        let header = input.bytes();
        let (ts_sec, ts_frac) = (u32_at(header, 0, big), u32_at(header, 4, big));
        let orig_len = u32_at(header, 12, big);
        let ts_ns = i64::from(ts_sec) * 1_000_000_000 + i64::from(ts_frac) * frac_ns;
        rec.frame(
            input,
            0,
            link_type,
            ts_ns,
            true,
            orig_len,
            RECORD_HEADER_LEN..need,
            offset,
        );
        input.consume(need);
    }
}

/// How much of a run of zeros is looked at a time.
const ZERO_SCAN_CHUNK: usize = 1 << 20;

/// Skips a run of all-zero record headers: a record of time 0 with 0 bytes captured and 0 on
/// the wire is what a preallocated or overwritten file holds, not anything a capture tool
/// writes, and a multi-gigabyte run of them would otherwise be decoded one empty frame at a
/// time. They keep their frame numbers (as Wireshark numbers them), are counted as skipped
/// records, and one warning names the run. Reading goes on after the run (a record may follow).
fn skip_zeros<R: Read, F: FnMut(&Frame)>(input: &mut StreamBuf<'_, R>, rec: &mut Recorder<F>) {
    let (start, first) = (input.offset(), rec.next_number());
    let mut records: u64 = 0;
    loop {
        // Count what is in memory first: the caller saw a zero header there, so each call
        // consumes at least one record, whatever the next read does.
        let have = input.bytes().len();
        let zero = input
            .bytes()
            .chunks_exact(RECORD_HEADER_LEN)
            .take_while(|c| c.iter().all(|&b| b == 0))
            .count();
        input.consume(zero * RECORD_HEADER_LEN);
        records += zero as u64;
        // A record that is not all zeros ends the run.
        if zero < have / RECORD_HEADER_LEN {
            break;
        }
        // So do the end of the stream and a read error (the record loop then reports it).
        match input.fill_to(ZERO_SCAN_CHUNK) {
            Ok(n) if n >= RECORD_HEADER_LEN => {}
            _ => break,
        }
    }
    rec.skip_records(records);
    rec.warn(
        start,
        Some(first),
        format!(
            "records {first} to {} (bytes {start} to {}) are all zeros: a preallocated or overwritten part of the file, not packets; {records} empty records skipped",
            (first + records).saturating_sub(1),
            input.offset()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caplen_limit_is_bounded_both_ways() {
        assert_eq!(caplen_limit(0), STANDARD_MAX_CAPLEN);
        assert_eq!(caplen_limit(65535), STANDARD_MAX_CAPLEN);
        assert_eq!(caplen_limit(1 << 20), 1 << 20);
        assert_eq!(caplen_limit(u32::MAX), HARD_MAX_CAPLEN);
    }
}
