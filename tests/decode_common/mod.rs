//! Hand-built frames for the decode tests: every byte is written here, so expected values come
//! from these builders' arguments, not from the decoder.
#![allow(dead_code)]

pub const CLIENT: [u8; 4] = [172, 25, 254, 67];
pub const VIP: [u8; 4] = [172, 25, 67, 100];
pub const DIRECTOR: [u8; 4] = [172, 25, 67, 1];
pub const RS: [u8; 4] = [172, 25, 67, 2];
pub const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x01];
pub const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x02];

pub fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        let hi = u32::from(w[0]) << 8;
        let lo = w.get(1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[derive(Clone, Copy)]
pub struct V4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub id: u16,
    pub ttl: u8,
    pub df: bool,
    pub mf: bool,
    /// In bytes (multiple of 8).
    pub offset: u16,
}

impl V4 {
    pub fn new(src: [u8; 4], dst: [u8; 4], protocol: u8) -> V4 {
        V4 {
            src,
            dst,
            protocol,
            id: 0x1234,
            ttl: 64,
            df: false,
            mf: false,
            offset: 0,
        }
    }

    /// Header (with a correct checksum) followed by the payload.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut flags_offset = self.offset / 8;
        if self.df {
            flags_offset |= 0x4000;
        }
        if self.mf {
            flags_offset |= 0x2000;
        }
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&flags_offset.to_be_bytes());
        h.push(self.ttl);
        h.push(self.protocol);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(next);
    h.push(hop_limit);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

pub struct TcpSeg<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Already padded to a multiple of 4.
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl TcpSeg<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let mut t = Vec::new();
        t.extend_from_slice(&self.src_port.to_be_bytes());
        t.extend_from_slice(&self.dst_port.to_be_bytes());
        t.extend_from_slice(&self.seq.to_be_bytes());
        t.extend_from_slice(&self.ack.to_be_bytes());
        t.push((((20 + self.options.len()) / 4) as u8) << 4);
        t.push(self.flags);
        t.extend_from_slice(&self.window.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(self.options);
        t.extend_from_slice(self.payload);
        t
    }
}

/// Linux's SYN options: MSS 1460, SACK permitted, timestamps 1000/0, NOP, window scale 7.
pub const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, // MSS 1460
    4, 2, // SACK permitted
    8, 10, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, // TS val 1000, ecr 0
    1, // NOP
    3, 3, 7, // window scale 7
];

/// A client SYN to VIP:80 with Linux's options.
pub fn client_syn() -> Vec<u8> {
    TcpSeg {
        src_port: 40000,
        dst_port: 80,
        seq: 0x0102_0304,
        ack: 0,
        flags: 0x02,
        window: 64240,
        options: &LINUX_SYN_OPTIONS,
        payload: &[],
    }
    .bytes()
}

pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// The payload hash as docs/flows.md (pass 1, clock offsets) defines it, written out independently of the
/// crate's: the first 128 bytes as little-endian u64 words (the last zero-padded), starting from
/// their count, each `h = (h rotl 5 ^ w) * 0x517cc1b727220a95`; 0 for no bytes, never 0
/// otherwise.
pub fn fnv(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let covered = &bytes[..bytes.len().min(128)];
    let mut h = covered.len() as u64;
    let mut i = 0;
    while i < covered.len() {
        let mut w = 0u64;
        for (k, b) in covered[i..covered.len().min(i + 8)].iter().enumerate() {
            w |= u64::from(*b) << (8 * k);
        }
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        i += 8;
    }
    if h == 0 {
        1
    } else {
        h
    }
}

/// A frame as the capture layer hands it on: capture 0, interface 0, numbered by time.
pub fn frame(ts_ns: i64, link_type: u32, data: &[u8]) -> lvscheck::capture::frame::Frame<'_> {
    lvscheck::capture::frame::Frame {
        capture: 0,
        interface: 0,
        number: ts_ns.max(0) as u64 + 1,
        ts_ns,
        wire_len: data.len() as u32,
        link_type,
        data,
        offset: 0,
    }
}

/// Pushes one frame into the decoder and returns the packets it handed on (in order: those held
/// back before it, and itself unless it is held back).
pub fn push(
    d: &mut lvscheck::decode::Decoder,
    ts_ns: i64,
    link_type: u32,
    data: &[u8],
) -> Vec<lvscheck::decode::Packet> {
    let mut out = Vec::new();
    d.push(&frame(ts_ns, link_type, data), &mut |f, _| {
        out.push(f.packet.clone())
    });
    out
}

/// The packets a decoder still held, handed on at the end of the capture.
pub fn finish(d: &mut lvscheck::decode::Decoder) -> Vec<lvscheck::decode::Packet> {
    let mut out = Vec::new();
    d.finish(&mut |f, _| out.push(f.packet.clone()));
    out
}

/// Every frame through one decoder (frame i at time i µs), then the end of the capture: the
/// packets in capture order, one per frame.
pub fn decode_all(
    opts: &lvscheck::decode::DecodeOptions,
    link_type: u32,
    frames: &[&[u8]],
) -> Vec<lvscheck::decode::Packet> {
    let mut d = lvscheck::decode::Decoder::new(opts.clone());
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        out.extend(push(&mut d, i as i64 * 1000, link_type, f));
    }
    out.extend(finish(&mut d));
    assert_eq!(out.len(), frames.len(), "one packet per frame");
    out
}
