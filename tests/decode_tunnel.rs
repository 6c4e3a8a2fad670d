//! Tunnels as IPVS builds them: IPIP (the default `-i`), 6in4, 6in6, 4in6, GRE, GUE.

mod decode_common;
use decode_common::*;

use lvscheck::decode::{
    decode, looks_like_gue, DecodeOptions, IpPacket, LayerCounts, Net, Packet, Transport,
    TunnelKind, MAX_IP_LAYERS,
};
use std::net::{IpAddr, Ipv4Addr};

/// The client's SYN as the director forwards it: TTL one lower than it arrived.
fn inner_syn() -> Vec<u8> {
    let mut h = V4::new(CLIENT, VIP, 6);
    h.ttl = 63;
    h.id = 0xbeef;
    h.packet(&client_syn())
}

fn ipvs_outer(protocol: u8) -> V4 {
    let mut o = V4::new(DIRECTOR, RS, protocol);
    o.id = 0;
    o.df = true;
    o.ttl = 63;
    o
}

fn tunnel_of(p: &Packet) -> (TunnelKind, &IpPacket) {
    p.ip()
        .and_then(IpPacket::tunnel)
        .unwrap_or_else(|| panic!("no tunnel in {p:?}"))
}

fn assert_inner_syn(inner: &IpPacket) {
    assert_eq!(inner.ip.src, IpAddr::V4(Ipv4Addr::from(CLIENT)));
    assert_eq!(inner.ip.dst, IpAddr::V4(Ipv4Addr::from(VIP)));
    assert_eq!(inner.ip.ttl, 63);
    assert_eq!(inner.ip.id, 0xbeef);
    let tcp = inner.tcp().expect("inner TCP");
    assert_eq!(
        (tcp.src_port, tcp.dst_port, tcp.seq),
        (40000, 80, 0x0102_0304)
    );
    assert_eq!(tcp.flags, 0x02);
    assert_eq!(tcp.mss, Some(1460));
    assert_eq!(tcp.window_scale, Some(7));
    assert!(tcp.sack_permitted);
    assert_eq!(tcp.timestamp, Some((1000, 0)));
}

#[test]
fn ipip_as_ipvs_sends_it() {
    let frame = ethernet(MAC_B, MAC_A, 0x0800, &ipvs_outer(4).packet(&inner_syn()));
    let p = decode(1, &frame, &DecodeOptions::default());
    let outer = p.ip().unwrap();
    assert_eq!(outer.ip.src, IpAddr::V4(Ipv4Addr::from(DIRECTOR)));
    assert_eq!(outer.ip.dst, IpAddr::V4(Ipv4Addr::from(RS)));
    assert_eq!(outer.ip.protocol, 4);
    assert_eq!(outer.ip.id, 0);
    assert!(outer.ip.dont_fragment);
    assert!(!outer.ip.is_fragment());
    assert_eq!(outer.ip.total_len, 20 + 20 + 40);
    let (kind, inner) = tunnel_of(&p);
    assert_eq!(kind, TunnelKind::IpIp);
    assert_inner_syn(inner);
    assert!(std::ptr::eq(outer.innermost(), inner));
    assert!(matches!(
        outer.transport,
        Transport::Tunnel { udp: None, .. }
    ));

    let mut counts = LayerCounts::default();
    counts.add(&p);
    assert_eq!((counts.ipv4, counts.tcp, counts.tunnels.ipip), (1, 1, 1));
    assert_eq!(counts.tunnels.total(), 1);
}

#[test]
fn ipv6_in_ipv4_ipv6_in_ipv6_ipv4_in_ipv6() {
    let o = DecodeOptions::default();
    let inner6 = ipv6(v6(1), v6(100), 6, 63, &client_syn());

    let p = decode(101, &ipvs_outer(41).packet(&inner6), &o);
    let (kind, inner) = tunnel_of(&p);
    assert_eq!(kind, TunnelKind::Ipv6InIpv4);
    assert!(inner.ip.is_v6());
    assert_eq!(inner.tcp().unwrap().dst_port, 80);

    let p = decode(101, &ipv6(v6(2), v6(3), 41, 64, &inner6), &o);
    let (kind, inner) = tunnel_of(&p);
    assert_eq!(kind, TunnelKind::IpInIpv6);
    assert_eq!(inner.ip.dst, IpAddr::from(v6(100)));
    assert_eq!(inner.ip.ttl, 63);

    let p = decode(101, &ipv6(v6(2), v6(3), 4, 64, &inner_syn()), &o);
    let (kind, inner) = tunnel_of(&p);
    assert_eq!(kind, TunnelKind::IpInIpv6);
    assert_inner_syn(inner);
}

#[test]
fn gre_without_key_with_key_and_with_all_fields() {
    let o = DecodeOptions::default();
    let inner = inner_syn();
    let headers: [&[u8]; 4] = [
        &[0x00, 0x00, 0x08, 0x00],
        &[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42],
        // C, K, S: checksum + reserved, key, sequence.
        &[
            0xb0, 0x00, 0x08, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0, 42, 0, 0, 0, 7,
        ],
        &[0x10, 0x00, 0x08, 0x00, 0, 0, 0, 9],
    ];
    for gre in headers {
        let payload = [gre, &inner[..]].concat();
        let p = decode(101, &ipvs_outer(47).packet(&payload), &o);
        let (kind, inner) = tunnel_of(&p);
        assert_eq!(kind, TunnelKind::Gre);
        assert_inner_syn(inner);
    }
    let parsed = lvscheck::decode::tunnel::parse_gre(headers[2])
        .unwrap()
        .unwrap();
    assert_eq!(parsed.checksum, Some(0x1234));
    assert_eq!(parsed.key, Some(42));
    assert_eq!(parsed.sequence, Some(7));
    assert_eq!(parsed.header_len, 16);

    // GRE carrying IPv6.
    let payload = [
        &[0u8, 0, 0x86, 0xdd][..],
        &ipv6(v6(1), v6(100), 6, 63, &client_syn()),
    ]
    .concat();
    let p = decode(101, &ipvs_outer(47).packet(&payload), &o);
    assert!(tunnel_of(&p).1.ip.is_v6());

    // Key flag set but the key missing.
    let p = decode(
        101,
        &ipvs_outer(47).packet(&[0x20, 0, 0x08, 0x00, 0, 0]),
        &o,
    );
    match &p.ip().unwrap().transport {
        Transport::Malformed { reason } => {
            assert_eq!(reason.to_string(), "GRE header cut short: 6 of 8 bytes")
        }
        t => panic!("{t:?}"),
    }
    // Transparent Ethernet bridging and PPTP's version 1 are not IPVS tunnels.
    let p = decode(
        101,
        &ipvs_outer(47).packet(&[0, 0, 0x65, 0x58, 1, 2, 3]),
        &o,
    );
    assert_eq!(p.ip().unwrap().transport, Transport::Other);
    let p = decode(
        101,
        &ipvs_outer(47).packet(&[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 1]),
        &o,
    );
    assert_eq!(p.ip().unwrap().transport, Transport::Other);
}

const GUE_PORT: u16 = 5555;

fn probe() -> DecodeOptions {
    DecodeOptions {
        gue_probe: true,
        ..DecodeOptions::default()
    }
}

fn ip4(a: [u8; 4]) -> std::net::IpAddr {
    std::net::IpAddr::from(a)
}

fn gue_frame(gue_payload: &[u8]) -> Vec<u8> {
    ipvs_outer(17).packet(&udp(41234, GUE_PORT, gue_payload))
}

fn gue_opts() -> DecodeOptions {
    DecodeOptions {
        gue_ports: vec![GUE_PORT],
        ..DecodeOptions::default()
    }
}

#[test]
fn gue_variant_0_and_1() {
    let inner = inner_syn();
    // Variant 0, hlen 0, proto/ctype 4.
    let v0 = [&[0x00, 4, 0, 0][..], &inner].concat();
    // Variant 0 with one 4-byte optional field (hlen 1).
    let v0_opt = [&[0x01, 4, 0x80, 0, 1, 2, 3, 4][..], &inner].concat();
    // Variant 1: the IP header directly.
    let v1 = inner.clone();
    for payload in [v0, v0_opt, v1] {
        let p = decode(101, &gue_frame(&payload), &gue_opts());
        match &p.ip().unwrap().transport {
            Transport::Tunnel {
                tunnel: TunnelKind::Gue,
                udp: Some(udp),
                inner,
            } => {
                assert_eq!((udp.src_port, udp.dst_port), (41234, GUE_PORT));
                assert_eq!(udp.payload_len as usize, payload.len());
                assert_eq!(udp.payload_hash, fnv(&payload));
                assert_inner_syn(inner);
            }
            t => panic!("{t:?}"),
        }
        assert!(looks_like_gue(&payload, payload.len()));
        // Without the port, plain UDP; probed, the packet it would carry is noted.
        let p = decode(101, &gue_frame(&payload), &DecodeOptions::default());
        assert!(matches!(p.ip().unwrap().transport, Transport::Udp(_)));
        assert_eq!(p.gue_shaped, None);
        let p = decode(101, &gue_frame(&payload), &probe());
        assert!(matches!(p.ip().unwrap().transport, Transport::Udp(_)));
        let carried = p.gue_shaped.and_then(|g| g.carried).expect("noted");
        assert_eq!(
            (carried.src, carried.dst, carried.protocol),
            (ip4(CLIENT), ip4(VIP), 6)
        );
        assert_eq!((carried.src_port, carried.dst_port), (40000, 80));
        // Confirmed for its source (topology::gue), it is decoded: from that source only.
        let confirmed = DecodeOptions {
            gue_tunnels: vec![(ip4(DIRECTOR), GUE_PORT)],
            ..DecodeOptions::default()
        };
        let p = decode(101, &gue_frame(&payload), &confirmed);
        assert_eq!(tunnel_of(&p).0, TunnelKind::Gue);
        let elsewhere = DecodeOptions {
            gue_tunnels: vec![(ip4(RS), GUE_PORT)],
            ..DecodeOptions::default()
        };
        let p = decode(101, &gue_frame(&payload), &elsewhere);
        assert!(matches!(p.ip().unwrap().transport, Transport::Udp(_)));
    }
    // Variant 0 carrying IPv6 (proto/ctype 41).
    let payload = [
        &[0x00, 41, 0, 0][..],
        &ipv6(v6(1), v6(100), 6, 63, &client_syn()),
    ]
    .concat();
    assert!(looks_like_gue(&payload, payload.len()));
    let p = decode(101, &gue_frame(&payload), &gue_opts());
    assert!(tunnel_of(&p).1.ip.is_v6());
}

#[test]
fn gue_rule_rejects_what_is_not_gue() {
    let inner = inner_syn();
    let v0 = [&[0x00, 4, 0, 0][..], &inner].concat();
    // Length must match the UDP payload length.
    assert!(!looks_like_gue(&v0, v0.len() + 1));
    // A capture cut short still qualifies: lengths come from the headers.
    assert!(looks_like_gue(&v0[..40], v0.len()));
    // Control bit set.
    let mut control = v0.clone();
    control[0] |= 0x20;
    assert!(!looks_like_gue(&control, control.len()));
    // proto/ctype 4 but an IPv6 inside.
    let mismatch = [&[0x00, 4, 0, 0][..], &ipv6(v6(1), v6(2), 59, 64, &[])].concat();
    assert!(!looks_like_gue(&mismatch, mismatch.len()));
    // Corrupt inner IPv4 checksum.
    let mut bad = v0.clone();
    bad[4 + 10] ^= 0xff;
    assert!(!looks_like_gue(&bad, bad.len()));
    // DNS-like payloads and empty ones.
    let dns = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    assert!(!looks_like_gue(&dns, dns.len()));
    assert!(!looks_like_gue(&[], 0));
    assert_eq!(decode(101, &gue_frame(&dns), &probe()).gue_shaped, None);
    // A DNS query with ID 0x6xxx and 41 bytes of payload has the shape of variant 1 carrying
    // IPv6 (issue 11): noted as such, carrying no TCP/UDP packet, and still plain UDP.
    let mut query = vec![0x62, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x07example\x0bservicezone\x03com\x00");
    query.extend_from_slice(&[0, 1, 0, 1]);
    assert_eq!(query.len(), 41);
    assert!(looks_like_gue(&query, query.len()));
    let p = decode(
        101,
        &V4::new(CLIENT, VIP, 17).packet(&udp(40001, 53, &query)),
        &probe(),
    );
    assert!(matches!(p.ip().unwrap().transport, Transport::Udp(_)));
    assert_eq!(p.gue_shaped.map(|g| g.carried), Some(None));

    // On the GUE port, a control message stays plain UDP; a header cut short is malformed.
    let p = decode(101, &gue_frame(&control), &gue_opts());
    assert!(matches!(p.ip().unwrap().transport, Transport::Udp(_)));
    let p = decode(101, &gue_frame(&[0x02, 4, 0, 0, 1, 2]), &gue_opts());
    match &p.ip().unwrap().transport {
        Transport::Malformed { reason } => {
            assert_eq!(reason.to_string(), "GUE header cut short: 6 of 12 bytes")
        }
        t => panic!("{t:?}"),
    }
}

#[test]
fn tunnel_nesting_stops() {
    // IPIP in IPIP in ... 10 deep around the SYN.
    let mut packet = inner_syn();
    for _ in 0..10 {
        packet = ipvs_outer(4).packet(&packet);
    }
    let p = decode(101, &packet, &DecodeOptions::default());
    let mut layer = p.ip().unwrap();
    let mut depth = 1;
    while let Some((_, inner)) = layer.tunnel() {
        layer = inner;
        depth += 1;
    }
    assert_eq!(depth, MAX_IP_LAYERS);
    match &layer.transport {
        Transport::Malformed { reason } => {
            assert_eq!(
                reason.to_string(),
                "IPIP inner packet: nesting deeper than 4 IP headers"
            )
        }
        t => panic!("{t:?}"),
    }
    let mut counts = LayerCounts::default();
    counts.add(&p);
    assert_eq!(
        (counts.tunnels.ipip, counts.malformed, counts.tcp),
        (3, 1, 0)
    );
}

#[test]
fn tunnel_inner_cut_short() {
    let inner = inner_syn();
    let p = decode(
        101,
        &ipvs_outer(4).packet(&inner[..12]),
        &DecodeOptions::default(),
    );
    match &p.ip().unwrap().transport {
        Transport::Malformed { reason } => {
            assert_eq!(
                reason.to_string(),
                "IPIP inner packet: IPv4 header cut short: 12 of 20 bytes"
            )
        }
        t => panic!("{t:?}"),
    }
    assert!(matches!(p.net, Net::Ip(_)));
}

/// IPVS writes the inner packet right after the outer header. An IP packet behind an
/// authentication header (IPsec tunnel mode) or an IPv6 routing header (SRv6) is not an LVS
/// tunnel, whatever the next-header field says (corpus: tests_filter_AH-IPcomp-IPv4.pcap,
/// tests_filter_ipv6_ah_modes.pcap, tests_samples_sr-header.pcap).
#[test]
fn ip_behind_auth_or_routing_header_is_no_lvs_tunnel() {
    let o = DecodeOptions::default();
    // AH (RFC 4302): next header, payload length in 4-byte words minus 2, reserved, SPI,
    // sequence, 12-byte ICV: 24 bytes.
    let ah = |next: u8| {
        let mut h = vec![next, 4, 0, 0, 0xc6, 0x7c, 0xea, 0xdf, 0, 0, 0, 1];
        h.extend_from_slice(&[0xce; 12]);
        h
    };
    let p = decode(
        101,
        &ipvs_outer(51).packet(&[ah(4), inner_syn()].concat()),
        &o,
    );
    let outer = p.ip().expect("outer IPv4");
    assert!(
        outer.tunnel().is_none(),
        "AH tunnel mode decoded as IPIP: {p:?}"
    );
    assert!(matches!(outer.transport, Transport::Other));

    let inner6 = ipv6(v6(1), v6(100), 17, 63, &udp(12345, 54321, b"x"));
    let p = decode(
        101,
        &ipv6(v6(2), v6(3), 51, 64, &[ah(41), inner6.clone()].concat()),
        &o,
    );
    assert!(
        p.ip().unwrap().tunnel().is_none(),
        "IPv6 AH decoded as 6in6"
    );

    // Segment routing header (type 4), segments left 0, one segment: 8 + 16 bytes.
    let mut srh = vec![41, 2, 4, 0, 0, 0, 0, 0];
    srh.extend_from_slice(&v6(3));
    let p = decode(
        101,
        &ipv6(v6(2), v6(3), 43, 64, &[srh, inner6.clone()].concat()),
        &o,
    );
    assert!(p.ip().unwrap().tunnel().is_none(), "SRv6 decoded as 6in6");

    // Destination options before the inner packet (ip6tnl's encapsulation limit) still are
    // a tunnel: only AH and routing headers say "not IPVS".
    let dst_opts = vec![41, 0, 4, 1, 4, 1, 0, 0];
    let p = decode(
        101,
        &ipv6(v6(2), v6(3), 60, 64, &[dst_opts, inner6].concat()),
        &o,
    );
    assert_eq!(tunnel_of(&p).0, TunnelKind::IpInIpv6);
}

/// Protocol 41 says IPv6 is inside; an IPv4 header there is dropped by the kernel, and is a
/// malformed tunnel here (corpus: tests_bug-7964-02_wrong-version-ipv6-ipv6.pcap).
#[test]
fn inner_ip_version_must_match_the_protocol_number() {
    let o = DecodeOptions::default();
    let p = decode(101, &ipv6(v6(2), v6(3), 41, 64, &inner_syn()), &o);
    let outer = p.ip().unwrap();
    assert!(outer.tunnel().is_none());
    assert!(
        matches!(&outer.transport, Transport::Malformed { reason } if reason.to_string().contains("IP version 4 under protocol 41")),
        "{:?}",
        outer.transport
    );
    let inner6 = ipv6(v6(1), v6(100), 6, 63, &client_syn());
    let p = decode(101, &ipvs_outer(4).packet(&inner6), &o);
    assert!(p.ip().unwrap().tunnel().is_none());
}
