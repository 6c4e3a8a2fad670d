//! The fixtures' ground truth parses, and says what the scenarios configured.
//!
//! Every `fixtures/*/` directory holds the director's `ipvsadm -Sn` (rules.txt),
//! `ipvsadm -Ln --nosort` (rules-nosort.txt), `ipvsadm -Lnc` (conns.txt) and hosts.json
//! (which capture is which host: ground truth for tests, never read by lvscheck itself).
//! The expected facts below come from the scenario scripts in lab/scenarios/ (addresses,
//! schedulers, weights, order of `ipvsadm -a`, number of requests), not from parser output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use lvscheck::topology::rules::{
    read_conns, read_rules, ConnEntry, Forward, Proto, Rules, VirtualService,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct HostsFile {
    captures: Vec<HostEntry>,
}

#[derive(Debug, Deserialize)]
struct HostEntry {
    file: String,
    host: String,
    role: String,
    /// For captures without a link layer (tunl0), the MAC of the host's eth0.
    mac: String,
    interface: String,
    link_type: String,
    ips: Vec<IpAddr>,
    vips: Vec<IpAddr>,
    /// Only in merged pcapng files: which interface of the file is this host.
    #[serde(default)]
    pcapng_interface: Option<u32>,
}

struct Fixture {
    dir: PathBuf,
    rules: Rules,
    nosort: Rules,
    conns: Vec<ConnEntry>,
    hosts: HostsFile,
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .expect("fixtures/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn load(dir: &Path) -> Fixture {
    let rules = read_rules(&dir.join("rules.txt")).unwrap_or_else(|e| panic!("{e}"));
    let nosort = read_rules(&dir.join("rules-nosort.txt")).unwrap_or_else(|e| panic!("{e}"));
    let conns = read_conns(&dir.join("conns.txt")).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.join("hosts.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("hosts.json").display()));
    let hosts: HostsFile = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("hosts.json").display()));
    Fixture {
        dir: dir.to_path_buf(),
        rules,
        nosort,
        conns,
        hosts,
    }
}

fn fixture(name: &str) -> Fixture {
    load(&fixtures_root().join(name))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Connections (not persistence templates) per real server.
fn per_server(conns: &[ConnEntry]) -> BTreeMap<SocketAddr, usize> {
    let mut m = BTreeMap::new();
    for c in conns.iter().filter(|c| !c.is_template()) {
        *m.entry(c.rs).or_insert(0) += 1;
    }
    m
}

/// What a scenario configured on its director: one service, servers in the order added.
struct Configured<'a> {
    proto: Proto,
    vip: &'a str,
    scheduler: &'a str,
    persistence: Option<u32>,
    /// (address, weight) in the order of `ipvsadm -a`.
    servers: &'a [(&'a str, u32)],
}

fn assert_configured(f: &Fixture, want: &Configured) {
    let name = f.dir.display();
    for (label, rules) in [("rules.txt", &f.rules), ("rules-nosort.txt", &f.nosort)] {
        assert_eq!(rules.services.len(), 1, "{name}/{label}: one service");
        let s = &rules.services[0];
        assert_eq!(
            s.service,
            VirtualService::Addr {
                proto: want.proto,
                vip: sa(want.vip)
            },
            "{name}/{label}"
        );
        assert_eq!(s.scheduler, want.scheduler, "{name}/{label}");
        assert_eq!(s.persistence, want.persistence, "{name}/{label}");
        assert!(
            s.servers.iter().all(|r| r.forward == Forward::Tunnel),
            "{name}/{label}: every server in tunnel mode"
        );
        let got: BTreeSet<(SocketAddr, u32)> =
            s.servers.iter().map(|r| (r.addr, r.weight)).collect();
        let expected: BTreeSet<(SocketAddr, u32)> =
            want.servers.iter().map(|(a, w)| (sa(a), *w)).collect();
        assert_eq!(got, expected, "{name}/{label}: servers and weights");
    }
    // The kernel keeps servers in reverse order of adding (list_add_rcu at the head).
    let kernel_order: Vec<SocketAddr> = f.nosort.services[0]
        .servers
        .iter()
        .map(|r| r.addr)
        .collect();
    let added_reversed: Vec<SocketAddr> = want.servers.iter().rev().map(|(a, _)| sa(a)).collect();
    assert_eq!(
        kernel_order, added_reversed,
        "{name}: --nosort shows the kernel order"
    );
    // -Sn sorts by address.
    let saved: Vec<SocketAddr> = f.rules.services[0].servers.iter().map(|r| r.addr).collect();
    let mut sorted = saved.clone();
    sorted.sort();
    assert_eq!(saved, sorted, "{name}: ipvsadm -Sn sorts servers");
}

#[test]
fn every_fixture_has_parseable_ground_truth() {
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 2, "the corpus has fixtures");
    for dir in dirs {
        let f = load(&dir);
        let name = dir.display();
        assert!(
            !f.rules.services.is_empty(),
            "{name}: rules.txt has a service"
        );
        assert!(dir.join("README.md").is_file(), "{name}: README.md");
        // Every connection belongs to a configured service and server.
        for c in &f.conns {
            let svc = f
                .rules
                .services
                .iter()
                .find(|s| s.vip() == Some(c.vip))
                .unwrap_or_else(|| panic!("{name}: connection to unknown VIP {}", c.vip));
            assert!(
                svc.servers.iter().any(|r| r.addr == c.rs),
                "{name}: connection to unknown server {}",
                c.rs
            );
        }
        // hosts.json names files that exist, and every capture in the folder is named.
        let listed: BTreeSet<&str> = f.hosts.captures.iter().map(|h| h.file.as_str()).collect();
        for h in &f.hosts.captures {
            assert!(dir.join(&h.file).is_file(), "{name}: {} exists", h.file);
            assert!(
                ["director", "real-server", "client"].contains(&h.role.as_str()),
                "{name}: role {}",
                h.role
            );
            assert!(!h.ips.is_empty(), "{name}: {} has addresses", h.host);
            assert!(h.mac.len() == 17, "{name}: {} has a MAC", h.host);
            assert!(!h.interface.is_empty());
            if h.pcapng_interface.is_some() {
                assert!(
                    h.file.ends_with(".pcapng"),
                    "{name}: interface ids only in pcapng"
                );
            }
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let file = e.unwrap().file_name().into_string().unwrap();
            if file.contains(".pcap") {
                assert!(
                    listed.contains(file.as_str()),
                    "{name}: {file} in hosts.json"
                );
            }
        }
        // The director of hosts.json holds the VIPs of the rules; every client of the
        // connection table is a client host.
        let director_vips: BTreeSet<IpAddr> = f
            .hosts
            .captures
            .iter()
            .filter(|h| h.role == "director")
            .flat_map(|h| h.vips.iter().copied())
            .collect();
        for s in &f.rules.services {
            assert!(
                director_vips.contains(&s.vip().unwrap().ip()),
                "{name}: director has VIP"
            );
        }
        let client_ips: BTreeSet<IpAddr> = f
            .hosts
            .captures
            .iter()
            .filter(|h| h.role == "client")
            .flat_map(|h| h.ips.iter().copied())
            .collect();
        for c in &f.conns {
            assert!(
                client_ips.contains(&c.client.ip()),
                "{name}: client {}",
                c.client
            );
        }
    }
}

#[test]
fn tutorial() {
    let f = fixture("tutorial");
    assert_configured(
        &f,
        &Configured {
            proto: Proto::Tcp,
            vip: "172.25.67.100:80",
            scheduler: "rr",
            persistence: None,
            servers: &[("172.25.67.2:80", 1), ("172.25.67.3:80", 1)],
        },
    );
    // Ten requests from one client, rr over two servers: five each.
    assert_eq!(f.conns.len(), 10);
    assert!(f.conns.iter().all(|c| c.client.ip() == ip("172.25.254.67")));
    let counts = per_server(&f.conns);
    assert_eq!(counts.get(&sa("172.25.67.2:80")), Some(&5));
    assert_eq!(counts.get(&sa("172.25.67.3:80")), Some(&5));
    let director = f
        .hosts
        .captures
        .iter()
        .find(|h| h.role == "director")
        .unwrap();
    assert_eq!(
        (director.host.as_str(), director.file.as_str()),
        ("server1", "server1.pcap")
    );
    assert_eq!(director.ips, [ip("172.25.67.1")]);
}

#[test]
fn wrr() {
    let f = fixture("wrr");
    assert_configured(
        &f,
        &Configured {
            proto: Proto::Tcp,
            vip: "192.168.60.80:8080",
            scheduler: "wrr",
            persistence: None,
            servers: &[
                ("192.168.60.11:8080", 3),
                ("192.168.60.12:8080", 2),
                ("192.168.60.13:8080", 1),
            ],
        },
    );
    // 30 requests, weights 3:2:1: one each on the first pass, then 27 more in the 6-long
    // cycle, 15/10/5 in all.
    assert_eq!(f.conns.len(), 30);
    let counts = per_server(&f.conns);
    assert_eq!(counts[&sa("192.168.60.11:8080")], 15);
    assert_eq!(counts[&sa("192.168.60.12:8080")], 10);
    assert_eq!(counts[&sa("192.168.60.13:8080")], 5);
    let links: BTreeSet<&str> = f
        .hosts
        .captures
        .iter()
        .map(|h| h.link_type.as_str())
        .collect();
    assert_eq!(links, BTreeSet::from(["ethernet", "raw", "linux_sll2"]));
}
