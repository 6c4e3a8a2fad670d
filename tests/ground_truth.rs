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
    /// Only for role "mirror" (a bridge or SPAN port): the hosts whose packets it holds.
    #[serde(default)]
    mirrors: Vec<String>,
}

struct Fixture {
    dir: PathBuf,
    rules: Rules,
    nosort: Rules,
    conns: Vec<ConnEntry>,
    hosts: HostsFile,
}

/// `LVSCHECK_FIXTURES=DIR` checks a re-recording (`FIXTURES=DIR lab/record-all.sh`)
/// before it replaces the committed corpus.
fn fixtures_root() -> PathBuf {
    match std::env::var_os("LVSCHECK_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
    }
}

/// The hand-written READMEs live in the committed corpus only.
fn committed_corpus() -> bool {
    std::env::var_os("LVSCHECK_FIXTURES").is_none()
}

/// The recordings: every folder of fixtures/ but `derived/`, which holds capture mistakes made
/// from them (fixtures/derived/README.md) and no ground truth of its own.
fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .expect("fixtures/ exists")
        .map(|e| e.unwrap().path())
        // fixtures/derived holds captures made from the lab's with tcpdump, editcap and
        // mergecap: no lab recording, no tables of their own.
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "derived"))
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
    // ipvsadm 1.31 names the tunnel type in -Sn.
    assert!(
        f.rules.services[0]
            .servers
            .iter()
            .all(|r| r.tunnel_type.as_deref() == Some("ipip")),
        "{name}: --tun-type ipip"
    );
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
        if committed_corpus() {
            assert!(dir.join("README.md").is_file(), "{name}: README.md");
        }
        // Every connection belongs to a configured service and server. A firewall-mark
        // service has no address: `-Lnc` shows the connection's VIP and port, and its
        // servers have port 0 (each connection keeps its own).
        for c in &f.conns {
            // A persistence template the kernel retired (ip_vs_check_template: its server
            // quiesced with expire_quiescent_template=1) keeps its client port 0 and has its
            // VIP and server ports set to 65535, so that nothing matches it any more
            // (fixtures/drain-persist-fixed).
            if c.client.port() == 0 && c.vip.port() == 65535 && c.rs.port() == 65535 {
                continue;
            }
            let svc = f.rules.services.iter().find(|s| s.vip() == Some(c.vip));
            let marked =
                f.rules.services.iter().find(|s| {
                    s.vip().is_none() && s.servers.iter().any(|r| r.addr.ip() == c.rs.ip())
                });
            match (svc, marked) {
                (Some(svc), _) => assert!(
                    svc.servers.iter().any(|r| r.addr == c.rs),
                    "{name}: connection to unknown server {}",
                    c.rs
                ),
                (None, Some(m)) => assert!(
                    m.servers.iter().all(|r| r.addr.port() == 0),
                    "{name}: fwmark servers have port 0"
                ),
                (None, None) => panic!("{name}: connection to unknown VIP {}", c.vip),
            }
        }
        // hosts.json names files that exist, and every capture in the folder is named.
        let listed: BTreeSet<&str> = f.hosts.captures.iter().map(|h| h.file.as_str()).collect();
        for h in &f.hosts.captures {
            assert!(dir.join(&h.file).is_file(), "{name}: {} exists", h.file);
            assert!(
                ["director", "real-server", "client", "mirror"].contains(&h.role.as_str()),
                "{name}: role {}",
                h.role
            );
            // A mirror names the hosts it holds, each a host of the same fixture, and
            // carries their addresses; only a mirror names hosts.
            if h.role == "mirror" {
                assert!(!h.mirrors.is_empty(), "{name}: {} mirrors hosts", h.file);
                for m in &h.mirrors {
                    let host = f
                        .hosts
                        .captures
                        .iter()
                        .find(|o| &o.host == m && o.role != "mirror")
                        .unwrap_or_else(|| panic!("{name}: {} mirrors unknown host {m}", h.file));
                    assert!(
                        host.ips.iter().all(|a| h.ips.contains(a)),
                        "{name}: {} holds the addresses of {m}",
                        h.file
                    );
                }
            } else {
                assert!(h.mirrors.is_empty(), "{name}: {} is no mirror", h.file);
            }
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
        // A firewall-mark service names no address: its connections' VIPs stand for it.
        let vips = f
            .rules
            .services
            .iter()
            .filter_map(|s| s.vip())
            .chain(f.conns.iter().map(|c| c.vip));
        for vip in vips {
            assert!(
                director_vips.contains(&vip.ip()),
                "{name}: director has VIP {vip}"
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

/// The failure scenarios share one plan (lab/guest/lib.sh `four_hosts`, `rr_service`):
/// VIP 10.7.0.100, rr, rs1 10.7.0.11 added before rs2 10.7.0.12, client 10.7.0.200.
fn assert_failure_plan(f: &Fixture, proto: Proto, port: u16) {
    let vip = format!("10.7.0.100:{port}");
    let rs1 = format!("10.7.0.11:{port}");
    let rs2 = format!("10.7.0.12:{port}");
    assert_configured(
        f,
        &Configured {
            proto,
            vip: &vip,
            scheduler: "rr",
            persistence: None,
            servers: &[(&rs1, 1), (&rs2, 1)],
        },
    );
    // A mirror port (span-rp-filter) is no host of the plan; its test checks it.
    let roles: BTreeMap<&str, &str> = f
        .hosts
        .captures
        .iter()
        .filter(|h| h.role != "mirror")
        .map(|h| (h.host.as_str(), h.role.as_str()))
        .collect();
    assert_eq!(
        roles,
        BTreeMap::from([
            ("client", "client"),
            ("director", "director"),
            ("rs1", "real-server"),
            ("rs2", "real-server"),
        ])
    );
}

/// `requests` connections scheduled by rr over two servers: half each.
fn assert_rr_halves(f: &Fixture, requests: usize, port: u16) {
    let name = f.dir.display();
    let conns: Vec<&ConnEntry> = f.conns.iter().filter(|c| !c.is_template()).collect();
    assert_eq!(conns.len(), requests, "{name}: one entry per request");
    assert!(conns.iter().all(|c| c.client.ip() == ip("10.7.0.200")));
    let counts = per_server(&f.conns);
    for rs in ["10.7.0.11", "10.7.0.12"] {
        let addr = SocketAddr::new(ip(rs), port);
        assert_eq!(counts.get(&addr), Some(&(requests / 2)), "{name}: {addr}");
    }
}

#[test]
fn arp_vip() {
    let f = fixture("arp-vip");
    assert_failure_plan(&f, Proto::Tcp, 80);
    // rs2's ARP answers won both times: every request bypassed the director.
    assert!(f.conns.is_empty());
}

#[test]
fn rp_filter() {
    let f = fixture("rp-filter");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 4, 80);
}

#[test]
fn no_vip() {
    let f = fixture("no-vip");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 4, 80);
}

#[test]
fn reply_via_director() {
    let f = fixture("reply-via-director");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 4, 80);
}

#[test]
fn not_listening_tcp() {
    let f = fixture("not-listening-tcp");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 6, 80);
}

#[test]
fn not_listening_udp() {
    let f = fixture("not-listening-udp");
    assert_failure_plan(&f, Proto::Udp, 5300);
    assert_rr_halves(&f, 6, 5300);
    assert!(f
        .conns
        .iter()
        .all(|c| c.proto == Proto::Udp && c.state == "UDP"));
}

#[test]
fn udp_wildcard() {
    let f = fixture("udp-wildcard");
    assert_failure_plan(&f, Proto::Udp, 5300);
    assert_rr_halves(&f, 6, 5300);
}

#[test]
fn mtu() {
    let f = fixture("mtu");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_eq!(f.conns.len(), 3, "three POSTs");
}

#[test]
fn arp_vip_late() {
    let f = fixture("arp-vip-late");
    assert_failure_plan(&f, Proto::Tcp, 80);
    // Only the six requests before rs2 lost its arptables rules crossed the director.
    assert_rr_halves(&f, 6, 80);
}

fn three_servers<'a>(weights: [u32; 3]) -> [(&'a str, u32); 3] {
    [
        ("10.7.0.11:80", weights[0]),
        ("10.7.0.12:80", weights[1]),
        ("10.7.0.13:80", weights[2]),
    ]
}

#[test]
fn wlc_long() {
    let f = fixture("wlc-long");
    assert_configured(
        &f,
        &Configured {
            proto: Proto::Tcp,
            vip: "10.7.0.100:80",
            scheduler: "wlc",
            persistence: None,
            servers: &three_servers([1, 1, 2]),
        },
    );
    assert_eq!(f.conns.len(), 8, "eight long requests");
}

/// Each client address stays on one server; returns client -> server.
fn sticky(f: &Fixture) -> BTreeMap<IpAddr, SocketAddr> {
    let mut m = BTreeMap::new();
    for c in f.conns.iter().filter(|c| !c.is_template()) {
        let rs = *m.entry(c.client.ip()).or_insert(c.rs);
        assert_eq!(
            rs,
            c.rs,
            "{}: {} stays on one server",
            f.dir.display(),
            c.client
        );
    }
    m
}

#[test]
fn sh_clients() {
    let f = fixture("sh-clients");
    assert_configured(
        &f,
        &Configured {
            proto: Proto::Tcp,
            vip: "10.7.0.100:80",
            scheduler: "sh",
            persistence: None,
            servers: &three_servers([1, 1, 1]),
        },
    );
    // Eight client addresses, two requests each, each address on one server.
    assert_eq!(f.conns.len(), 16);
    let clients: BTreeSet<IpAddr> = (200..208).map(|i| ip(&format!("10.7.0.{i}"))).collect();
    let map = sticky(&f);
    assert_eq!(map.keys().copied().collect::<BTreeSet<_>>(), clients);
}

#[test]
fn persistence() {
    let f = fixture("persistence");
    assert_configured(
        &f,
        &Configured {
            proto: Proto::Tcp,
            vip: "10.7.0.100:80",
            scheduler: "rr",
            persistence: Some(120),
            servers: &[("10.7.0.11:80", 1), ("10.7.0.12:80", 1)],
        },
    );
    // Five requests per client plus one template per client.
    let templates: Vec<&ConnEntry> = f.conns.iter().filter(|c| c.is_template()).collect();
    assert_eq!(templates.len(), 2);
    assert_eq!(f.conns.len() - templates.len(), 10);
    let map = sticky(&f);
    assert_eq!(map.len(), 2);
    // rr runs once per client (the template holds it afterwards): two different servers.
    let servers: BTreeSet<SocketAddr> = map.values().copied().collect();
    assert_eq!(servers.len(), 2);
    for t in templates {
        assert_eq!(map[&t.client.ip()], t.rs, "template and connections agree");
    }
}

#[test]
fn span_rp_filter() {
    let f = fixture("span-rp-filter");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 10, 80);
    // The per-host captures of rp-filter plus one bridge capture holding all four hosts.
    let mirrors: Vec<&HostEntry> = f
        .hosts
        .captures
        .iter()
        .filter(|h| h.role == "mirror")
        .collect();
    assert_eq!(mirrors.len(), 1);
    let m = mirrors[0];
    assert_eq!(
        (m.file.as_str(), m.interface.as_str(), m.link_type.as_str()),
        ("span.pcap", "br0", "ethernet")
    );
    assert_eq!(m.mirrors, ["director", "rs1", "rs2", "client"]);
    assert_eq!(
        m.ips,
        ["10.7.0.1", "10.7.0.11", "10.7.0.12", "10.7.0.200"].map(ip)
    );
    assert_eq!(m.vips, [ip("10.7.0.100")]);
}

#[test]
fn dr_server() {
    let f = fixture("dr-server");
    let name = f.dir.display();
    // rs1 added with -i, rs2 with -g: the rules say so, in both listings.
    for (label, rules) in [("rules.txt", &f.rules), ("rules-nosort.txt", &f.nosort)] {
        assert_eq!(rules.services.len(), 1, "{name}/{label}");
        let s = &rules.services[0];
        assert_eq!(
            s.service,
            VirtualService::Addr {
                proto: Proto::Tcp,
                vip: sa("10.7.0.100:80")
            },
            "{name}/{label}"
        );
        assert_eq!(s.scheduler, "rr", "{name}/{label}");
        let forward: BTreeMap<SocketAddr, Forward> =
            s.servers.iter().map(|r| (r.addr, r.forward)).collect();
        assert_eq!(
            forward,
            BTreeMap::from([
                (sa("10.7.0.11:80"), Forward::Tunnel),
                (sa("10.7.0.12:80"), Forward::Route),
            ]),
            "{name}/{label}"
        );
        assert!(s.servers.iter().all(|r| r.weight == 1), "{name}/{label}");
    }
    // Only the tunnelled server has a tunnel type.
    let tun: Vec<(SocketAddr, Option<&str>)> = f.rules.services[0]
        .servers
        .iter()
        .map(|r| (r.addr, r.tunnel_type.as_deref()))
        .collect();
    assert_eq!(
        tun,
        [
            (sa("10.7.0.11:80"), Some("ipip")),
            (sa("10.7.0.12:80"), None)
        ]
    );
    let kernel_order: Vec<SocketAddr> = f.nosort.services[0]
        .servers
        .iter()
        .map(|r| r.addr)
        .collect();
    assert_eq!(kernel_order, [sa("10.7.0.12:80"), sa("10.7.0.11:80")]);
    // The director schedules by rr whatever the forwarding method: ten requests, 5/5.
    assert_rr_halves(&f, 10, 80);
    let roles: BTreeSet<&str> = f.hosts.captures.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(roles, BTreeSet::from(["client", "director", "rs1", "rs2"]));
}

#[test]
fn port_filter() {
    let f = fixture("port-filter");
    assert_failure_plan(&f, Proto::Tcp, 80);
    assert_rr_halves(&f, 10, 80);
}
