//! The deployments beyond the tutorial, recorded in `lab/` (issue 13): GUE and GRE tunnels,
//! healthy and broken, a firewall-mark service, two VIPs with three services, keepalived's
//! rules. Each test asserts what the fixture's README says a correct verifier must report;
//! the counts come from the director's own connection table (`conns.txt`), never from
//! lvscheck's output.

mod verify_common;

use std::collections::BTreeMap;

use serde_json::Value;
use verify_common::{all_text, check, verify};

/// Connections per (virtual service, real server) in a fixture's `ipvsadm -Lnc`, templates
/// (client port 0) left out: `("10.7.0.100:80", "10.7.0.11")` -> 5.
fn table(fixture: &str) -> BTreeMap<(String, String), u64> {
    let path = format!("{}/fixtures/{fixture}/conns.txt", verify_common::root());
    let text = std::fs::read_to_string(&path).expect("conns.txt");
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 6 || w[3].ends_with(":0") {
            continue;
        }
        // `[2001:db8::1]:80` or `10.0.0.1:80`: the address without brackets.
        let rs = w[5].rsplit_once(':').unwrap().0;
        let rs = rs.trim_start_matches('[').trim_end_matches(']').to_string();
        *out.entry((w[4].to_string(), rs)).or_default() += 1;
    }
    out
}

/// Connections per (service without its protocol, real server) in lvscheck's report.
fn per_server(doc: &Value) -> BTreeMap<(String, String), u64> {
    doc["per_real_server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let svc = r["service"].as_str().unwrap();
            let svc = svc.split_once(' ').unwrap().1.to_string();
            let rs = r["real_server"].as_str().unwrap_or("?").to_string();
            ((svc, rs), r["connections"].as_u64().unwrap())
        })
        .collect()
}

fn files(fixture: &str) -> Vec<String> {
    let dir = format!("{}/fixtures/{fixture}", verify_common::root());
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".pcap"))
        .collect();
    v.sort();
    v
}

fn run(fixture: &str, rules: Option<&str>) -> (i32, Value) {
    let mut args = files(fixture);
    if let Some(r) = rules {
        args.push("--rules".into());
        args.push(format!("fixtures/{fixture}/{r}"));
    }
    verify(&args)
}

fn status<'a>(doc: &'a Value, id: &str) -> &'a str {
    check(doc, id)["status"].as_str().unwrap()
}

/// Every LVS check passes on all of the table's connections.
fn all_pass(fixture: &str, doc: &Value, connections: u64) {
    for id in [
        "tunnel.encapsulation",
        "tunnel.delivery",
        "reply.present",
        "reply.source",
        "reply.direct",
        "arp.vip",
        "bypass",
    ] {
        assert_eq!(
            status(doc, id),
            "pass",
            "{fixture}: {id}: {}",
            check(doc, id)
        );
    }
    assert_eq!(
        check(doc, "tunnel.encapsulation")["judged"].as_u64(),
        Some(connections),
        "{fixture}"
    );
}

/// The scheduler replay of each service: (matched, decisions) by the service's name.
fn replayed(doc: &Value) -> Vec<(u64, u64)> {
    doc["fairness"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let c = &s["conformance"];
            (
                c["matched"].as_u64().unwrap() + c["persistent_matched"].as_u64().unwrap(),
                c["decisions"].as_u64().unwrap() + c["persistent"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn gue_tunnels_are_verified_with_and_without_the_rules() {
    let truth = table("gue-healthy");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 10);
    for rules in [Some("rules.txt"), None] {
        let (code, doc) = run("gue-healthy", rules);
        assert_eq!(code, 0, "rules {rules:?}: {}", all_text(&doc));
        all_pass("gue-healthy", &doc, total);
        assert_eq!(per_server(&doc), truth, "rules {rules:?}");
        // The tunnel is named for what it is, its port from the rules or the traffic.
        let reason = check(&doc, "tunnel.encapsulation")["reason"]
            .as_str()
            .unwrap();
        assert!(reason.contains("GUE (UDP port 6080)"), "{reason}");
    }
    let (_, doc) = run("gue-healthy", Some("rules.txt"));
    assert_eq!(replayed(&doc), vec![(total, total)]);
}

#[test]
fn gre_tunnels_are_verified() {
    let truth = table("gre-healthy");
    let total: u64 = truth.values().sum();
    let (code, doc) = run("gre-healthy", Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass("gre-healthy", &doc, total);
    assert_eq!(per_server(&doc), truth);
    let reason = check(&doc, "tunnel.encapsulation")["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("GRE wrapped"), "{reason}");
    assert_eq!(replayed(&doc), vec![(total, total)]);
}

/// A real server that cannot take the tunnel answers it with ICMP, which the director
/// passes on: the finding says so, on that server, with the receiving side's setup as fix.
fn tunnel_refused(fixture: &str, rules: Option<&str>, fix: &str) {
    // conns.txt: the connections rs2 never took stay in SYN_RECV.
    let path = format!("{}/fixtures/{fixture}/conns.txt", verify_common::root());
    let stuck = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("SYN_RECV") && l.ends_with("10.7.0.12:80"))
        .count() as u64;
    assert_eq!(stuck, 5);
    let (code, doc) = run(fixture, rules);
    assert_eq!(code, 1, "{fixture}");
    let present = check(&doc, "reply.present");
    assert_eq!(present["status"], "fail");
    let findings = present["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{fixture}: {findings:#?}");
    let f = &findings[0];
    assert!(f["host"].as_str().unwrap().contains("10.7.0.12"), "{f}");
    assert_eq!(f["count"].as_u64(), Some(stuck));
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("refused by its kernel"), "{summary}");
    assert!(f["fix"].as_str().unwrap().contains(fix), "{f}");
    // Not the web server's fault: it never saw the requests.
    assert!(!f["likely_cause"]
        .as_str()
        .unwrap()
        .contains("nothing listens"));
    // The evidence is rs2's first ICMP to the director, as it left rs2 or reached the
    // director (tshark: rs2.pcap frame 5, director.pcap frame 7, "10.7.0.12 -> 10.7.0.1 ICMP
    // Destination unreachable (Port unreachable)" in both fixtures).
    let ev = &f["evidence"][0];
    let at = (
        ev["file"].as_str().unwrap().rsplit('/').next().unwrap(),
        ev["frame"].as_u64().unwrap(),
    );
    assert!(
        [("rs2.pcap", 5), ("director.pcap", 7)].contains(&at),
        "{fixture}: {ev}"
    );
    for id in ["tunnel.encapsulation", "tunnel.delivery"] {
        assert_eq!(status(&doc, id), "pass", "{fixture}: {id}");
    }
}

#[test]
fn a_real_server_without_the_gue_port_is_named_with_the_fou_fix() {
    tunnel_refused("gue-no-fou", Some("rules.txt"), "ip fou add port 6080 gue");
    tunnel_refused("gue-no-fou", None, "ip fou add port 6080 gue");
}

#[test]
fn a_real_server_without_gre0_is_named_with_the_gre_fix() {
    tunnel_refused("gre-no-gre0", Some("rules.txt"), "ip link set gre0 up");
}

#[test]
fn a_firewall_mark_service_is_one_service_across_its_ports() {
    let truth = table("fwmark");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 12);
    let (code, doc) = run("fwmark", Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass("fwmark", &doc, total);
    assert_eq!(per_server(&doc), truth);
    // No false claim about the rules: the mark holds both ports and both servers.
    let text = all_text(&doc);
    for false_claim in [
        "not a real server in the rules",
        "do not define",
        "got no connection",
    ] {
        assert!(!text.contains(false_claim), "{false_claim}: {text}");
    }
    assert_eq!(status(&doc, "topology"), "info");
    // One rr rotation over both ports: replayed as one service.
    assert_eq!(replayed(&doc), vec![(total, total)]);
    assert_eq!(doc["fairness"]["services"][0]["mark"].as_u64(), Some(1));
}

#[test]
fn three_services_on_two_vips_each_keep_their_scheduler() {
    let truth = table("multi-service");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 22);
    let (code, doc) = run("multi-service", Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass("multi-service", &doc, total);
    assert_eq!(per_server(&doc), truth);
    let services: Vec<(String, String)> = doc["fairness"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["vip"].as_str().unwrap().to_string(),
                s["scheduler"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (vip, sched) in [
        ("10.7.0.100:80", "rr"),
        ("10.7.0.101:8080", "wrr"),
        ("10.7.0.101:5300", "rr"),
    ] {
        assert!(
            services.contains(&(vip.to_string(), sched.to_string())),
            "{vip} {sched}: {services:?}"
        );
    }
    // Every decision of every service reproduced, persistence included.
    for (matched, decisions) in replayed(&doc) {
        assert_eq!(matched, decisions);
    }
    let replayed_total: u64 = replayed(&doc).iter().map(|r| r.1).sum();
    assert_eq!(replayed_total, total);
}

#[test]
fn keepalived_health_checks_are_not_client_connections() {
    let truth = table("keepalived");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 12);
    // keepalived's own configuration as the rules, and what ipvsadm -Sn printed once
    // keepalived had set the director up: the same verdict, scheduler and weights.
    let mut configured = Vec::new();
    for rules in ["keepalived.conf", "rules.txt"] {
        let (code, doc) = run("keepalived", Some(rules));
        assert_eq!(code, 0, "{rules}: {}", all_text(&doc));
        all_pass("keepalived", &doc, total);
        assert_eq!(per_server(&doc), truth, "{rules}");
        assert_eq!(replayed(&doc), vec![(total, total)], "{rules}");
        let svc = &doc["fairness"]["services"][0];
        let mut weights: Vec<(String, u64)> = svc["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["addr"].as_str().unwrap().to_string(),
                    s["weight"].as_u64().unwrap(),
                )
            })
            .collect();
        weights.sort();
        configured.push((svc["scheduler"].as_str().unwrap().to_string(), weights));
    }
    assert_eq!(configured[0], configured[1]);
    // rules.txt: `-s wrr`, 10.7.0.11 `-w 2`, 10.7.0.12 `-w 1`.
    assert_eq!(
        configured[1],
        (
            "wrr".to_string(),
            vec![
                ("10.7.0.11:80".to_string(), 2),
                ("10.7.0.12:80".to_string(), 1)
            ]
        )
    );
}

#[test]
fn a_snapshot_older_than_the_captures_is_told_apart_from_the_traffic() {
    let fixture = "director-state";
    let truth = table(fixture);
    let in_table: u64 = truth.values().sum();
    // The client ports the captures show (the client's SYNs), from tshark when it is here,
    // else from the README (10 requests captured).
    let captured: u64 = if verify_common::tshark_available() {
        let out = std::process::Command::new("tshark")
            .args(["-r", "fixtures/director-state/client.pcap", "-Y"])
            .arg("tcp.flags.syn == 1 && tcp.flags.ack == 0")
            .current_dir(verify_common::root())
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    } else {
        10
    };
    assert_eq!((in_table, captured), (16, 10));

    // Without the snapshot: healthy, verified.
    let (code, doc) = run(fixture, Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass(fixture, &doc, captured);

    // With it: the entries no capture shows are a warning, not a failure.
    let mut args = files(fixture);
    for f in ["rules", "director-state", "director-state"]
        .iter()
        .zip(["rules.txt", "conns.txt", "stats.txt"])
        .flat_map(|(opt, file)| [format!("--{opt}"), format!("fixtures/{fixture}/{file}")])
    {
        args.push(f);
    }
    let (code, doc) = verify(&args);
    assert_eq!(code, 0, "{}", all_text(&doc));
    let c = check(&doc, "director.state");
    assert_eq!(c["status"], "warn", "{c}");
    let missing = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "warn")
        .expect("a warning");
    assert_eq!(missing["count"].as_u64(), Some(in_table - captured));
    assert_eq!(missing["out_of"].as_u64(), Some(in_table));
    assert!(missing["host"].as_str().unwrap().contains("10.7.0.1"));
    // Nothing contradicts the traffic: no entry names another server than the captures.
    assert!(c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] != "fail"));
}

#[test]
fn an_ipv4_service_over_ipv6_tunnels_is_verified() {
    let truth = table("ipv6-mixed");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 10);
    let (code, doc) = run("ipv6-mixed", Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass("ipv6-mixed", &doc, total);
    // conns.txt names the servers by their IPv6 addresses, as the tunnels' outer headers do.
    assert_eq!(per_server(&doc), truth);
    let reason = check(&doc, "tunnel.encapsulation")["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("IPv4-in-IPv6"), "{reason}");
    assert_eq!(replayed(&doc), vec![(total, total)]);
}

#[test]
fn a_direct_routing_server_among_tunnelled_ones_gets_its_own_rules_line_as_the_fix() {
    // rules.txt: `-a -t 10.7.0.100:80 -r 10.7.0.12:80 -g -w 1`: the same server and service,
    // edited (-e) into tunnel mode (-i).
    let path = format!("{}/fixtures/dr-server/rules.txt", verify_common::root());
    let line = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| l.contains(" -g"))
        .expect("a -g line")
        .to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    let want = format!("ipvsadm -e {} {} -r {} -i", words[1], words[2], words[4]);
    let (code, doc) = run("dr-server", Some("rules.txt"));
    assert_eq!(code, 1);
    let f = &check(&doc, "tunnel.encapsulation")["findings"][0];
    assert!(f["host"]
        .as_str()
        .unwrap()
        .contains(words[4].split(':').next().unwrap()));
    assert!(f["likely_cause"]
        .as_str()
        .unwrap()
        .contains(&line[..line.find(" -w").unwrap()]));
    assert!(f["fix"].as_str().unwrap().contains(&want), "{want}: {f}");
}

#[test]
fn ipv6_fixes_are_written_for_ipv6() {
    let (_, doc) = run("ipv6-nd-vip", Some("rules.txt"));
    let f = &check(&doc, "bypass")["findings"][0];
    let fix = f["fix"].as_str().unwrap();
    assert!(
        fix.contains("ip -6 neigh flush") && !fix.contains("arptables"),
        "{fix}"
    );
    // The real servers left unanswered by the outer-VIP fault are not told to fix tunl0.
    let (_, doc) = run("ipv6-outer-vip", Some("rules.txt"));
    for f in check(&doc, "reply.present")["findings"].as_array().unwrap() {
        let fix = f["fix"].as_str().unwrap();
        assert!(
            !fix.contains("tunl0") && fix.contains("preferred_lft 0"),
            "{fix}"
        );
    }
}

#[test]
fn a_nat_server_among_tunnelled_ones_is_named_with_its_rules_line() {
    let path = format!("{}/fixtures/nat-server/rules.txt", verify_common::root());
    let rules = std::fs::read_to_string(path).unwrap();
    let line = rules
        .lines()
        .find(|l| l.contains(" -m"))
        .expect("a -m line");
    let line = &line[..line.find(" -w").unwrap_or(line.len())];
    let words: Vec<&str> = line.split_whitespace().collect();
    let fix = format!("ipvsadm -e {} {} -r {} -i", words[1], words[2], words[4]);
    // conns.txt: the connections the NAT server took stay in SYN_RECV (the client reset them).
    let stuck = std::fs::read_to_string(format!(
        "{}/fixtures/nat-server/conns.txt",
        verify_common::root()
    ))
    .unwrap()
    .lines()
    .filter(|l| l.contains("SYN_RECV") && l.ends_with(words[4]))
    .count() as u64;
    assert_eq!(stuck, 5);
    let (code, doc) = run("nat-server", Some("rules.txt"));
    assert_eq!(code, 1);
    for id in ["tunnel.encapsulation", "reply.source"] {
        let c = check(&doc, id);
        assert_eq!(c["status"], "fail", "{id}: {c}");
        let f = &c["findings"][0];
        assert!(
            f["host"].as_str().unwrap().contains("10.7.0.12"),
            "{id}: {f}"
        );
        assert_eq!(f["count"].as_u64(), Some(stuck), "{id}");
        assert!(
            f["likely_cause"].as_str().unwrap().contains(line),
            "{id}: {f}"
        );
        assert!(f["fix"].as_str().unwrap().contains(&fix), "{id}: {fix} {f}");
    }
    // Not blamed on a masquerade rule on the server.
    assert!(!all_text(&doc).contains("SNAT/MASQUERADE"));
}

#[test]
fn an_sctp_service_is_verified_like_tcp_and_udp_ones() {
    let truth = table("sctp-healthy");
    let total: u64 = truth.values().sum();
    assert_eq!(total, 8);
    let (code, doc) = run("sctp-healthy", Some("rules.txt"));
    assert_eq!(code, 0, "{}", all_text(&doc));
    all_pass("sctp-healthy", &doc, total);
    assert_eq!(per_server(&doc), truth);
    assert_eq!(
        doc["per_real_server"][0]["service"].as_str(),
        Some("sctp 10.7.0.100:9000")
    );
    assert_eq!(replayed(&doc), vec![(total, total)]);
}
