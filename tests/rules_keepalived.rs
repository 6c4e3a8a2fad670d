//! keepalived.conf given as `--rules`: the services, methods, weights and schedulers each
//! configuration's text states, as lvscheck reads them. Expected values are read off the
//! configuration texts (quoted next to each assertion), never off lvscheck's output.

use std::net::SocketAddr;
use std::path::Path;

use lvscheck::topology::keepalived::{is_keepalived, parse, MemoryFiles};
use lvscheck::topology::rules::{
    read_rules, Forward, ParseError, Proto, Rules, RulesError, ServiceRule, VirtualService,
};

mod verify_common;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keepalived");

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn read(rel: &str) -> Rules {
    let path = format!("{DATA}/{rel}");
    read_rules(Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
}

fn tcp(vip: &str) -> VirtualService {
    VirtualService::Addr {
        proto: Proto::Tcp,
        vip: sa(vip),
    }
}

/// (address, forwarding, weight) of each server, in the rules' order.
fn servers(s: &ServiceRule) -> Vec<(SocketAddr, Forward, u32)> {
    s.servers
        .iter()
        .map(|r| (r.addr, r.forward, r.weight))
        .collect()
}

/// Parses `text` as /etc/keepalived/keepalived.conf beside `others` (path, text).
fn parse_mem(text: &str, others: &[(&str, &str)]) -> Result<Rules, ParseError> {
    let files = others
        .iter()
        .fold(MemoryFiles::default(), |f, (p, t)| f.with(p, t));
    parse(text, Path::new("/etc/keepalived/keepalived.conf"), &files)
}

fn err(text: &str) -> ParseError {
    match parse_mem(text, &[]) {
        Ok(r) => panic!("parsed: {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn keepalived_sample_nat_service_with_a_sorry_server() {
    // virtual_server 10.10.10.2 1358 { lb_algo rr; lb_kind NAT; persistence_timeout 50;
    // protocol TCP; sorry_server 192.168.200.200 1358; real_server 192.168.200.2 1358 {
    // weight 1; HTTP_GET {...} } }, after global_defs and a vrrp_instance.
    let r = read("samples/keepalived.conf.sample");
    assert_eq!(r.services.len(), 1);
    let s = &r.services[0];
    assert_eq!(s.service, tcp("10.10.10.2:1358"));
    assert_eq!(s.scheduler, "rr");
    assert_eq!(s.persistence, Some(50));
    assert_eq!(servers(s), [(sa("192.168.200.2:1358"), Forward::Masq, 1)]);
    let sorry = s.sorry_server.as_ref().expect("sorry_server kept");
    assert_eq!(sorry.addr, sa("192.168.200.200:1358"));
    assert_eq!(sorry.forward, Forward::Masq);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn keepalived_sample_fwmark() {
    // virtual_server fwmark 1 { lb_algo rr; lb_kind NAT; persistence_timeout 900; protocol
    // TCP; real_server 192.168.201.100 { weight 1 }; real_server 192.168.201.101 { weight 1 } }
    let r = read("samples/keepalived.conf.fwmark");
    let s = &r.services[0];
    assert_eq!(
        s.service,
        VirtualService::FwMark {
            mark: 1,
            ipv6: false
        }
    );
    assert_eq!((s.scheduler.as_str(), s.persistence), ("rr", Some(900)));
    // Added .100 then .101: the kernel's list has .101 first. NAT keeps the port given (none).
    assert_eq!(
        servers(s),
        [
            (sa("192.168.201.101:0"), Forward::Masq, 1),
            (sa("192.168.201.100:0"), Forward::Masq, 1)
        ]
    );
}

#[test]
fn keepalived_sample_virtual_server_group() {
    // virtual_server_group VSG_1 { 10.0.0.1 8080; 10.0.0.2 80; 192.168.200.1 1358;
    // 192.168.200.3-10 80; fwmark 1; fwmark 2 } and virtual_server group VSG_1 { lb_algo rr;
    // lb_kind NAT; persistence_timeout 50; protocol TCP; real_server 192.168.200.1 1358;
    // real_server 192.168.200.2 1358 }
    let r = read("samples/keepalived.conf.virtual_server_group");
    let mut expected: Vec<VirtualService> = vec![
        tcp("10.0.0.1:8080"),
        tcp("10.0.0.2:80"),
        tcp("192.168.200.1:1358"),
    ];
    expected.extend((3..=10).map(|i| tcp(&format!("192.168.200.{i}:80"))));
    expected.extend([1, 2].map(|mark| VirtualService::FwMark { mark, ipv6: false }));
    let got: Vec<VirtualService> = r.services.iter().map(|s| s.service).collect();
    assert_eq!(got, expected);
    for s in &r.services {
        assert_eq!((s.scheduler.as_str(), s.persistence), ("rr", Some(50)));
        assert_eq!(
            servers(s),
            [
                (sa("192.168.200.2:1358"), Forward::Masq, 1),
                (sa("192.168.200.1:1358"), Forward::Masq, 1)
            ]
        );
    }
}

#[test]
fn keepalived_sample_ipv6() {
    // virtual_server ae00::1 80 { lb_algo rr; lb_kind NAT; persistence_timeout 50; protocol
    // TCP; real_server ae00::10 25 { weight 1; SMTP_CHECK {...} } } (the group is unused).
    let r = read("samples/keepalived.conf.IPv6");
    assert_eq!(r.services.len(), 1);
    let s = &r.services[0];
    assert_eq!(s.service, tcp("[ae00::1]:80"));
    assert_eq!(servers(s), [(sa("[ae00::10]:25"), Forward::Masq, 1)]);
}

#[test]
fn keepalived_sample_quorum_with_alpha_has_no_known_order() {
    // virtual_server 10.0.1.1 80 { lb_algo wrr; lb_kind NAT; persistence_timeout 900;
    // protocol TCP; alpha; ... real_server 10.0.0.1 8080 ... real_server 10.0.0.10 8080 }
    let r = read("samples/keepalived.conf.quorum");
    let s = &r.services[0];
    assert_eq!(s.scheduler, "wrr");
    let addrs: Vec<SocketAddr> = s.servers.iter().map(|r| r.addr).collect();
    let mut sorted = addrs.clone();
    sorted.sort();
    assert_eq!(addrs.len(), 10);
    assert_eq!(addrs, sorted, "alpha: servers sorted (order unknown)");
    assert!(s.servers.iter().all(|r| r.weight == 1));
    assert!(r.notes.iter().any(|n| n.contains("alpha")), "{:?}", r.notes);
}

#[test]
fn keepalived_sample_with_vrrp_only_holds_no_service() {
    let path = format!("{DATA}/samples/keepalived.conf.conditional_conf");
    let e = read_rules(Path::new(&path)).unwrap_err();
    assert!(matches!(e, RulesError::NoKeepalivedService { .. }), "{e}");
}

#[test]
fn tunnels_through_an_include_glob() {
    let r = read("tun/keepalived.conf");
    assert_eq!(r.services.len(), 3, "{:?}", r.services);
    // conf.d/10-web.conf: virtual_server $VIP 80 { lvs_sched wrr; lvs_method TUN; protocol
    // TCP; real_server 172.25.67.2 80 { weight 1 }; real_server 172.25.67.3 80 { weight 2 } }
    let web = &r.services[0];
    assert_eq!(web.service, tcp("172.25.67.100:80"));
    assert_eq!(web.scheduler, "wrr");
    assert_eq!(
        servers(web),
        [
            (sa("172.25.67.3:80"), Forward::Tunnel, 2),
            (sa("172.25.67.2:80"), Forward::Tunnel, 1)
        ]
    );
    assert!(web
        .servers
        .iter()
        .all(|s| s.tunnel_type.as_deref() == Some("ipip") && s.tunnel_port.is_none()));
    // conf.d/20-gue.conf: lb_kind TUN type gue port 6080 csum; persistence_timeout (no value);
    // persistence_granularity 255.255.255.0; real_server .4 { weight 3 }; real_server .5 {
    // lvs_method TUN type gre }; sorry_server 172.25.67.9 443
    let gue = &r.services[1];
    assert_eq!(gue.service, tcp("172.25.67.100:443"));
    assert_eq!(gue.scheduler, "wlc");
    assert_eq!(gue.persistence, Some(360));
    assert_eq!(gue.netmask.as_deref(), Some("255.255.255.0"));
    let kinds: Vec<_> = gue
        .servers
        .iter()
        .map(|s| (s.addr, s.weight, s.tunnel_type.as_deref(), s.tunnel_port))
        .collect();
    assert_eq!(
        kinds,
        [
            (sa("172.25.67.5:443"), 1, Some("gre"), None),
            (sa("172.25.67.4:443"), 3, Some("gue"), Some(6080))
        ]
    );
    let sorry = gue.sorry_server.as_ref().unwrap();
    assert_eq!(
        (sorry.addr, sorry.tunnel_type.as_deref()),
        (sa("172.25.67.9:443"), Some("gue"))
    );
    assert_eq!(r.gue_ports(), [6080]);
    // conf.d/30-fwmark6.conf: virtual_server fwmark 7 { ip_family inet6; lvs_sched sh;
    // sh-port; lvs_method TUN; real_server 2001:db8::2 {}; real_server 2001:db8::3 {} }
    let fw = &r.services[2];
    assert_eq!(
        fw.service,
        VirtualService::FwMark {
            mark: 7,
            ipv6: true
        }
    );
    assert_eq!(
        (fw.scheduler.as_str(), fw.sched_flags.clone()),
        ("sh", vec!["sh-port".to_string()])
    );
    assert_eq!(
        servers(fw),
        [
            (sa("[2001:db8::3]:0"), Forward::Tunnel, 1),
            (sa("[2001:db8::2]:0"), Forward::Tunnel, 1)
        ]
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn the_tutorials_director_as_keepalived_sets_it_up() {
    // The kernel order is the one `ipvsadm -Ln --nosort` printed on that director.
    let ka = read("tutorial.conf");
    let root = env!("CARGO_MANIFEST_DIR");
    let nosort = read_rules(Path::new(&format!(
        "{root}/fixtures/tutorial/rules-nosort.txt"
    )))
    .unwrap();
    assert_eq!(ka.services.len(), 1);
    assert_eq!(ka.services[0].service, nosort.services[0].service);
    assert_eq!(ka.services[0].scheduler, nosort.services[0].scheduler);
    assert_eq!(servers(&ka.services[0]), servers(&nosort.services[0]));

    // And `verify` with it passes, rr reproduced in that order.
    let mut args: Vec<String> = ["client", "server1", "server2", "server3"]
        .iter()
        .map(|c| format!("fixtures/tutorial/{c}.pcap"))
        .collect();
    args.extend([
        "--rules".into(),
        "tests/data/keepalived/tutorial.conf".into(),
    ]);
    let (code, doc) = verify_common::verify(&args);
    assert_eq!(code, 0, "{doc}");
    let reason = verify_common::check(&doc, "scheduler")["reason"].to_string();
    assert!(
        reason.contains("10 of 10 assignments reproduced"),
        "{reason}"
    );
}

#[test]
fn told_apart_from_ipvsadm_output_by_content() {
    assert!(is_keepalived(
        "! Configuration File for keepalived\n\nglobal_defs {\n}\n"
    ));
    assert!(is_keepalived("# x\nvirtual_server 1.2.3.4 80 {\n"));
    assert!(is_keepalived("virtual_server_group G {\n"));
    assert!(is_keepalived("include /etc/keepalived/conf.d/*.conf\n"));
    assert!(is_keepalived("$VIP=10.0.0.1\n"));
    assert!(!is_keepalived("-A -t 172.25.67.100:80 -s rr\n"));
    assert!(!is_keepalived(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
    ));
    assert!(!is_keepalived("TCP  10.0.0.1:80 rr\n"));
    assert!(!is_keepalived("# only a comment\n"));
    assert!(!is_keepalived(""));
}

#[test]
fn defaults_keepalived_fills_in_are_noted() {
    let r = parse_mem(
        "virtual_server 10.0.0.1 53 {\n  real_server 10.0.0.2 53 {\n  }\n}\n\
         virtual_server 10.0.0.1 0 {\n  protocol TCP\n  lvs_method DR\n  real_server 10.0.0.3 {\n  }\n}\n",
        &[],
    )
    .unwrap();
    let s = &r.services[0];
    // No protocol: UDP; no lvs_sched: wlc; no lvs_method: NAT (keepalived's, with a log line).
    assert_eq!(s.proto(), Some(Proto::Udp));
    assert_eq!(s.scheduler, "wlc");
    assert_eq!(servers(s), [(sa("10.0.0.2:53"), Forward::Masq, 1)]);
    // Port 0 without persistence: made persistent; a DR server takes the service's port.
    let z = &r.services[1];
    assert_eq!(z.persistence, Some(360));
    assert_eq!(servers(z), [(sa("10.0.0.3:0"), Forward::Route, 1)]);
    let notes = r.notes.join("\n");
    for what in ["UDP", "wlc", "NAT", "persistent"] {
        assert!(notes.contains(what), "{what}: {notes}");
    }
    assert!(notes.contains("/etc/keepalived/keepalived.conf:1: virtual_server 10.0.0.1 53"));
}

#[test]
fn per_server_method_and_the_services_method_at_the_time() {
    // alloc_rs copies the service's method when the server is made: .2 is made before the
    // service's lvs_method and gets the last one (DR); .3 gets TUN, which it overrides with
    // NAT; .4 keeps TUN.
    let r = parse_mem(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_sched rr\n\
         real_server 10.0.0.2 80 {\n }\n lvs_method TUN\n\
         real_server 10.0.0.3 8080 {\n  lvs_method NAT\n weight 0\n }\n\
         real_server 10.0.0.4 80 {\n }\n lvs_method DR\n}\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        servers(&r.services[0]),
        [
            (sa("10.0.0.4:80"), Forward::Tunnel, 1),
            (sa("10.0.0.3:8080"), Forward::Masq, 0),
            (sa("10.0.0.2:80"), Forward::Route, 1)
        ]
    );
}

#[test]
fn group_ranges_and_subnets() {
    let r = parse_mem(
        "virtual_server_group G {\n 2001:db8::a-c 443\n 10.1.0.0/30 80\n 10.2.0.254-10.2.1.1 80\n fwmark 9 inet6\n}\n\
         virtual_server group G {\n protocol TCP\n lvs_sched rr\n lvs_method TUN\n\
         real_server 10.9.0.1 {\n }\n}\n",
        &[],
    )
    .unwrap();
    let got: Vec<VirtualService> = r.services.iter().map(|s| s.service).collect();
    let mut expected: Vec<VirtualService> = ["a", "b", "c"]
        .iter()
        .map(|h| tcp(&format!("[2001:db8::{h}]:443")))
        .collect();
    expected.extend((0..4).map(|i| tcp(&format!("10.1.0.{i}:80"))));
    expected.extend(
        ["10.2.0.254", "10.2.0.255", "10.2.1.0", "10.2.1.1"].map(|a| tcp(&format!("{a}:80"))),
    );
    expected.push(VirtualService::FwMark {
        mark: 9,
        ipv6: true,
    });
    assert_eq!(got, expected);
    // A tunnelled server takes each entry's port (none for the mark).
    assert_eq!(r.services[0].servers[0].addr, sa("10.9.0.1:443"));
    assert_eq!(r.services[3].servers[0].addr, sa("10.9.0.1:80"));
    assert_eq!(r.services[11].servers[0].addr, sa("10.9.0.1:0"));
}

#[test]
fn errors_name_the_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n    wieght 2\n  }\n}\n",
            3,
            "unknown keyword `wieght` in real_server",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n  lvs_mehtod TUN\n}\n",
            2,
            "unknown keyword `lvs_mehtod` in virtual_server",
        ),
        ("virtual_server 10.0.0.300 80 {\n}\n", 1, "bad address `10.0.0.300`"),
        (
            "virtual_server 10.0.0.1:80 {\n}\n",
            1,
            "two words",
        ),
        ("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n", 1, "not closed"),
        ("global_defs {\n}\n}\n", 3, "closes no block"),
        ("virtual_server 10.0.0.1 80\nlvs_sched rr\n", 1, "`{` expected"),
        (
            "virtual_server 10.0.0.1 80 {\n lvs_method TUN type gue\n}\n",
            2,
            "gue tunnel needs `port N`",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lvs_method TUN nocsum csum\n}\n",
            2,
            "ipip tunnels have no checksum",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lvs_method TUN type gre remcsum\n}\n",
            2,
            "gre tunnels have no remote checksum",
        ),
        ("virtual_server 10.0.0.1 80 {\n lvs_method IPIP\n}\n", 2, "NAT, DR or TUN"),
        ("virtual_server 10.0.0.1 80 {\n sh-port\n lvs_sched sh\n}\n", 2, "lvs_sched sh"),
        ("virtual_server 10.0.0.1 80 {\n lvs_sched roundrobin\n}\n", 2, "unknown scheduler"),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n weight -1\n }\n}\n",
            3,
            "whole number",
        ),
        ("virtual_server fwmark 0 {\n}\n", 1, "keepalived takes 0 for no mark"),
        (
            "virtual_server 10.0.0.1 80 {\n@node1 lvs_method TUN\n}\n",
            2,
            "config id",
        ),
        ("x {\n@node1 }\n}\n", 2, "config id"),
        (
            "virtual_server group G {\n real_server 10.0.0.2 80 {\n }\n}\n",
            1,
            "no virtual_server_group G",
        ),
        (
            "virtual_server_group G {\n 10.0.0.5-3 80\n}\n",
            2,
            "not above the start",
        ),
        (
            "virtual_server_group G {\n 10.0.0.1/24 80\n}\n",
            2,
            "past its prefix length",
        ),
        (
            "virtual_server_group G {\n 2001:db8::1-2001:db8:0:1::1 80\n}\n",
            2,
            "last 16 bits",
        ),
        (
            "virtual_server_group G {\n 10.0.0.0-10.1.0.0 80\n}\n",
            2,
            "at most 65536",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 2001:db8::2 80 {\n }\n}\n",
            2,
            "address family",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n real_server 10.0.0.2 {\n }\n lvs_method DR\n}\n",
            4,
            "appears twice",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n\
             virtual_server 10.0.0.1 80 {\n real_server 10.0.0.3 80 {\n }\n}\n",
            5,
            "repeats a service",
        ),
        (
            "global_defs {\n nftables_ipvs\n}\nvirtual_server_group G {\n 10.0.0.1 80\n}\n\
             virtual_server group G {\n real_server 10.0.0.2 80 {\n }\n}\n",
            7,
            "nftables_ipvs",
        ),
        ("virtual_server 10.0.0.1 80 {\n notify \"x\n}\n", 2, "unterminated quote"),
    ];
    for (text, line, what) in cases {
        let e = err(text);
        assert_eq!(
            (e.file.as_str(), e.line),
            ("/etc/keepalived/keepalived.conf", *line),
            "{text}: {e}"
        );
        assert!(e.message.contains(what), "{text}: {e}");
    }
}

#[test]
fn errors_in_an_included_file_name_that_file() {
    let main = "global_defs {\n}\ninclude conf.d/*.conf\n";
    let e = parse_mem(
        main,
        &[
            (
                "/etc/keepalived/conf.d/a.conf",
                "virtual_server 10.0.0.1 80 {\n",
            ),
            (
                "/etc/keepalived/conf.d/b.conf",
                " real_server 10.0.0.2 80 {\n  weight x\n }\n}\n",
            ),
        ],
    )
    .unwrap_err();
    // The block opened in a.conf closes in b.conf; the bad weight is b.conf's line 2.
    assert_eq!(
        (e.file.as_str(), e.line),
        ("/etc/keepalived/conf.d/b.conf", 2),
        "{e}"
    );
    let e = parse_mem("include /etc/keepalived/missing.conf\n", &[]).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("does not exist"), "{e}");
    let main = "\ninclude self.conf\n";
    let e = parse_mem(
        main,
        &[
            ("/etc/keepalived/keepalived.conf", main),
            ("/etc/keepalived/self.conf", "include keepalived.conf\n"),
        ],
    )
    .unwrap_err();
    assert!(e.message.contains("include cycle"), "{e}");
}

/// Any text, keepalived-looking or not: an error or rules, never a panic.
#[test]
fn no_panic_on_mangled_configurations() {
    let base = std::fs::read_to_string(format!(
        "{DATA}/samples/keepalived.conf.virtual_server_group"
    ))
    .unwrap()
        + &std::fs::read_to_string(format!("{DATA}/tun/conf.d/20-gue.conf")).unwrap();
    let bytes = base.as_bytes();
    for cut in (0..bytes.len()).step_by(7) {
        let text = String::from_utf8_lossy(&bytes[..cut]);
        let _ = parse_mem(&text, &[]);
        let mut swapped = base.clone().into_bytes();
        swapped[cut] = b"{}\"#!$@-/:~ \n"[cut % 13];
        let _ = parse_mem(&String::from_utf8_lossy(&swapped), &[]);
    }
}

/// A group repeats every server for each of its addresses: the expansion has a bound.
#[test]
fn group_expansion_is_bounded() {
    let group = "virtual_server_group G {\n 10.0.0.0/16 80\n}\n";
    let one = format!(
        "{group}virtual_server group G {{\n protocol TCP\n real_server 10.9.0.1 80 {{\n }}\n}}\n"
    );
    let r = parse_mem(&one, &[]).unwrap();
    assert_eq!(r.services.len(), 65_536);
    assert_eq!(r.services[65_535].service, tcp("10.0.255.255:80"));
    let many: String = (1..=17)
        .map(|i| format!(" real_server 10.9.0.{i} 80 {{\n }}\n"))
        .collect();
    let e = err(&format!(
        "{group}virtual_server group G {{\n protocol TCP\n{many}}}\n"
    ));
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("more than lvscheck reads"), "{e}");
}
