//! ICMP errors with their quoted packets, echo, and ARP.

mod decode_common;
use decode_common::*;

use lvscheck::decode::{decode, DecodeOptions, Decoder, Icmp, LayerCounts, Net, Transport};
use std::net::{IpAddr, Ipv4Addr};

fn icmp_of(frame: &[u8]) -> Icmp {
    let p = decode(101, frame, &DecodeOptions::default());
    match &p.ip().expect("IP").transport {
        Transport::Icmp(icmp) => icmp.clone(),
        t => panic!("{t:?}"),
    }
}

/// A full-size client segment: 1448 bytes of payload after a 32-byte TCP header.
fn big_segment() -> Vec<u8> {
    let payload = vec![0x41u8; 1448];
    let ts = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6];
    let seg = TcpSeg {
        src_port: 40000,
        dst_port: 80,
        seq: 0xdead_beef,
        ack: 0x0102_0304,
        flags: 0x18,
        window: 502,
        options: &ts,
        payload: &payload,
    };
    V4::new(CLIENT, VIP, 6).packet(&seg.bytes())
}

#[test]
fn frag_needed_quoting_a_tcp_segment() {
    let quoted = big_segment();
    // Type 3 code 4, unused 0, next-hop MTU 1480; Linux quotes up to 576 bytes in all.
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xc8];
    icmp.extend_from_slice(&quoted[..548]);
    let frame = V4::new(VIP, CLIENT, 1).packet(&icmp);
    let icmp = icmp_of(&frame);
    assert!(!icmp.v6);
    assert_eq!((icmp.icmp_type, icmp.code, icmp.mtu), (3, 4, Some(1480)));
    assert_eq!(icmp.echo, None);
    let q = icmp.quoted.expect("quoted packet");
    assert_eq!(q.ip.src, IpAddr::V4(Ipv4Addr::from(CLIENT)));
    assert_eq!(q.ip.dst, IpAddr::V4(Ipv4Addr::from(VIP)));
    assert_eq!(q.ip.total_len, 20 + 32 + 1448);
    assert_eq!(q.ip.captured_len, 548);
    let t = q.tcp().expect("quoted TCP");
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack),
        (40000, 80, 0xdead_beef, 0x0102_0304)
    );
    assert_eq!(t.timestamp, Some((5, 6)));
    assert_eq!(t.payload_len, 1448);

    // RFC 792 minimum: IP header + 8 bytes: ports and sequence number only.
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xc8];
    icmp.extend_from_slice(&quoted[..28]);
    let icmp = icmp_of(&V4::new(VIP, CLIENT, 1).packet(&icmp));
    let t = icmp
        .quoted
        .expect("quoted")
        .tcp()
        .copied()
        .expect("quoted TCP");
    assert_eq!((t.src_port, t.dst_port, t.seq), (40000, 80, 0xdead_beef));
}

#[test]
fn quoted_packets_do_not_feed_reassembly() {
    // A quoted first fragment must not start a datagram in the table.
    let mut h = V4::new(CLIENT, VIP, 17);
    h.mf = true;
    let frag = h.packet(&udp(1, 2, &[0; 16])[..16]);
    let mut icmp = vec![11, 1, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&frag);
    let mut d = Decoder::new(DecodeOptions::default());
    push(&mut d, 0, 101, &V4::new(VIP, CLIENT, 1).packet(&icmp));
    assert_eq!(d.pending_datagrams(), 0);
}

#[test]
fn port_unreachable_quoting_udp() {
    let quoted = V4::new(CLIENT, VIP, 17).packet(&udp(51000, 53, b"query"));
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let icmp = icmp_of(&V4::new(VIP, CLIENT, 1).packet(&icmp));
    assert_eq!((icmp.icmp_type, icmp.code, icmp.mtu), (3, 3, None));
    let u = icmp
        .quoted
        .expect("quoted")
        .udp()
        .copied()
        .expect("quoted UDP");
    assert_eq!((u.src_port, u.dst_port, u.payload_len), (51000, 53, 5));
    assert_eq!(u.payload_hash, fnv(b"query"));
}

#[test]
fn icmpv6_packet_too_big() {
    let seg = TcpSeg {
        src_port: 40000,
        dst_port: 443,
        seq: 99,
        ack: 100,
        flags: 0x10,
        window: 1,
        options: &[],
        payload: &[0x42; 1400],
    }
    .bytes();
    let quoted = ipv6(v6(1), v6(100), 6, 64, &seg);
    // Type 2 code 0, MTU 1280.
    let mut icmp = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&quoted[..1232]);
    let frame = ipv6(v6(100), v6(1), 58, 64, &icmp);
    let icmp = icmp_of(&frame);
    assert!(icmp.v6);
    assert_eq!((icmp.icmp_type, icmp.code, icmp.mtu), (2, 0, Some(1280)));
    let q = icmp.quoted.expect("quoted");
    assert_eq!(q.ip.src, IpAddr::from(v6(1)));
    let t = q.tcp().expect("quoted TCP");
    assert_eq!((t.dst_port, t.seq, t.ack), (443, 99, 100));

    let mut counts = LayerCounts::default();
    counts.add(&decode(101, &frame, &DecodeOptions::default()));
    assert_eq!((counts.ipv6, counts.icmpv6, counts.tcp), (1, 1, 0));
}

#[test]
fn echo_request_and_reply() {
    let icmp = icmp_of(&V4::new(CLIENT, VIP, 1).packet(&[8, 0, 0, 0, 0x12, 0x34, 0, 9, 1, 2]));
    assert_eq!(
        (icmp.icmp_type, icmp.echo, icmp.quoted),
        (8, Some((0x1234, 9)), None)
    );
    let icmp = icmp_of(&ipv6(v6(1), v6(2), 58, 64, &[129, 0, 0, 0, 0, 7, 0, 1]));
    assert_eq!(
        (icmp.v6, icmp.icmp_type, icmp.echo),
        (true, 129, Some((7, 1)))
    );
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 1).packet(&[8, 0, 0]),
        &DecodeOptions::default(),
    );
    match &p.ip().unwrap().transport {
        Transport::Malformed { reason } => {
            assert_eq!(reason.to_string(), "ICMP header cut short: 3 of 8 bytes")
        }
        t => panic!("{t:?}"),
    }
}

fn arp(
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: [u8; 4],
    target_mac: [u8; 6],
    target_ip: [u8; 4],
) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender_ip);
    a.extend_from_slice(&target_mac);
    a.extend_from_slice(&target_ip);
    a
}

#[test]
fn arp_request_and_reply() {
    let o = DecodeOptions::default();
    let request = arp(1, MAC_A, CLIENT, [0; 6], VIP);
    let p = decode(1, &ethernet([0xff; 6], MAC_A, 0x0806, &request), &o);
    match p.net {
        Net::Arp(a) => {
            assert_eq!(a.operation, 1);
            assert_eq!(a.sender_mac, MAC_A);
            assert_eq!(a.sender_ip, Ipv4Addr::from(CLIENT));
            assert_eq!(a.target_ip, Ipv4Addr::from(VIP));
        }
        other => panic!("{other:?}"),
    }
    // The reply that shows a real server claiming the VIP, padded to 60 bytes.
    let mut reply = arp(2, MAC_B, VIP, MAC_A, CLIENT);
    reply.extend_from_slice(&[0; 18]);
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x0806, &reply), &o);
    match p.net {
        Net::Arp(a) => {
            assert_eq!((a.operation, a.sender_mac, a.target_mac), (2, MAC_B, MAC_A));
            assert_eq!(a.sender_ip, Ipv4Addr::from(VIP));
        }
        other => panic!("{other:?}"),
    }
    let mut counts = LayerCounts::default();
    counts.add(&p);
    assert_eq!(counts.arp, 1);
    // Cut short, and a non-Ethernet/IPv4 ARP.
    match decode(1, &ethernet(MAC_A, MAC_B, 0x0806, &request[..20]), &o).net {
        Net::Malformed { reason } => {
            assert_eq!(reason.to_string(), "ARP packet cut short: 20 of 28 bytes")
        }
        other => panic!("{other:?}"),
    }
    let mut ieee1394 = request.clone();
    ieee1394[1] = 24;
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x0806, &ieee1394), &o);
    assert_eq!(p.net, Net::Other { ether_type: 0x0806 });
}

/// Neighbour discovery, IPv6's ARP: a solicitation's target and source link-layer address,
/// an advertisement's target, flags and target link-layer address (RFC 4861 4.3, 4.4). The
/// options walk steps over others (a nonce, option 14) and stops at a zero length.
#[test]
fn neighbor_solicitation_and_advertisement() {
    let mac = [0x02, 0, 0, 0x07, 0, 0x0c];
    // The ND part of an ICMPv6 message in an IPv6 packet to or from the VIP (v6(100)).
    let nd_of = |from: u8, to: u8, icmp: &[u8]| icmp_of(&ipv6(v6(from), v6(to), 58, 255, icmp)).nd;
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&v6(100));
    ns.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&mac);
    let nd = nd_of(1, 100, &ns).expect("a solicitation");
    assert!(!nd.advertisement);
    assert_eq!(nd.target, std::net::Ipv6Addr::from(v6(100)));
    assert_eq!(nd.lladdr, Some(mac));
    assert!(!nd.solicited && !nd.override_flag);

    // Solicited and override set (0x60), the target's link-layer address (option 2).
    let mut na = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    na.extend_from_slice(&v6(100));
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&mac);
    let nd = nd_of(100, 1, &na).expect("an advertisement");
    assert!(nd.advertisement && nd.solicited && nd.override_flag);
    assert_eq!(nd.lladdr, Some(mac));

    // No option, an option of length 0, and a message cut before its target.
    let mut bare = na[..24].to_vec();
    assert_eq!(nd_of(100, 1, &bare).unwrap().lladdr, None);
    bare.extend_from_slice(&[2, 0, 9, 9, 9, 9, 9, 9]);
    assert_eq!(nd_of(100, 1, &bare).unwrap().lladdr, None);
    assert_eq!(nd_of(100, 1, &na[..20]), None);
    // An echo request is no neighbour discovery.
    assert_eq!(
        icmp_of(&ipv6(v6(1), v6(2), 58, 64, &[128, 0, 0, 0, 0, 7, 0, 1])).nd,
        None
    );
}
