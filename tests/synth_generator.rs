//! The generator itself: its captures look like docs' healthy LVS-TUN run
//! (/work/shared/reference/lvs-tun.md), checked with pcap-file and etherparse directly, not
//! with lvscheck, so that the verify tests rest on captures known to be right.

#[path = "synth_common/generator.rs"]
mod generator;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use generator::{generate, rs_addr, Config, DIRECTOR, PORT, VIP};
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// (timestamp ns, frame bytes) of every record.
fn frames(path: &Path) -> Vec<(u128, Vec<u8>)> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.timestamp().as_nanos(), p.data().to_vec()));
    }
    out
}

fn mac_of(truth: &Value, host: &str) -> [u8; 6] {
    let s = truth["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .unwrap()["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
fn captures_follow_the_lvs_tun_reference() {
    let dir = std::env::temp_dir().join(format!("lvscheck-synth-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let servers = 3;
    let s = generate(&Config::new(200, servers), &dir).unwrap();
    let truth: Value = serde_json::from_slice(&std::fs::read(&s.truth).unwrap()).unwrap();
    let rs_of: HashMap<String, String> = truth["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["client"].as_str().unwrap().to_string(),
                c["real_server"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let client_mac = mac_of(&truth, "client");
    let rs_macs: HashMap<Ipv4Addr, [u8; 6]> = (0..servers)
        .map(|i| (rs_addr(i), mac_of(&truth, &format!("rs{}", i + 1))))
        .collect();

    for (_, path, frames_written, _) in &s.captures {
        let f = frames(path.as_ref().unwrap());
        assert_eq!(f.len() as u64, *frames_written);
        assert!(
            f.windows(2).all(|w| w[0].0 <= w[1].0),
            "{path:?} is in time order"
        );
    }

    // Director: each client packet arrives with TTL 64 and leaves wrapped.
    let mut arrived: HashMap<(u16, u32, u16), Vec<u8>> = HashMap::new();
    let mut wrapped = 0;
    for (_, frame) in frames(&dir.join("director.pcap")) {
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            continue;
        };
        let h = ip.header();
        if h.protocol() == etherparse::IpNumber::IPV4 {
            wrapped += 1;
            assert_eq!(h.source_addr(), DIRECTOR);
            let rs = h.destination_addr();
            assert!(rs_macs.contains_key(&rs), "outer destination {rs} is an RS");
            assert_eq!(
                p.link
                    .as_ref()
                    .unwrap()
                    .to_header()
                    .unwrap()
                    .ethernet2()
                    .unwrap()
                    .destination,
                rs_macs[&rs]
            );
            assert!(h.dont_fragment(), "outer DF");
            assert_eq!(h.identification(), 0, "outer IP ID");
            let inner = ip.payload().payload;
            let ih = etherparse::Ipv4HeaderSlice::from_slice(inner).unwrap();
            assert_eq!(h.ttl(), ih.ttl(), "outer TTL = inner TTL");
            assert_eq!(ih.ttl(), 63, "inner TTL one lower");
            assert_eq!(ih.destination_addr(), VIP);
            let tcp = etherparse::TcpHeaderSlice::from_slice(&inner[20..]).unwrap();
            let key = (
                tcp.source_port(),
                tcp.sequence_number(),
                ih.identification(),
            );
            let before = arrived
                .get(&key)
                .expect("the wrapped packet arrived before");
            let masked = |b: &[u8]| {
                let mut b = b.to_vec();
                b[8] = 0; // TTL
                b[10] = 0; // header checksum
                b[11] = 0;
                b
            };
            assert_eq!(
                masked(before),
                masked(inner),
                "inner packet unchanged but TTL"
            );
            // The RS the director chose is the one in truth.json.
            let client = format!("{}:{}", ih.source_addr(), tcp.source_port());
            assert_eq!(rs_of[&client], rs.to_string());
        } else if h.destination_addr() == VIP {
            assert_eq!(h.ttl(), 64);
            let Some(TransportSlice::Tcp(t)) = &p.transport else {
                panic!("TCP to the VIP")
            };
            let ip_len = h.total_len() as usize;
            arrived.insert(
                (t.source_port(), t.sequence_number(), h.identification()),
                frame[14..14 + ip_len].to_vec(),
            );
        } else {
            assert_ne!(h.source_addr(), VIP, "no reply crosses the director");
        }
    }
    assert!(
        wrapped > 200 * 5,
        "every client packet is tunnelled ({wrapped})"
    );

    // Client: replies come from VIP:80 with the source MAC of the connection's RS.
    let mut replies = 0;
    for (_, frame) in frames(&dir.join("client.pcap")) {
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) = (&p.net, &p.transport)
        else {
            continue;
        };
        let h = ip.header();
        if h.source_addr() != VIP {
            continue;
        }
        replies += 1;
        assert_eq!(t.source_port(), PORT);
        let eth = p.link.as_ref().unwrap().to_header().unwrap();
        let eth = eth.ethernet2().unwrap();
        let rs: Ipv4Addr = rs_of[&format!("{}:{}", h.destination_addr(), t.destination_port())]
            .parse()
            .unwrap();
        assert_eq!(eth.source, rs_macs[&rs], "reply MAC is its RS's");
        assert_eq!(eth.destination, client_mac);
    }
    assert!(replies >= 200 * 3);
    let _ = std::fs::remove_dir_all(&dir);
}
