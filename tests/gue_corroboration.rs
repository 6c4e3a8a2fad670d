//! GUE on a port nobody named is a tunnel only where the captures show the director wrapping
//! the clients' packets in it (issue 11): hand-built captures of a GUE deployment (director
//! 172.25.67.1 wraps UDP queries to VIP 172.25.67.100:53 in GUE to port 6080 of real server
//! 172.25.67.2, which answers the client directly) taken at the client, the director and the
//! real server. Every expected value comes from what is written here.

mod capture_common;
mod decode_common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

mod corpus_common;

use capture_common::{Pcap, TempFile};
use decode_common::*;
use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::{analyse, Analysis, FlowOptions, Outcome};
use lvscheck::topology::{Proto, Role};
use serde_json::Value;

const MAC_CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 9];
const MAC_DIRECTOR: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_RS: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GUE_PORT: u16 = 6080;
/// Connections (one query and its answer each).
const QUERIES: u16 = 5;

fn ip4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// The three captures of the deployment, as pcap bytes: (client, director, real server).
fn captures() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut client = Pcap::new(false, false, 1, 65535);
    let mut director = Pcap::new(false, false, 1, 65535);
    let mut rs = Pcap::new(false, false, 1, 65535);
    for i in 0..QUERIES {
        let sec = 1 + u32::from(i);
        let port = 40000 + i;
        // A DNS query whose ID starts with 0x6: the shape a naive GUE test takes for a tunnel.
        let query = [0x61, i as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let mut sent = V4::new(CLIENT, VIP, 17);
        sent.id = 100 + i;
        let sent = sent.packet(&udp(port, 53, &query));
        let frame = ethernet(MAC_DIRECTOR, MAC_CLIENT, 0x0800, &sent);
        client.record(sec, 0, &frame, frame.len() as u32);
        director.record(sec, 10, &frame, frame.len() as u32);
        // IPVS: inner TTL one lower, outer TTL the same, outer ID 0; GUE variant 0, proto 4.
        let mut inner = V4::new(CLIENT, VIP, 17);
        inner.id = 100 + i;
        inner.ttl = 63;
        let inner = inner.packet(&udp(port, 53, &query));
        let mut gue = vec![0, 4, 0, 0];
        gue.extend_from_slice(&inner);
        let mut outer = V4::new(DIRECTOR, RS, 17);
        outer.id = 0;
        outer.ttl = 63;
        let wrapped = outer.packet(&udp(50000 + i, GUE_PORT, &gue));
        let frame = ethernet(MAC_RS, MAC_DIRECTOR, 0x0800, &wrapped);
        director.record(sec, 20, &frame, frame.len() as u32);
        rs.record(sec, 30, &frame, frame.len() as u32);
        let answer = V4::new(VIP, CLIENT, 17).packet(&udp(53, port, &[0x61, i as u8, 0x81, 0x80]));
        let frame = ethernet(MAC_CLIENT, MAC_RS, 0x0800, &answer);
        rs.record(sec, 40, &frame, frame.len() as u32);
        client.record(sec, 50, &frame, frame.len() as u32);
    }
    (client.bytes, director.bytes, rs.bytes)
}

struct Files {
    client: TempFile,
    director: TempFile,
    rs: TempFile,
}

fn files(tag: &str) -> Files {
    let (c, d, r) = captures();
    Files {
        client: TempFile::new(&format!("gue-{tag}-client.pcap"), &c),
        director: TempFile::new(&format!("gue-{tag}-director.pcap"), &d),
        rs: TempFile::new(&format!("gue-{tag}-rs.pcap"), &r),
    }
}

/// The analysis `flows` runs: GUE on `ports` (--gue-port, the rules' --tun-port), probed on
/// every other port.
fn flows(paths: &[&Path], ports: &[u16]) -> Analysis {
    let sources: Vec<CaptureSource> = paths.iter().map(CaptureSource::from_arg).collect();
    let decode = DecodeOptions {
        gue_ports: ports.to_vec(),
        gue_probe: true,
        ..DecodeOptions::default()
    };
    analyse(&sources, decode, &FlowOptions::default())
}

fn assert_gue_deployment(a: &Analysis) {
    let t = &a.topology;
    assert_eq!(t.vips.len(), 1);
    assert_eq!(t.vips[0].addr, ip4(VIP));
    assert_eq!(t.services.len(), 1, "{:?}", t.services);
    assert_eq!((t.services[0].port, t.services[0].proto), (53, Proto::UDP));
    assert_eq!(t.directors.len(), 1);
    assert_eq!(t.directors[0].addr, ip4(DIRECTOR));
    assert_eq!(t.real_servers.len(), 1);
    assert_eq!(t.real_servers[0].addr, ip4(RS));
    assert_eq!(a.connections.len(), usize::from(QUERIES));
    for c in &a.connections {
        assert_eq!(c.real_server, Some(ip4(RS)), "{c:?}");
        assert_eq!(c.vip.port(), 53);
    }
}

#[test]
fn the_directors_capture_confirms_its_gue_port() {
    let f = files("director");
    let a = flows(&[&f.director.0], &[]);
    assert_eq!(a.topology.gue.len(), 1, "{:?}", a.topology.gue);
    let g = &a.topology.gue[0];
    assert!(g.confirmed, "{}", g.reason);
    assert_eq!((g.source, g.port), (ip4(DIRECTOR), GUE_PORT));
    assert_eq!(g.destinations, [ip4(RS)]);
    assert_eq!(g.datagrams, u64::from(QUERIES));
    assert!(g.reason.contains("172.25.254.67:40000"), "{}", g.reason);
    assert_gue_deployment(&a);
    assert_eq!(a.topology.vantages[0].role, Role::Director);
    // The client queries' IDs start with 6, their payloads are no GUE: nothing else found.
    assert!(a.topology.gue.iter().all(|g| g.port == GUE_PORT));
}

#[test]
fn the_client_capture_confirms_what_the_real_server_received() {
    let f = files("client-rs");
    let a = flows(&[&f.client.0, &f.rs.0], &[]);
    let g: Vec<_> = a.topology.gue.iter().filter(|g| g.confirmed).collect();
    assert_eq!(g.len(), 1, "{:?}", a.topology.gue);
    assert_eq!((g[0].source, g[0].port), (ip4(DIRECTOR), GUE_PORT));
    assert_gue_deployment(&a);
    assert!(a
        .connections
        .iter()
        .all(|c| c.outcome == Outcome::Completed));
}

#[test]
fn the_real_servers_capture_alone_cannot_confirm_it() {
    let f = files("rs");
    let a = flows(&[&f.rs.0], &[]);
    assert_eq!(a.topology.gue.len(), 1);
    let g = &a.topology.gue[0];
    assert!(!g.confirmed);
    assert!(g.reason.contains("--gue-port 6080"), "{}", g.reason);
    assert!(a.topology.directors.is_empty(), "no tunnel was decoded");
    // The limits say so, and what to do.
    assert!(
        a.topology
            .limits
            .iter()
            .any(|l| l.contains("not confirmed") && l.contains("--gue-port 6080")),
        "{:?}",
        a.topology.limits
    );
    assert!(a.topology.real_servers.is_empty());
    // Named, the port is decoded: the same capture shows the deployment.
    let a = flows(&[&f.rs.0], &[GUE_PORT]);
    assert!(a.topology.gue.is_empty());
    assert_gue_deployment(&a);
    assert_eq!(a.topology.vantages[0].role, Role::RealServer);
}

fn connections(json_lines: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(json_lines)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["record"] == "connection")
        .collect()
}

#[test]
fn the_rules_name_the_gue_port() {
    let f = files("rules");
    let rules = TempFile::new(
        "gue-rules.txt",
        b"-A -u 172.25.67.100:53 -s rr\n\
          -a -u 172.25.67.100:53 -r 172.25.67.2:53 -i --tun-type gue --tun-port 6080 -w 1\n",
    );
    let rs = f.rs.0.to_str().unwrap();
    // Alone, the capture shows answers from the VIP but no tunnel.
    let alone = corpus_common::lvscheck(&["flows", "--json", rs]);
    let topology: Value =
        serde_json::from_str(String::from_utf8_lossy(&alone).lines().next().unwrap()).unwrap();
    assert_eq!(topology["topology"]["directors"], serde_json::json!([]));
    assert_eq!(topology["topology"]["gue"][0]["confirmed"], false);
    let with_rules = connections(&corpus_common::lvscheck(&[
        "flows",
        "--json",
        "--rules",
        rules.0.to_str().unwrap(),
        rs,
    ]));
    assert_eq!(with_rules.len(), usize::from(QUERIES));
    assert!(with_rules.iter().all(|c| c["real_server"] == "172.25.67.2"));
    let with_port = connections(&corpus_common::lvscheck(&[
        "flows",
        "--json",
        "--gue-port",
        "6080",
        rs,
    ]));
    assert_eq!(with_port.len(), usize::from(QUERIES));
}

#[test]
fn inspect_counts_confirmed_gue_and_names_what_it_did_not_confirm() {
    let f = files("inspect");
    let (director, rs) = (f.director.0.to_str().unwrap(), f.rs.0.to_str().unwrap());
    // The director's capture confirms the port for both captures.
    let doc: Value = serde_json::from_slice(&corpus_common::lvscheck(&[
        "inspect", "--json", director, rs,
    ]))
    .unwrap();
    for c in doc["captures"].as_array().unwrap() {
        let layers = &c["layers_per_interface"][0];
        assert_eq!(
            layers["tunnels"]["gue"],
            u64::from(QUERIES),
            "{}",
            c["file"]
        );
        assert_eq!(c["gue"][0]["confirmed"], true);
    }
    // The director's capture: the client's queries and the GUE datagrams, all UDP.
    assert_eq!(
        doc["captures"][0]["layers_per_interface"][0]["udp"],
        2 * u64::from(QUERIES)
    );
    // The real server's capture alone: GUE-shaped, not confirmed, not counted as a tunnel.
    let text = String::from_utf8(corpus_common::lvscheck(&["inspect", rs])).unwrap();
    assert!(!text.contains("tunnel GUE"), "{text}");
    assert!(
        text.contains("GUE-shaped UDP on port 6080 from 172.25.67.1 to 172.25.67.2 (5 datagrams), not confirmed"),
        "{text}"
    );
    let text = String::from_utf8(corpus_common::lvscheck(&[
        "inspect",
        "--gue-port",
        "6080",
        rs,
    ]))
    .unwrap();
    assert!(text.contains("tunnel GUE"), "{text}");
    assert!(!text.contains("not confirmed"), "{text}");
}
