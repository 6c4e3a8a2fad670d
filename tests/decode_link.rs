//! Every link type and VLAN tagging, each carrying the same client SYN.

mod decode_common;
use decode_common::*;

use lvscheck::decode::{decode, DecodeOptions, IpPacket, Net, Packet, Transport};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn ipv4_syn() -> Vec<u8> {
    V4::new(CLIENT, VIP, 6).packet(&client_syn())
}

fn ipv6_syn() -> Vec<u8> {
    ipv6(v6(1), v6(100), 6, 64, &client_syn())
}

fn ip(p: &Packet) -> &IpPacket {
    p.ip().unwrap_or_else(|| panic!("no IP in {p:?}"))
}

fn assert_v4_syn(p: &Packet) {
    let ip = ip(p);
    assert_eq!(ip.ip.src, IpAddr::V4(Ipv4Addr::from(CLIENT)));
    assert_eq!(ip.ip.dst, IpAddr::V4(Ipv4Addr::from(VIP)));
    let tcp = ip.tcp().expect("TCP");
    assert_eq!(
        (tcp.src_port, tcp.dst_port, tcp.seq),
        (40000, 80, 0x0102_0304)
    );
}

fn assert_v6_syn(p: &Packet) {
    let ip = ip(p);
    assert_eq!(ip.ip.src, IpAddr::V6(Ipv6Addr::from(v6(1))));
    assert_eq!(ip.ip.dst, IpAddr::V6(Ipv6Addr::from(v6(100))));
    assert_eq!(ip.ip.total_len, 40 + 40);
    let tcp = ip.tcp().expect("TCP");
    assert_eq!((tcp.src_port, tcp.dst_port), (40000, 80));
}

#[test]
fn ethernet_ipv4_and_ipv6() {
    let o = DecodeOptions::default();
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x0800, &ipv4_syn()), &o);
    assert_eq!(p.link.dst_mac, Some(MAC_A));
    assert_eq!(p.link.src_mac, Some(MAC_B));
    assert!(p.link.vlans.is_empty());
    assert_v4_syn(&p);
    assert_v6_syn(&decode(1, &ethernet(MAC_A, MAC_B, 0x86dd, &ipv6_syn()), &o));
}

#[test]
fn vlan_qinq_and_old_qinq_tags() {
    let o = DecodeOptions::default();
    // 802.1Q tag: PCP 5, VLAN 100.
    let mut tagged = vec![0xa0, 100, 0x08, 0x00];
    tagged.extend_from_slice(&ipv4_syn());
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x8100, &tagged), &o);
    assert_eq!(p.link.vlans[..], [100]);
    assert_v4_syn(&p);

    // QinQ: service tag 0x88a8 VLAN 0x123, customer tag 0x8100 VLAN 7.
    let mut qinq = vec![0x01, 0x23, 0x81, 0x00, 0x00, 7, 0x86, 0xdd];
    qinq.extend_from_slice(&ipv6_syn());
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x88a8, &qinq), &o);
    assert_eq!(p.link.vlans[..], [0x123, 7]);
    assert_v6_syn(&p);

    // Old QinQ ethertype 0x9100.
    let mut old = vec![0x0f, 0xff, 0x81, 0x00, 0x00, 1, 0x08, 0x00];
    old.extend_from_slice(&ipv4_syn());
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x9100, &old), &o);
    assert_eq!(p.link.vlans[..], [0xfff, 1]);
    assert_v4_syn(&p);
}

#[test]
fn endless_vlan_tags_stop() {
    let mut tags = Vec::new();
    for _ in 0..20 {
        tags.extend_from_slice(&[0, 1, 0x81, 0x00]);
    }
    let p = decode(
        1,
        &ethernet(MAC_A, MAC_B, 0x8100, &tags),
        &DecodeOptions::default(),
    );
    assert!(matches!(p.net, Net::Malformed { .. }), "{p:?}");
}

#[test]
fn vlan_tag_cut_short() {
    let p = decode(
        1,
        &ethernet(MAC_A, MAC_B, 0x8100, &[0, 5]),
        &DecodeOptions::default(),
    );
    match p.net {
        Net::Malformed { reason } => {
            assert_eq!(reason.to_string(), "VLAN tag cut short: 2 of 4 bytes")
        }
        other => panic!("{other:?}"),
    }
}

fn sll(packet_type: u16, arphrd: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&packet_type.to_be_bytes());
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    let mut a = [0u8; 8];
    a[..addr.len()].copy_from_slice(addr);
    f.extend_from_slice(&a);
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn linux_sll() {
    let o = DecodeOptions::default();
    // Outgoing (4) on an Ethernet device (ARPHRD_ETHER 1).
    let p = decode(113, &sll(4, 1, &MAC_B, 0x0800, &ipv4_syn()), &o);
    assert_eq!(p.link.sll_packet_type, Some(4));
    assert_eq!(p.link.src_mac, Some(MAC_B));
    assert_eq!(p.link.dst_mac, None);
    assert_v4_syn(&p);
    // tunl0 (ARPHRD_TUNNEL 768) has no address.
    let p = decode(113, &sll(0, 768, &[], 0x0800, &ipv4_syn()), &o);
    assert_eq!(p.link.src_mac, None);
    assert_v4_syn(&p);
    // A VLAN tag inside SLL.
    let mut tagged = vec![0, 42, 0x86, 0xdd];
    tagged.extend_from_slice(&ipv6_syn());
    let p = decode(113, &sll(0, 1, &MAC_A, 0x8100, &tagged), &o);
    assert_eq!(p.link.vlans[..], [42]);
    assert_v6_syn(&p);
    // 802.2 LLC (Linux protocol id 4) is not an ethertype.
    let p = decode(113, &sll(0, 1, &MAC_A, 4, &[0xaa; 10]), &o);
    assert_eq!(p.net, Net::Other { ether_type: 4 });
}

fn sll2(
    protocol: u16,
    ifindex: u32,
    arphrd: u16,
    pkttype: u8,
    addr: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ifindex.to_be_bytes());
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.push(pkttype);
    f.push(addr.len() as u8);
    let mut a = [0u8; 8];
    a[..addr.len()].copy_from_slice(addr);
    f.extend_from_slice(&a);
    f.extend_from_slice(payload);
    f
}

#[test]
fn linux_sll2() {
    let o = DecodeOptions::default();
    let p = decode(276, &sll2(0x86dd, 3, 1, 0, &MAC_A, &ipv6_syn()), &o);
    assert_eq!(p.link.sll_ifindex, Some(3));
    assert_eq!(p.link.sll_packet_type, Some(0));
    assert_eq!(p.link.src_mac, Some(MAC_A));
    assert_v6_syn(&p);
    let p = decode(
        276,
        &sll2(0x0800, 0x0102_0304, 768, 4, &[], &ipv4_syn()),
        &o,
    );
    assert_eq!(p.link.sll_ifindex, Some(0x0102_0304));
    assert_eq!(p.link.sll_packet_type, Some(4));
    assert_v4_syn(&p);
    let short = sll2(0x0800, 3, 1, 0, &MAC_A, &[]);
    match decode(276, &short[..19], &o).net {
        Net::Malformed { reason } => {
            assert_eq!(
                reason.to_string(),
                "Linux SLL2 header cut short: 19 of 20 bytes"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn raw_ip_link_types() {
    let o = DecodeOptions::default();
    for link in [101, 12, 14, 228] {
        let p = decode(link, &ipv4_syn(), &o);
        assert_eq!(p.link, Default::default());
        assert_v4_syn(&p);
    }
    for link in [101, 12, 14, 229] {
        assert_v6_syn(&decode(link, &ipv6_syn(), &o));
    }
}

#[test]
fn bsd_null_either_byte_order() {
    let o = DecodeOptions::default();
    for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let mut f = family.to_vec();
        f.extend_from_slice(&ipv4_syn());
        assert_v4_syn(&decode(0, &f, &o));
    }
    for af in [24u32, 28, 30] {
        for family in [af.to_le_bytes(), af.to_be_bytes()] {
            let mut f = family.to_vec();
            f.extend_from_slice(&ipv6_syn());
            assert_v6_syn(&decode(0, &f, &o));
        }
    }
    // OpenBSD loop: big-endian only.
    let mut f = 2u32.to_be_bytes().to_vec();
    f.extend_from_slice(&ipv4_syn());
    assert_v4_syn(&decode(108, &f, &o));
    // An unknown family (AF_APPLETALK 16) is not IP.
    let mut f = 16u32.to_le_bytes().to_vec();
    f.extend_from_slice(&ipv4_syn());
    assert_eq!(decode(0, &f, &o).net, Net::Other { ether_type: 0 });
}

#[test]
fn unknown_link_type_and_ethertype() {
    let o = DecodeOptions::default();
    match decode(147, &ipv4_syn(), &o).net {
        Net::Malformed { reason } => assert_eq!(reason.to_string(), "link type 147 not decoded"),
        other => panic!("{other:?}"),
    }
    let p = decode(1, &ethernet(MAC_A, MAC_B, 0x88cc, &[0; 30]), &o);
    assert_eq!(p.net, Net::Other { ether_type: 0x88cc });
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A bare ACK: 40 bytes of IP padded to Ethernet's 60-byte minimum with non-zero junk.
    let ack = TcpSeg {
        src_port: 40000,
        dst_port: 80,
        seq: 1,
        ack: 1,
        flags: 0x10,
        window: 502,
        options: &[],
        payload: &[],
    }
    .bytes();
    let mut ip = V4::new(CLIENT, VIP, 6).packet(&ack);
    ip.extend_from_slice(&[0xee; 6]);
    let p = decode(
        1,
        &ethernet(MAC_A, MAC_B, 0x0800, &ip),
        &DecodeOptions::default(),
    );
    let ip = p.ip().unwrap();
    assert_eq!(ip.ip.total_len, 40);
    assert_eq!(ip.ip.captured_len, 40);
    let tcp = ip.tcp().unwrap();
    assert_eq!(tcp.payload_len, 0);
    assert_eq!(tcp.payload_hash, 0);
    assert!(matches!(ip.transport, Transport::Tcp(_)));
}
