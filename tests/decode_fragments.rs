//! IP fragments: flagged by the stateless decode, reassembled by the Decoder.

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
        let packets: Vec<Packet> = order
            .iter()
            .enumerate()
            .map(|(i, &f)| d.decode(i as i64 * 1000, 101, &frags[f]))
            .collect();
        for p in &packets[..2] {
            assert!(ip(p).ip.is_fragment(), "{order:?}: {p:?}");
        }
        assert_whole(&packets[2]);
        assert_eq!(d.pending_datagrams(), 0);
        assert_eq!(d.reassembly_stats().completed, 1);
    }
}

#[test]
fn duplicate_fragment_does_not_break_reassembly() {
    let frags = v4_fragments(11);
    let mut d = Decoder::new(DecodeOptions::default());
    d.decode(0, 101, &frags[0]);
    d.decode(1, 101, &frags[0]);
    d.decode(2, 101, &frags[1]);
    assert_whole(&d.decode(3, 101, &frags[2]));
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
    let mut d = Decoder::new(opts);
    d.decode(0, 101, &a[0]);
    d.decode(1, 101, &b[0]); // evicts datagram 1
    assert_eq!(d.reassembly_stats().evicted, 1);
    d.decode(2, 101, &b[1]);
    assert_whole(&d.decode(3, 101, &b[2]));
    // Datagram 1 lost its first fragment: its last ones stay fragments.
    assert_eq!(ip(&d.decode(4, 101, &a[1])).transport, Transport::Fragment);
    assert_eq!(ip(&d.decode(5, 101, &a[2])).transport, Transport::Fragment);

    let opts = DecodeOptions {
        reassembly: ReassemblyLimits {
            max_age_ns: 1_000_000_000,
            ..ReassemblyLimits::default()
        },
        ..DecodeOptions::default()
    };
    let mut d = Decoder::new(opts);
    d.decode(0, 101, &a[0]);
    d.decode(500_000_000, 101, &a[1]);
    // 2 s after the first fragment: it has expired.
    assert_eq!(
        ip(&d.decode(2_000_000_000, 101, &a[2])).transport,
        Transport::Fragment
    );
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
    let mut d = Decoder::new(DecodeOptions::default());
    d.decode(0, 101, &g3);
    d.decode(1, 101, &g1);
    let p = d.decode(2, 101, &g2);
    assert_eq!(ip(&p).tcp().unwrap().payload_hash, fnv(&payload));

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

    let mut d = Decoder::new(DecodeOptions::default());
    d.decode(0, 101, &f2);
    let p = d.decode(1, 101, &f1);
    let whole = ip(&p);
    assert!(!whole.ip.is_fragment());
    assert_eq!(whole.ip.total_len, 40 + 8 + 120);
    let t = whole.tcp().unwrap();
    assert_eq!(t.payload_len, 100);
    assert_eq!(t.payload_hash, fnv(&payload));
}

#[test]
fn fragments_inside_an_ipip_tunnel_reassemble() {
    let mut d = Decoder::new(DecodeOptions::default());
    let mut outer = V4::new(DIRECTOR, RS, 4);
    outer.df = true;
    outer.id = 0;
    let frames: Vec<Vec<u8>> = v4_fragments(3).iter().map(|f| outer.packet(f)).collect();
    d.decode(0, 101, &frames[0]);
    d.decode(1, 101, &frames[1]);
    let p = d.decode(2, 101, &frames[2]);
    let (_, inner) = ip(&p).tunnel().expect("tunnel");
    assert!(!inner.ip.is_fragment());
    assert_eq!(inner.udp().unwrap().payload_len, 40);
}

#[test]
fn truncated_fragments_are_not_reassembled() {
    let frags = v4_fragments(5);
    let mut d = Decoder::new(DecodeOptions::default());
    d.decode(0, 101, &frags[0]);
    // The middle fragment cut by the snap length cannot fill its range.
    d.decode(1, 101, &frags[1][..30]);
    assert_eq!(
        ip(&d.decode(2, 101, &frags[2])).transport,
        Transport::Fragment
    );
    assert_eq!(d.pending_datagrams(), 1);
}
