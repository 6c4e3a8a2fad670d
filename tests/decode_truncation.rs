//! Every prefix of good frames: never a panic, and each cut reported at the layer it falls in.

mod decode_common;
use decode_common::*;

use lvscheck::decode::{decode, DecodeOptions, Decoder, Net, Packet, Transport};

fn reason(p: &Packet) -> String {
    match &p.net {
        Net::Malformed { reason } => reason.to_string(),
        Net::Ip(ip) => match &ip.transport {
            Transport::Malformed { reason } => reason.to_string(),
            t => panic!("expected a malformed layer, got {t:?}"),
        },
        other => panic!("expected a malformed layer, got {other:?}"),
    }
}

#[test]
fn ethernet_vlan_ipv4_tcp_cut_at_every_length() {
    let payload = b"GET / HTTP/1.1\r\n";
    let seg = TcpSeg {
        src_port: 40000,
        dst_port: 80,
        seq: 10,
        ack: 20,
        flags: 0x18,
        window: 502,
        options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        payload,
    }
    .bytes();
    let ip = V4::new(CLIENT, VIP, 6).packet(&seg);
    let tagged = [&[0u8, 10, 0x08, 0x00][..], &ip].concat();
    let frame = ethernet(MAC_A, MAC_B, 0x8100, &tagged);
    let o = DecodeOptions::default();
    let (eth, vlan, ip_h, tcp_h) = (14, 18, 38, 70);
    for len in 0..=frame.len() {
        let p = decode(1, &frame[..len], &o);
        if len < eth {
            assert_eq!(
                reason(&p),
                format!("Ethernet header cut short: {len} of 14 bytes")
            );
        } else if len < vlan {
            assert_eq!(
                reason(&p),
                format!("VLAN tag cut short: {} of 4 bytes", len - eth)
            );
        } else if len == vlan {
            assert_eq!(reason(&p), "IP header missing: 0 bytes");
        } else if len < ip_h {
            assert_eq!(
                reason(&p),
                format!("IPv4 header cut short: {} of 20 bytes", len - vlan)
            );
        } else {
            let ipp = p.ip().expect("IP");
            assert_eq!(ipp.ip.total_len as usize, ip.len());
            assert_eq!(ipp.ip.captured_len as usize, len - vlan);
            if len < ip_h + 20 {
                assert_eq!(
                    reason(&p),
                    format!("TCP header cut short: {} of 20 bytes", len - ip_h)
                );
            } else {
                let t = ipp.tcp().expect("TCP");
                assert_eq!(
                    (t.seq, t.ack, t.payload_len),
                    (10, 20, payload.len() as u32)
                );
                // The timestamp option ends at byte 70 of the frame.
                let ts_end = ip_h + 20 + 12;
                assert_eq!(t.timestamp.is_some(), len >= ts_end);
                let captured = len.saturating_sub(tcp_h);
                assert_eq!(t.payload_hash, fnv(&payload[..captured]));
            }
        }
    }
}

fn all_prefixes(link_type: u32, frame: &[u8], opts: &DecodeOptions) {
    let mut decoder = Decoder::new(opts.clone());
    let full = decode(link_type, frame, opts);
    for len in 0..=frame.len() {
        let p = decode(link_type, &frame[..len], opts);
        let q = push(&mut decoder, len as i64, link_type, &frame[..len]);
        assert_eq!(q.len(), 1, "a non-fragment is handed on at once");
        let q = &q[0];
        assert_eq!(
            &p, q,
            "stateless and stateful differ on a non-fragment at {len}"
        );
        // Once the outer IP header is there, its addresses are those of the whole frame.
        if let (Some(ip), Some(full_ip)) = (p.ip(), full.ip()) {
            assert_eq!((ip.ip.src, ip.ip.dst), (full_ip.ip.src, full_ip.ip.dst));
            assert!(ip.ip.captured_len <= full_ip.ip.captured_len);
        }
    }
}

#[test]
fn tunnels_and_quotes_cut_at_every_length() {
    let inner = V4::new(CLIENT, VIP, 6).packet(&client_syn());
    let gue_opts = DecodeOptions {
        gue_ports: vec![5555],
        ..DecodeOptions::default()
    };
    let ipip = V4::new(DIRECTOR, RS, 4).packet(&inner);
    all_prefixes(1, &ethernet(MAC_A, MAC_B, 0x0800, &ipip), &gue_opts);
    let gre = V4::new(DIRECTOR, RS, 47)
        .packet(&[&[0x20, 0, 0x08, 0][..], &[0, 0, 0, 1], &inner].concat());
    all_prefixes(101, &gre, &gue_opts);
    let gue = V4::new(DIRECTOR, RS, 17).packet(&udp(
        1,
        5555,
        &[&[0x01, 4, 0, 0, 9, 9, 9, 9][..], &inner].concat(),
    ));
    all_prefixes(101, &gue, &gue_opts);
    let six = ipv6(v6(1), v6(2), 4, 64, &inner);
    all_prefixes(229, &six, &gue_opts);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xc8];
    icmp.extend_from_slice(&ipip);
    all_prefixes(
        0,
        &[
            &2u32.to_le_bytes()[..],
            &V4::new(RS, DIRECTOR, 1).packet(&icmp),
        ]
        .concat(),
        &gue_opts,
    );
    let mut icmp6 = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    icmp6.extend_from_slice(&six);
    all_prefixes(229, &ipv6(v6(2), v6(1), 58, 64, &icmp6), &gue_opts);
    // IPv6 with hop-by-hop and destination options before UDP.
    let exts = [
        &[60u8, 0, 1, 4, 0, 0, 0, 0][..],
        &[17, 0, 1, 4, 0, 0, 0, 0],
        &udp(1, 2, b"x"),
    ]
    .concat();
    let hbh = ipv6(v6(1), v6(2), 0, 64, &exts);
    all_prefixes(229, &hbh, &gue_opts);
    let full = decode(229, &hbh, &gue_opts);
    assert_eq!(full.ip().unwrap().ip.protocol, 17);
    assert_eq!(full.ip().unwrap().udp().unwrap().payload_len, 1);
    let cut = decode(229, &hbh[..44], &gue_opts);
    assert_eq!(
        reason(&cut),
        "IPv6 hop-by-hop option header cut short: 4 of 8 bytes"
    );
    // ARP in SLL2.
    let mut sll2 = vec![0x08, 0x06, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
    sll2.extend_from_slice(&MAC_A);
    sll2.extend_from_slice(&[0, 0]);
    sll2.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    sll2.extend_from_slice(&[0; 20]);
    all_prefixes(276, &sll2, &gue_opts);
}

/// What `capture.snaplen` counts (topology::facts::PacketCounts): an IP-in-IP frame cut at any
/// length is a cut tunnelled frame as long as its outer IP header is whole and the fixed 20
/// bytes of the inner TCP header (ports, sequence numbers, flags) are not; a plain frame, when
/// its own fixed TCP header is not whole. Options cut short are read as far as they go (the
/// decoder's rule), so they do not count. Lengths from the construction: Ethernet 14, outer
/// IPv4 20, inner IPv4 20, TCP 20 + 20 bytes of options.
#[test]
fn frames_cut_before_the_headers_are_counted_tunnelled_or_not() {
    use lvscheck::decode::packet::DecodedFrame;
    use lvscheck::topology::facts::VantageFacts;
    use lvscheck::topology::VantageId;

    let syn = client_syn();
    let inner = V4::new(CLIENT, VIP, 6).packet(&syn);
    let outer = V4::new([10, 0, 0, 1], [10, 0, 0, 2], 4).packet(&inner);
    let wrapped = ethernet(MAC_A, MAC_B, 0x0800, &outer);
    let plain = ethernet(MAC_A, MAC_B, 0x0800, &inner);
    let (outer_ip, inner_tcp_end) = (14 + 20, 14 + 20 + 20 + 20);
    let o = DecodeOptions::default();
    let count = |frame: &[u8], len: usize| {
        let v = VantageId {
            capture: 0,
            interface: 0,
        };
        let mut facts = VantageFacts::new(v, 1);
        facts.push(&DecodedFrame {
            capture: 0,
            interface: 0,
            number: 1,
            ts_ns: 0,
            wire_len: frame.len() as u32,
            packet: decode(1, &frame[..len], &o),
        });
        let c = &facts.counts;
        (
            c.tunnel_frames,
            c.tunnel_cut,
            c.plain_cut,
            c.cut_examples.len(),
        )
    };
    for len in 0..=wrapped.len() {
        let (frames, cut, plain_cut, examples) = count(&wrapped, len);
        assert_eq!(plain_cut, 0, "length {len}");
        if len < outer_ip {
            assert_eq!((frames, cut), (0, 0), "length {len}: no IP header to tell");
        } else {
            assert_eq!(frames, 1, "length {len}");
            assert_eq!(cut == 1, len < inner_tcp_end, "length {len}");
            assert_eq!(examples as u64, cut);
        }
    }
    for len in 0..=plain.len() {
        let (frames, cut, plain_cut, _) = count(&plain, len);
        assert_eq!((frames, cut), (0, 0), "length {len}");
        // Cut inside the TCP header (20 bytes of it are the minimum the decoder needs).
        let in_tcp = (outer_ip..14 + 20 + 20).contains(&len);
        assert_eq!(plain_cut == 1, in_tcp, "length {len}");
    }
}
