//! Hand-written capture files for the capture tests: every byte is put in here, so expected
//! values come from what the tests wrote, not from the reader.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

use lvscheck::capture::{read_capture_from, CaptureOutcome, CaptureSummary};

/// One frame as the tests expect to see it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub interface: u32,
    pub number: u64,
    pub ts_ns: i64,
    pub wire_len: u32,
    pub link_type: u32,
    pub data: Vec<u8>,
    pub offset: u64,
}

/// Reads `bytes` as a capture, collecting the frames.
pub fn read_bytes(name: &str, bytes: &[u8]) -> (CaptureOutcome, Vec<Seen>) {
    let mut seen = Vec::new();
    let outcome = read_capture_from(7, name, bytes, |f| {
        assert_eq!(f.capture, 7);
        seen.push(Seen {
            interface: f.interface,
            number: f.number,
            ts_ns: f.ts_ns,
            wire_len: f.wire_len,
            link_type: f.link_type,
            data: f.data.to_vec(),
            offset: f.offset,
        })
    });
    (outcome, seen)
}

pub fn read_ok(name: &str, bytes: &[u8]) -> (CaptureSummary, Vec<Seen>) {
    let (outcome, seen) = read_bytes(name, bytes);
    match outcome {
        Ok(summary) => (summary, seen),
        Err(e) => panic!("expected a readable capture, got: {e}"),
    }
}

/// Packet bytes that say which packet they are.
pub fn payload(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}

fn u16b(v: u16, big: bool) -> [u8; 2] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u32b(v: u32, big: bool) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u64b(v: u64, big: bool) -> [u8; 8] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// A classic pcap file being written.
pub struct Pcap {
    pub big: bool,
    pub nano: bool,
    pub bytes: Vec<u8>,
}

impl Pcap {
    pub fn new(big: bool, nano: bool, link_type: u32, snaplen: u32) -> Self {
        let magic: u32 = if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32b(magic, big));
        bytes.extend_from_slice(&u16b(2, big));
        bytes.extend_from_slice(&u16b(4, big));
        bytes.extend_from_slice(&u32b(0, big)); // thiszone
        bytes.extend_from_slice(&u32b(0, big)); // sigfigs
        bytes.extend_from_slice(&u32b(snaplen, big));
        bytes.extend_from_slice(&u32b(link_type, big));
        Pcap { big, nano, bytes }
    }

    /// Appends a record; returns its offset.
    pub fn record(&mut self, sec: u32, frac: u32, data: &[u8], wire_len: u32) -> u64 {
        self.record_with_caplen(sec, frac, data.len() as u32, data, wire_len)
    }

    /// Appends a record whose captured-length field may lie about the data that follows.
    pub fn record_with_caplen(
        &mut self,
        sec: u32,
        frac: u32,
        caplen: u32,
        data: &[u8],
        wire_len: u32,
    ) -> u64 {
        let offset = self.bytes.len() as u64;
        let big = self.big;
        self.bytes.extend_from_slice(&u32b(sec, big));
        self.bytes.extend_from_slice(&u32b(frac, big));
        self.bytes.extend_from_slice(&u32b(caplen, big));
        self.bytes.extend_from_slice(&u32b(wire_len, big));
        self.bytes.extend_from_slice(data);
        offset
    }
}

/// pcapng option codes used by the tests.
pub const IF_NAME: u16 = 2;
pub const IF_TSRESOL: u16 = 9;
pub const IF_TSOFFSET: u16 = 14;

/// A pcapng file being written; each section may have its own byte order.
pub struct Pcapng {
    pub big: bool,
    pub bytes: Vec<u8>,
}

impl Pcapng {
    pub fn new(big: bool) -> Self {
        let mut ng = Pcapng {
            big,
            bytes: Vec::new(),
        };
        ng.section(big);
        ng
    }

    /// Starts a section in the given byte order; returns its offset.
    pub fn section(&mut self, big: bool) -> u64 {
        self.big = big;
        let mut body = Vec::new();
        body.extend_from_slice(&u32b(0x1a2b_3c4d, big));
        body.extend_from_slice(&u16b(1, big));
        body.extend_from_slice(&u16b(0, big));
        body.extend_from_slice(&u64b(u64::MAX, big)); // section length unknown
        self.block(0x0a0d_0d0a, &body)
    }

    /// Options block: (code, value) pairs, padded, with the end marker.
    pub fn options(&self, opts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        if opts.is_empty() {
            return out;
        }
        for (code, value) in opts {
            out.extend_from_slice(&u16b(*code, self.big));
            out.extend_from_slice(&u16b(value.len() as u16, self.big));
            out.extend_from_slice(value);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }

    pub fn tsoffset(&self, seconds: i64) -> Vec<u8> {
        u64b(seconds as u64, self.big).to_vec()
    }

    pub fn interface(&mut self, link_type: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> u64 {
        let mut body = Vec::new();
        body.extend_from_slice(&u16b(link_type, self.big));
        body.extend_from_slice(&u16b(0, self.big));
        body.extend_from_slice(&u32b(snaplen, self.big));
        body.extend_from_slice(&self.options(opts));
        self.block(1, &body)
    }

    /// Enhanced packet block with a raw 64-bit timestamp; returns its offset.
    pub fn epb(&mut self, interface: u32, ticks: u64, data: &[u8], wire_len: u32) -> u64 {
        let body = self.packet_body(4, interface, ticks, data.len() as u32, data, wire_len);
        self.block(6, &body)
    }

    /// Enhanced packet block whose captured-length field may lie.
    pub fn epb_with_caplen(
        &mut self,
        interface: u32,
        ticks: u64,
        caplen: u32,
        data: &[u8],
        wire_len: u32,
    ) -> u64 {
        let body = self.packet_body(4, interface, ticks, caplen, data, wire_len);
        self.block(6, &body)
    }

    /// Obsolete packet block (type 2): 16-bit interface id and drop count.
    pub fn packet_block(&mut self, interface: u16, ticks: u64, data: &[u8], wire_len: u32) -> u64 {
        let body = self.packet_body(
            2,
            u32::from(interface),
            ticks,
            data.len() as u32,
            data,
            wire_len,
        );
        self.block(2, &body)
    }

    pub fn simple_packet(&mut self, data: &[u8], wire_len: u32) -> u64 {
        let mut body = Vec::new();
        body.extend_from_slice(&u32b(wire_len, self.big));
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        self.block(3, &body)
    }

    fn packet_body(
        &self,
        interface_width: usize,
        interface: u32,
        ticks: u64,
        caplen: u32,
        data: &[u8],
        wire_len: u32,
    ) -> Vec<u8> {
        let big = self.big;
        let mut body = Vec::new();
        if interface_width == 2 {
            body.extend_from_slice(&u16b(interface as u16, big));
            body.extend_from_slice(&u16b(0, big)); // drops
        } else {
            body.extend_from_slice(&u32b(interface, big));
        }
        body.extend_from_slice(&u32b((ticks >> 32) as u32, big));
        body.extend_from_slice(&u32b(ticks as u32, big));
        body.extend_from_slice(&u32b(caplen, big));
        body.extend_from_slice(&u32b(wire_len, big));
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        body
    }

    /// Any block: type, total length, body, total length. Returns its offset.
    pub fn block(&mut self, block_type: u32, body: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        let len = (body.len() + 12) as u32;
        let big = self.big;
        self.bytes.extend_from_slice(&u32b(block_type, big));
        self.bytes.extend_from_slice(&u32b(len, big));
        self.bytes.extend_from_slice(body);
        self.bytes.extend_from_slice(&u32b(len, big));
        offset
    }

    /// Writes raw bytes (for corrupt blocks).
    pub fn raw(&mut self, bytes: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        offset
    }

    pub fn u32(&self, v: u32) -> [u8; 4] {
        u32b(v, self.big)
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A file under the system temp directory that is removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("lvscheck-capture-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
