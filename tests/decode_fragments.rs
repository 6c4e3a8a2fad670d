//! IP fragments: flagged by the stateless decode, reassembled by the Decoder, and each datagram
//! counted once: on the frame that completes it, or, when it never completes, on its first
//! fragment.

mod decode_common;
use decode_common::*;

use lvscheck::decode::{
    decode, DecodeOptions, Decoder, IpPacket, LayerCounts, Packet, ReassemblyLimits, Transport,
};

/// A UDP datagram of 40 payload bytes, 48 with its header, cut into 24 + 16 + 8.
fn udp_datagram() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0u8..40).collect();
    (udp(5353, 53, &payload), payload)
}

fn v4_fragments(id: u16) -> Vec<Vec<u8>> {
    let (datagram, _) = udp_datagram();
    let cuts = [(0usize, 24usize, true), (24, 40, true), (40, 48, false)];
    cuts.iter()
        .map(|&(from, to, more)| {
            let mut h = V4::new(CLIENT, VIP, 17);
            h.id = id;
            h.mf = more;
            h.offset = from as u16;
            h.packet(&datagram[from..to])
        })
        .collect()
}

fn ip(p: &Packet) -> &IpPacket {
    p.ip().unwrap_or_else(|| panic!("no IP in {p:?}"))
}

#[test]
fn stateless_decode_flags_fragments() {
    let o = DecodeOptions::default();
    let frags = v4_fragments(7);
    let (_, payload) = udp_datagram();

    let first = decode(101, &frags[0], &o);
    let first = ip(&first);
    assert!(first.ip.more_fragments);
    assert_eq!(first.ip.fragment_offset, 0);
    assert_eq!(first.ip.id, 7);
    assert!(first.ip.is_fragment());
    let u = first
        .udp()
        .expect("a first fragment is decoded from what it has");
    assert_eq!((u.src_port, u.dst_port), (5353, 53));
    assert_eq!(u.payload_len, 40); // from the UDP length field
    assert_eq!(u.payload_hash, fnv(&payload[..16]));

    for (frag, offset) in frags[1..].iter().zip([24u16, 40]) {
        let p = decode(101, frag, &o);
        let p = ip(&p);
        assert_eq!(p.ip.fragment_offset, offset);
        assert_eq!(p.transport, Transport::Fragment);
    }
    let mut counts = LayerCounts::default();
    for f in &frags {
        counts.add(&decode(101, f, &o));
    }
    assert_eq!((counts.fragments, counts.udp, counts.ipv4), (3, 1, 3));
}

fn assert_whole(p: &Packet) {
    let (_, payload) = udp_datagram();
    let ip = ip(p);
    assert!(!ip.ip.is_fragment());
    assert_eq!(ip.ip.total_len, 20 + 48);
    assert_eq!(ip.ip.captured_len, 20 + 48);
    let u = ip.udp().expect("reassembled UDP");
    assert_eq!((u.src_port, u.dst_port, u.payload_len), (5353, 53, 40));
    assert_eq!(u.payload_hash, fnv(&payload));
}

#[test]
fn reassembly_in_order_and_out_of_order() {
    let frags = v4_fragments(9);
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
        let mut d = Decoder::new(DecodeOptions::default());
        let mut packets = Vec::new();
        for (i, &f) in order.iter().enumerate() {
            packets.extend(push(&mut d, i as i64 * 1000, 101, &frags[f]));
        }
        assert_eq!(
            packets.len(),
            3,
            "{order:?}: every frame handed on once complete"
        );
        for p in &packets[..2] {
            assert!(ip(p).ip.is_fragment(), "{order:?}: {p:?}");
            assert_eq!(ip(p).transport, Transport::Fragment, "{order:?}");
        }
        assert_whole(&packets[2]);
        assert_eq!(d.pending_datagrams(), 0);
        assert_eq!(d.held_frames(), 0);
        assert_eq!(d.reassembly_stats().completed, 1);
    }
}

#[test]
fn a_reassembled_datagram_counts_once() {
    let frags = v4_fragments(12);
    let frames: Vec<&[u8]> = frags.iter().map(|f| f.as_slice()).collect();
    let packets = decode_all(&DecodeOptions::default(), 101, &frames);
    let mut counts = LayerCounts::default();
    for p in &packets {
        counts.add(p);
    }
    // One UDP datagram in three frames: Wireshark with reassembly on shows ip:data twice and
    // ip:udp on the last frame.
    assert_eq!((counts.ipv4, counts.udp, counts.fragments), (3, 1, 2));
}

#[test]
fn the_first_fragment_waits_and_frames_keep_their_order() {
    let frags = v4_fragments(13);
    let other = V4::new(CLIENT, VIP, 17).packet(&udp(7000, 7001, b"between"));
    let mut d = Decoder::new(DecodeOptions::default());
    assert!(push(&mut d, 0, 101, &frags[0]).is_empty(), "held back");
    assert!(
        push(&mut d, 1, 101, &other).is_empty(),
        "behind the first fragment"
    );
    assert!(push(&mut d, 2, 101, &frags[1]).is_empty());
    assert_eq!(d.held_frames(), 3);
    let out = push(&mut d, 3, 101, &frags[2]);
    assert_eq!(out.len(), 4);
    assert_eq!(ip(&out[0]).transport, Transport::Fragment);
    assert_eq!(ip(&out[1]).udp().map(|u| u.dst_port), Some(7001));
    assert_eq!(ip(&out[2]).transport, Transport::Fragment);
    assert_whole(&out[3]);
    assert!(finish(&mut d).is_empty());
}

#[test]
fn a_datagram_never_completed_counts_on_its_first_fragment() {
    let frags = v4_fragments(14);
    let (_, payload) = udp_datagram();
    // The last fragment never came (a capture filter, a loss, the capture's end).
    let packets = decode_all(&DecodeOptions::default(), 101, &[&frags[0], &frags[1]]);
    let u = ip(&packets[0])
        .udp()
        .expect("the first fragment says what it has");
    assert_eq!((u.src_port, u.dst_port, u.payload_len), (5353, 53, 40));
    assert_eq!(u.payload_hash, fnv(&payload[..16]));
    assert_eq!(ip(&packets[1]).transport, Transport::Fragment);
    let mut counts = LayerCounts::default();
    for p in &packets {
        counts.add(p);
    }
    assert_eq!((counts.udp, counts.fragments), (1, 2));
}

#[test]
fn an_expired_datagram_releases_its_first_fragment() {
    let a = v4_fragments(15);
    let other = V4::new(CLIENT, VIP, 17).packet(&udp(7000, 7001, b"later"));
    let opts = DecodeOptions {
        reassembly: ReassemblyLimits {
            max_age_ns: 1_000,
            ..ReassemblyLimits::default()
        },
        ..DecodeOptions::default()
    };
    let mut d = Decoder::new(opts);
    assert!(push(&mut d, 0, 101, &a[0]).is_empty());
    assert!(push(&mut d, 500, 101, &other).is_empty());
    // 2 µs after the first fragment, older than the limit: any frame ages the table.
    let out = push(&mut d, 2_000, 101, &other);
    assert_eq!(out.len(), 3);
    assert_eq!(ip(&out[0]).udp().map(|u| u.dst_port), Some(53));
    assert_eq!(d.reassembly_stats().expired, 1);
    assert_eq!(d.held_frames(), 0);
}

#[test]
fn held_frames_are_bounded() {
    let a = v4_fragments(16);
    let other = V4::new(CLIENT, VIP, 17).packet(&udp(7000, 7001, b"x"));
    let opts = DecodeOptions {
        reassembly: ReassemblyLimits {
            max_held_frames: 3,
            ..ReassemblyLimits::default()
        },
        ..DecodeOptions::default()
    };
    let mut d = Decoder::new(opts);
    let mut out = push(&mut d, 0, 101, &a[0]);
    for ts in 1..3 {
        out.extend(push(&mut d, ts, 101, &other));
    }
    assert!(out.is_empty());
    // The fourth frame held would pass the bound: the datagram is evicted, its first fragment
    // counts on its own, and the rest of it can no longer complete it.
    let out = push(&mut d, 3, 101, &other);
    assert_eq!(out.len(), 4);
    assert!(ip(&out[0]).udp().is_some());
    assert_eq!(d.reassembly_stats().evicted, 1);
    assert_eq!(push(&mut d, 4, 101, &a[1]).len(), 1);
    let last = push(&mut d, 5, 101, &a[2]);
    assert_eq!(ip(&last[0]).transport, Transport::Fragment);
    assert_eq!(d.reassembly_stats().completed, 0);
}

#[test]
fn a_contradicted_datagram_releases_its_first_fragment() {
    let a = v4_fragments(17);
    let mut d = Decoder::new(DecodeOptions::default());
    assert!(push(&mut d, 0, 101, &a[0]).is_empty());
    assert!(push(&mut d, 1, 101, &a[2]).is_empty());
    // Another last fragment, ending elsewhere: the table drops the datagram.
    let mut h = V4::new(CLIENT, VIP, 17);
    h.id = 17;
    h.offset = 40;
    let other_end = h.packet(&[0u8; 16]);
    let out = push(&mut d, 2, 101, &other_end);
    assert_eq!(out.len(), 3);
    assert!(ip(&out[0]).udp().is_some());
    assert!(matches!(ip(&out[2]).transport, Transport::Malformed { .. }));
    assert_eq!(d.reassembly_stats().rejected, 1);
}

#[test]
fn duplicate_fragment_does_not_break_reassembly() {
    let frags = v4_fragments(11);
    let packets = decode_all(
        &DecodeOptions::default(),
        101,
        &[&frags[0], &frags[0], &frags[1], &frags[2]],
    );
    // Both copies of the first fragment are pieces of the datagram the last frame carries.
    assert_eq!(ip(&packets[0]).transport, Transport::Fragment);
    assert_eq!(ip(&packets[1]).transport, Transport::Fragment);
    assert_whole(&packets[3]);
}

#[test]
fn eviction_and_age_limits() {
    let a = v4_fragments(1);
    let b = v4_fragments(2);
    let opts = DecodeOptions {
        reassembly: ReassemblyLimits {
            max_datagrams: 1,
            ..ReassemblyLimits::default()
        },
        ..DecodeOptions::default()
    };
    let packets = decode_all(&opts, 101, &[&a[0], &b[0], &b[1], &b[2], &a[1], &a[2]]);
    // Datagram 2 evicted datagram 1, whose first fragment then counts on its own.
    assert!(ip(&packets[0]).udp().is_some());
    assert_eq!(ip(&packets[1]).transport, Transport::Fragment);
    assert_whole(&packets[3]);
    // Datagram 1 lost its first fragment: its last ones stay fragments.
    assert_eq!(ip(&packets[4]).transport, Transport::Fragment);
    assert_eq!(ip(&packets[5]).transport, Transport::Fragment);

    let opts = DecodeOptions {
        reassembly: ReassemblyLimits {
            max_age_ns: 1_000_000_000,
            ..ReassemblyLimits::default()
        },
        ..DecodeOptions::default()
    };
    let mut d = Decoder::new(opts);
    push(&mut d, 0, 101, &a[0]);
    push(&mut d, 500_000_000, 101, &a[1]);
    // 2 s after the first fragment: it has expired.
    let out = push(&mut d, 2_000_000_000, 101, &a[2]);
    assert_eq!(out.len(), 3);
    assert!(ip(&out[0]).udp().is_some());
    assert_eq!(ip(&out[2]).transport, Transport::Fragment);
    assert_eq!(d.reassembly_stats().expired, 1);
    assert_eq!(d.reassembly_stats().completed, 0);
}

#[test]
fn first_fragment_too_short_for_tcp() {
    let syn = client_syn();
    let mut h = V4::new(CLIENT, VIP, 6);
    h.mf = true;
    let p = decode(101, &h.packet(&syn[..8]), &DecodeOptions::default());
    assert_eq!(ip(&p).transport, Transport::Fragment);
}

fn v6_fragment(id: u32, offset: u16, more: bool, next: u8, data: &[u8]) -> Vec<u8> {
    let mut frag = vec![next, 0];
    frag.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    frag.extend_from_slice(&id.to_be_bytes());
    frag.extend_from_slice(data);
    ipv6(v6(1), v6(100), 44, 64, &frag)
}

#[test]
fn ipv6_fragments_reassemble() {
    let payload: Vec<u8> = (0..100u8).collect();
    let seg = TcpSeg {
        src_port: 40000,
        dst_port: 80,
        seq: 77,
        ack: 88,
        flags: 0x18,
        window: 500,
        options: &[],
        payload: &payload,
    }
    .bytes(); // 120 bytes
    let f1 = v6_fragment(0xabcd, 0, true, 6, &seg[..64]);
    let f2 = v6_fragment(0xabcd, 64, false, 6, &seg[64..]);
    // The same segment cut at 24 and 56 bytes: offsets that are not multiples of 16.
    let g1 = v6_fragment(0x5678, 0, true, 6, &seg[..24]);
    let g2 = v6_fragment(0x5678, 24, true, 6, &seg[24..56]);
    let g3 = v6_fragment(0x5678, 56, false, 6, &seg[56..]);
    assert_eq!(
        ip(&decode(101, &g2, &DecodeOptions::default()))
            .ip
            .fragment_offset,
        24
    );
    let p = decode_all(&DecodeOptions::default(), 101, &[&g3, &g1, &g2]);
    assert_eq!(ip(&p[2]).tcp().unwrap().payload_hash, fnv(&payload));
    assert_eq!(ip(&p[1]).transport, Transport::Fragment);

    let p = decode(101, &f1, &DecodeOptions::default());
    let first = ip(&p);
    assert_eq!(
        (
            first.ip.id,
            first.ip.fragment_offset,
            first.ip.more_fragments
        ),
        (0xabcd, 0, true)
    );
    assert_eq!(first.ip.protocol, 6);
    let t = first.tcp().unwrap();
    assert_eq!((t.seq, t.ack), (77, 88));
    assert_eq!(t.payload_hash, fnv(&payload[..44]));
    let p = decode(101, &f2, &DecodeOptions::default());
    assert_eq!(ip(&p).ip.fragment_offset, 64);
    assert_eq!(ip(&p).transport, Transport::Fragment);

    let p = decode_all(&DecodeOptions::default(), 101, &[&f2, &f1]);
    let whole = ip(&p[1]);
    assert!(!whole.ip.is_fragment());
    assert_eq!(whole.ip.total_len, 40 + 8 + 120);
    let t = whole.tcp().unwrap();
    assert_eq!(t.payload_len, 100);
    assert_eq!(t.payload_hash, fnv(&payload));
}

#[test]
fn fragments_inside_an_ipip_tunnel_reassemble() {
    let mut outer = V4::new(DIRECTOR, RS, 4);
    outer.df = true;
    outer.id = 0;
    let frames: Vec<Vec<u8>> = v4_fragments(3).iter().map(|f| outer.packet(f)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let p = decode_all(&DecodeOptions::default(), 101, &refs);
    let (_, inner) = ip(&p[2]).tunnel().expect("tunnel");
    assert!(!inner.ip.is_fragment());
    assert_eq!(inner.udp().unwrap().payload_len, 40);
    // The first frame's tunnel stays (its outer header is whole); inside, a piece.
    let (_, first) = ip(&p[0]).tunnel().expect("tunnel");
    assert_eq!(first.transport, Transport::Fragment);
    let mut counts = LayerCounts::default();
    for p in &p {
        counts.add(p);
    }
    assert_eq!(
        (counts.tunnels.ipip, counts.udp, counts.fragments),
        (3, 1, 2)
    );
}

/// An IPIP packet whose outer header was fragmented (the director's tunnel exceeded the MTU):
/// the inner packet is in the reassembled outer datagram only.
#[test]
fn an_outer_fragmented_tunnel_counts_once() {
    let inner = V4::new(CLIENT, VIP, 17).packet(&udp(40000, 53, &[7u8; 60]));
    let mut h = V4::new(DIRECTOR, RS, 4);
    h.id = 99;
    h.mf = true;
    let first = h.packet(&inner[..48]);
    h.mf = false;
    h.offset = 48;
    let last = h.packet(&inner[48..]);
    let p = decode_all(&DecodeOptions::default(), 101, &[&first, &last]);
    assert_eq!(ip(&p[0]).transport, Transport::Fragment);
    let (_, whole) = ip(&p[1])
        .tunnel()
        .expect("the reassembled datagram is a tunnel");
    assert_eq!(whole.udp().map(|u| u.payload_len), Some(60));
    let mut counts = LayerCounts::default();
    for p in &p {
        counts.add(p);
    }
    assert_eq!(
        (
            counts.ipv4,
            counts.tunnels.ipip,
            counts.udp,
            counts.fragments
        ),
        (2, 1, 1, 1)
    );
    // Without the last fragment, the first one is the only trace: decoded as far as it goes.
    let p = decode_all(&DecodeOptions::default(), 101, &[&first]);
    assert!(ip(&p[0]).tunnel().is_some());
}

#[test]
fn truncated_fragments_are_not_reassembled() {
    let frags = v4_fragments(5);
    let mut d = Decoder::new(DecodeOptions::default());
    push(&mut d, 0, 101, &frags[0]);
    // The middle fragment cut by the snap length cannot fill its range.
    push(&mut d, 1, 101, &frags[1][..30]);
    let out = push(&mut d, 2, 101, &frags[2]);
    assert!(out.is_empty(), "the first fragment still waits");
    assert_eq!(d.pending_datagrams(), 1);
    let rest = finish(&mut d);
    assert_eq!(rest.len(), 3);
    assert!(ip(&rest[0]).udp().is_some(), "never completed: decoded");
    assert_eq!(ip(&rest[2]).transport, Transport::Fragment);
}
