//! TCP header fields and options, UDP lengths, payload hashes.

mod decode_common;
use decode_common::*;

use lvscheck::decode::packet::Sctp;
use lvscheck::decode::{decode, DecodeOptions, Tcp, Transport};

fn tcp_of(frame: &[u8]) -> Tcp {
    let p = decode(101, frame, &DecodeOptions::default());
    *p.ip().expect("IP").tcp().unwrap_or_else(|| panic!("{p:?}"))
}

#[test]
fn syn_options_as_linux_sends_them() {
    let t = tcp_of(&V4::new(CLIENT, VIP, 6).packet(&client_syn()));
    assert_eq!(t.flags, Tcp::SYN);
    assert!(t.has(Tcp::SYN) && !t.has(Tcp::ACK));
    assert_eq!(t.window, 64240);
    assert_eq!(t.mss, Some(1460));
    assert_eq!(t.window_scale, Some(7));
    assert!(t.sack_permitted);
    assert_eq!(t.timestamp, Some((1000, 0)));
    assert_eq!((t.payload_len, t.payload_hash), (0, 0));
}

#[test]
fn unknown_options_are_skipped_and_end_stops() {
    // MPTCP-like option (kind 30, len 4), then MSS; END then a window scale that must be ignored.
    let options = [30, 4, 0xaa, 0xbb, 2, 4, 0x02, 0x18, 0, 3, 3, 9];
    let seg = TcpSeg {
        src_port: 1,
        dst_port: 2,
        seq: 3,
        ack: 4,
        flags: 0x12,
        window: 5,
        options: &options,
        payload: b"hello",
    }
    .bytes();
    let t = tcp_of(&V4::new(CLIENT, VIP, 6).packet(&seg));
    assert_eq!(t.mss, Some(0x0218));
    assert_eq!(t.window_scale, None);
    assert!(!t.sack_permitted);
    assert_eq!(t.flags, Tcp::SYN | Tcp::ACK);
    assert_eq!(t.payload_len, 5);
    assert_eq!(t.payload_hash, fnv(b"hello"));

    // An option whose length runs past the header, and a zero length: no loop, no panic.
    for options in [[2u8, 40, 0, 0], [8, 0, 1, 1]] {
        let seg = TcpSeg {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: 0x10,
            window: 5,
            options: &options,
            payload: &[],
        }
        .bytes();
        let t = tcp_of(&V4::new(CLIENT, VIP, 6).packet(&seg));
        assert_eq!((t.mss, t.timestamp), (None, None));
    }
}

#[test]
fn payload_length_comes_from_ip_lengths_not_the_capture() {
    let payload = vec![7u8; 1000];
    let seg = TcpSeg {
        src_port: 80,
        dst_port: 40000,
        seq: 1,
        ack: 2,
        flags: 0x18,
        window: 5,
        options: &[],
        payload: &payload,
    }
    .bytes();
    let packet = V4::new(VIP, CLIENT, 6).packet(&seg);
    // Snap length 96: 20 IP + 20 TCP + 56 payload bytes captured.
    let t = tcp_of(&packet[..96]);
    assert_eq!(t.payload_len, 1000);
    assert_eq!(t.payload_hash, fnv(&payload[..56]));
    let p = decode(101, &packet[..96], &DecodeOptions::default());
    let ip = p.ip().unwrap();
    assert_eq!((ip.ip.total_len, ip.ip.captured_len), (1040, 96));
}

#[test]
fn tso_capture_with_zero_total_length() {
    // Linux captures of TSO segments may carry IP total length 0.
    let seg = TcpSeg {
        src_port: 80,
        dst_port: 40000,
        seq: 1,
        ack: 2,
        flags: 0x10,
        window: 5,
        options: &[],
        payload: &[1, 2, 3],
    }
    .bytes();
    let mut packet = V4::new(VIP, CLIENT, 6).packet(&seg);
    packet[2] = 0;
    packet[3] = 0;
    let t = tcp_of(&packet);
    assert_eq!(t.payload_len, 3);
    assert_eq!(t.payload_hash, fnv(&[1, 2, 3]));
}

#[test]
fn bad_data_offset_is_malformed() {
    let mut seg = client_syn();
    seg[12] = 0x40; // 16 bytes
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 6).packet(&seg),
        &DecodeOptions::default(),
    );
    match &p.ip().unwrap().transport {
        Transport::Malformed { reason } => {
            assert_eq!(reason.to_string(), "TCP data offset 16 bytes, below 20")
        }
        t => panic!("{t:?}"),
    }
}

#[test]
fn udp_lengths_and_hash() {
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 17).packet(&udp(5000, 53, b"abc")),
        &DecodeOptions::default(),
    );
    let u = p.ip().unwrap().udp().copied().unwrap();
    assert_eq!((u.src_port, u.dst_port, u.payload_len), (5000, 53, 3));
    assert_eq!(u.payload_hash, fnv(b"abc"));
    // UDP length 0 (as in jumbograms): fall back to the IP length.
    let mut d = udp(5000, 53, b"abcd");
    d[4] = 0;
    d[5] = 0;
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 17).packet(&d),
        &DecodeOptions::default(),
    );
    assert_eq!(p.ip().unwrap().udp().unwrap().payload_len, 4);
}

#[test]
fn other_ip_protocols() {
    // DCCP (33) is not decoded (SCTP is, below).
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 33).packet(&[0; 12]),
        &DecodeOptions::default(),
    );
    assert_eq!(p.ip().unwrap().transport, Transport::Other);
    assert_eq!(p.ip().unwrap().ip.protocol, 33);
}

/// SCTP's common header and first chunk, as the client's INIT in fixtures/sctp-healthy
/// (tshark on client.pcap frame 3: ports 46863 -> 9000, verification tag 0, chunk type 1).
#[test]
fn sctp_common_header_and_first_chunk() {
    let mut sctp = Vec::new();
    sctp.extend_from_slice(&46863u16.to_be_bytes());
    sctp.extend_from_slice(&9000u16.to_be_bytes());
    sctp.extend_from_slice(&0u32.to_be_bytes()); // verification tag: 0 in an INIT
    sctp.extend_from_slice(&0u32.to_be_bytes()); // CRC32c, not verified
                                                 // INIT: type 1, flags 0, length 20, initiate tag, a_rwnd, streams, initial TSN.
    sctp.extend_from_slice(&[1, 0, 0, 20]);
    sctp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    sctp.extend_from_slice(&106_496u32.to_be_bytes());
    sctp.extend_from_slice(&[0, 10, 0xff, 0xff]);
    sctp.extend_from_slice(&1u32.to_be_bytes());
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 132).packet(&sctp),
        &DecodeOptions::default(),
    );
    let ip = p.ip().expect("IP");
    let Transport::Sctp(s) = ip.transport else {
        panic!("{p:?}");
    };
    assert_eq!((s.src_port, s.dst_port), (46863, 9000));
    assert_eq!(s.verification_tag, 0);
    assert_eq!(s.first_chunk, Some(Sctp::INIT));
    assert_eq!(s.payload_len, 20);
    assert_eq!(s.payload_hash, fnv(&sctp[12..]));
    // Shorter than the common header: cut short, not a guess.
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 132).packet(&sctp[..8]),
        &DecodeOptions::default(),
    );
    assert!(
        matches!(p.ip().unwrap().transport, Transport::Malformed { .. }),
        "{p:?}"
    );
}
