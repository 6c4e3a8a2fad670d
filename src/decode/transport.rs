//! TCP and UDP headers, read field by field at fixed offsets rather than through etherparse's
//! slices: those refuse a header that is not whole, while a packet quoted in an ICMP error
//! carries only the first 8 bytes of its transport header, and a snap-length cut can end inside
//! the TCP options. Options are walked by their length bytes, so an option we do not know
//! (MPTCP, TCP-AO, fast open) is skipped instead of ending the walk.

use super::defect::Defect;
use super::ip::{Body, Mode};
use super::packet::{Sctp, Tcp, Transport, Udp};
use super::{be16, be32, payload_hash, tunnel, Ctx};

mod tcp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const MIN_LEN: usize = 20;
    /// What an ICMP error quotes of it (RFC 792: 64 bits of the original datagram).
    pub const QUOTED_MIN_LEN: usize = 8;

    pub const OPT_END: u8 = 0;
    pub const OPT_NOP: u8 = 1;
    pub const OPT_MSS: u8 = 2;
    pub const OPT_WINDOW_SCALE: u8 = 3;
    pub const OPT_SACK_PERMITTED: u8 = 4;
    pub const OPT_TIMESTAMP: u8 = 8;
}

mod udp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const LEN: usize = 8;
}

/// Decodes a TCP header into `out` (in place, as [`super::ip::decode_ip`] says why).
pub(crate) fn decode_tcp(body: &Body, mode: Mode, out: &mut Transport) {
    let b = body.bytes;
    let (min_len, what) = match mode {
        Mode::Quoted => (tcp::QUOTED_MIN_LEN, "quoted TCP header"),
        _ => (tcp::MIN_LEN, "TCP header"),
    };
    if b.len() < min_len {
        *out = Transport::Malformed {
            reason: Defect::CutShort {
                what,
                have: b.len(),
                need: min_len,
            },
        };
        return;
    }
    // Quoted headers may lack the data offset; assume no options then.
    let header_len = b
        .get(tcp::DATA_OFFSET)
        .map_or(tcp::MIN_LEN, |&x| usize::from(x >> 4) * 4);
    if header_len < tcp::MIN_LEN {
        *out = Transport::Malformed {
            reason: Defect::TcpDataOffset(header_len),
        };
        return;
    }
    *out = Transport::Tcp(Tcp {
        src_port: be16(b, tcp::SRC_PORT).unwrap_or(0),
        dst_port: be16(b, tcp::DST_PORT).unwrap_or(0),
        seq: be32(b, tcp::SEQ).unwrap_or(0),
        ack: be32(b, tcp::ACK).unwrap_or(0),
        flags: b.get(tcp::FLAGS).copied().unwrap_or(0),
        window: be16(b, tcp::WINDOW).unwrap_or(0),
        mss: None,
        window_scale: None,
        sack_permitted: false,
        timestamp: None,
        payload_len: body.declared_len.saturating_sub(header_len) as u32,
        payload_hash: payload_hash(b.get(header_len..).unwrap_or(&[])),
    });
    if let Transport::Tcp(segment) = out {
        let options = b.get(tcp::MIN_LEN..header_len.min(b.len())).unwrap_or(&[]);
        read_options(options, segment);
    }
}

/// Walks the options present; stops at the end-of-options mark or at one cut short.
fn read_options(mut options: &[u8], segment: &mut Tcp) {
    while let Some(&kind) = options.first() {
        match kind {
            tcp::OPT_END => return,
            tcp::OPT_NOP => {
                options = &options[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = options.get(1) else { return };
        let len = usize::from(len);
        if len < 2 {
            return;
        }
        let Some(option) = options.get(..len) else {
            return;
        };
        match (kind, len) {
            (tcp::OPT_MSS, 4) => segment.mss = be16(option, 2),
            (tcp::OPT_WINDOW_SCALE, 3) => segment.window_scale = Some(option[2]),
            (tcp::OPT_SACK_PERMITTED, 2) => segment.sack_permitted = true,
            (tcp::OPT_TIMESTAMP, 10) => {
                segment.timestamp = be32(option, 2).zip(be32(option, 6));
            }
            _ => {}
        }
        options = &options[len..];
    }
}

/// Decodes a UDP header, or the GUE tunnel it carries, into `out`.
pub(crate) fn decode_udp(body: &Body, depth: u8, ctx: &mut Ctx, mode: Mode, out: &mut Transport) {
    let b = body.bytes;
    if b.len() < udp::LEN {
        *out = header_cut(mode, ["UDP header", "quoted UDP header"], b.len(), udp::LEN);
        return;
    }
    let length = usize::from(be16(b, udp::LENGTH).unwrap_or(0));
    // A length below the header (0 in jumbograms and TSO captures) says nothing: use IP's.
    let payload_len = if length >= udp::LEN {
        length - udp::LEN
    } else {
        body.declared_len.saturating_sub(udp::LEN)
    };
    let payload = &b[udp::LEN..b.len().min(udp::LEN.saturating_add(payload_len))];
    let datagram = Udp {
        src_port: be16(b, udp::SRC_PORT).unwrap_or(0),
        dst_port: be16(b, udp::DST_PORT).unwrap_or(0),
        payload_len: payload_len as u32,
        payload_hash: payload_hash(payload),
    };
    let opts = ctx.opts;
    if opts.is_gue(body.src(), datagram.dst_port) {
        if tunnel::decode_gue(datagram, payload, depth, ctx, out) {
            return;
        }
    } else if datagram.dst_port == super::ipvs_sync::SYNC_PORT && depth == 0 && !ctx.quoted {
        // Whatever the group (`--mcast-group`), port 8848 carrying a version 1 header is the
        // sync daemon's.
        if let Some(v) = super::ipvs_sync::SyncView::parse(payload) {
            let mut summary = ctx.boxes.take_sync();
            v.write_summary(&mut summary);
            ctx.control = Some(super::Control::IpvsSync(summary));
        }
    } else if opts.gue_probe && depth == 0 && mode == Mode::Normal {
        // Only the outermost datagram: IPVS puts GUE right on the director's packet. A first
        // fragment is not probed: its datagram, once whole, is.
        ctx.gue_shaped = tunnel::gue_shaped(payload, payload_len, ctx);
    }
    *out = Transport::Udp(datagram);
}

/// Decodes SCTP's 12-byte common header (ports, verification tag, checksum) and notes the
/// first chunk's type. The checksum (CRC32c) is not verified, as no other checksum is.
pub(crate) fn decode_sctp(body: &Body, mode: Mode, out: &mut Transport) {
    const LEN: usize = 12;
    let b = body.bytes;
    if b.len() < LEN {
        *out = header_cut(mode, ["SCTP header", "quoted SCTP header"], b.len(), LEN);
        return;
    }
    let chunks = &b[LEN..];
    *out = Transport::Sctp(Sctp {
        src_port: be16(b, 0).unwrap_or(0),
        dst_port: be16(b, 2).unwrap_or(0),
        verification_tag: be32(b, 4).unwrap_or(0),
        first_chunk: chunks.first().copied(),
        payload_len: body.declared_len.saturating_sub(LEN) as u32,
        payload_hash: payload_hash(chunks),
    });
}

/// A transport header cut short: `what[0]` in a packet, `what[1]` quoted in an ICMP error.
fn header_cut(mode: Mode, what: [&'static str; 2], have: usize, need: usize) -> Transport {
    let what = if mode == Mode::Quoted {
        what[1]
    } else {
        what[0]
    };
    Transport::Malformed {
        reason: Defect::CutShort { what, have, need },
    }
}
