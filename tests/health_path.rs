//! `health.path` on the lab's keepalived fixtures (issue 15): keepalived's TCP_CHECK and
//! HTTP_GET run from the director to each real server's own address, outside the tunnel.
//!
//! - `health-blackhole`: rs2 lacks the VIP on tunl0; its checks keep succeeding and it keeps
//!   weight 1 (the director's `rules.txt`), while every tunnelled connection to it goes
//!   unanswered: `health.path` fails naming rs2, as `reply.present` does, and nothing else
//!   fails.
//! - `keepalived`: the same set-up, healthy: `health.path` passes.
//! - `health-removed`: rs2 runs no web server, keepalived's HTTP_GET is refused and keepalived
//!   removed it: nothing fails; with keepalived.conf as the rules (weight 1) an info finding.
//! - `tutorial`: no health checks, skipped.
//!
//! Every expected count comes from tshark on the captures or from the director's rules file,
//! never from lvscheck.

mod verify_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use verify_common::{check, root, verify};

const DIRECTOR: &str = "10.7.0.1";
const RS1: &str = "10.7.0.11";
const RS2: &str = "10.7.0.12";
const RS2_HOST: &str = "10.7.0.12 (02:00:00:07:00:0c)";
const VIP: &str = "10.7.0.100";

fn file(fixture: &str, name: &str) -> PathBuf {
    Path::new(root()).join("fixtures").join(fixture).join(name)
}

/// The frames of `file` that `filter` shows, with the fields asked for (tab separated).
fn tshark(path: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(path).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark -Y {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn frames(path: &Path, filter: &str) -> BTreeSet<u64> {
    tshark(path, filter, &["frame.number"])
        .iter()
        .map(|f| f[0].parse().unwrap())
        .collect()
}

/// Health checks' SYNs from the director to `rs` (not tunnelled: IP protocol 4 excluded).
fn check_syns(path: &Path, rs: &str) -> BTreeSet<u64> {
    frames(
        path,
        &format!("ip.src=={DIRECTOR} && ip.dst=={rs} && tcp.flags==0x002 && !(ip.proto==4)"),
    )
}

fn check_answers(path: &Path, rs: &str, flags: &str) -> BTreeSet<u64> {
    frames(
        path,
        &format!("ip.src=={rs} && ip.dst=={DIRECTOR} && {flags} && !(ip.proto==4)"),
    )
}

fn run(fixture: &str, rules: &str) -> (i32, Value) {
    let mut args: Vec<String> = ["client", "director", "rs1", "rs2"]
        .iter()
        .map(|h| format!("fixtures/{fixture}/{h}.pcap"))
        .collect();
    args.push("--rules".into());
    args.push(format!("fixtures/{fixture}/{rules}"));
    verify(&args)
}

fn status<'a>(doc: &'a Value, id: &str) -> &'a str {
    check(doc, id)["status"].as_str().unwrap()
}

fn failing(doc: &Value) -> Vec<&str> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

/// The `health_checks` entry of the director's capture (capture 1: director.pcap) for `rs`.
fn director_view<'a>(doc: &'a Value, rs: &str) -> &'a Value {
    doc["health_checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["vantage"]["capture"] == 1 && h["server"] == format!("{rs}:80"))
        .unwrap_or_else(|| panic!("no health checks to {rs} at the director: {doc:#}"))
}

#[test]
fn checks_that_pass_while_the_tunnel_to_the_server_is_dropped_fail() {
    let fx = "health-blackhole";
    let (code, doc) = run(fx, "rules.txt");
    assert_eq!(code, 1);
    // reply.present says the same about the same connections; nothing else fails (the
    // requests did arrive: tunnel.delivery passes).
    assert_eq!(failing(&doc), vec!["reply.present", "health.path"]);
    assert_eq!(status(&doc, "tunnel.delivery"), "pass");

    // The director's own rules: rs2 kept its weight (ipvsadm -Sn after the traffic).
    let rules = std::fs::read_to_string(file(fx, "rules.txt")).unwrap();
    assert!(rules.contains(&format!("-r {RS2}:80 -i -w 1")), "{rules}");

    // The tunnelled connections to rs2, from the director's capture: their client ports, and
    // not one SYN-ACK for them at the client.
    let director = file(fx, "director.pcap");
    let tunnelled: BTreeSet<String> = tshark(
        &director,
        &format!("ip.proto==4 && ip.dst=={RS2} && tcp.flags==0x002"),
        &["tcp.srcport"],
    )
    .into_iter()
    .map(|f| f[0].clone())
    .collect();
    assert!(!tunnelled.is_empty());
    let ports = tunnelled.iter().cloned().collect::<Vec<_>>().join(",");
    let answered_at_client = frames(
        &file(fx, "client.pcap"),
        &format!(
            "ip.src=={VIP} && tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.dstport in {{{ports}}}"
        ),
    );
    assert!(answered_at_client.is_empty());

    // keepalived's checks of rs2 at the director: every SYN answered by a SYN-ACK.
    let syns = check_syns(&director, RS2);
    let syn_acks = check_answers(&director, RS2, "tcp.flags==0x012");
    assert!(syns.len() >= 2);
    assert_eq!(syns.len(), syn_acks.len());
    let seen = director_view(&doc, RS2);
    assert_eq!(seen["started"], syns.len() as u64);
    assert_eq!(seen["answered"], syn_acks.len() as u64);
    assert_eq!(
        (seen["refused"].as_u64(), seen["unanswered"].as_u64()),
        (Some(0), Some(0))
    );
    // Every 3 s (delay_loop 3 in keepalived.conf), within a tenth of a second.
    let every = seen["median_interval_ns"].as_i64().unwrap();
    assert!((every - 3_000_000_000).abs() < 100_000_000, "{every}");
    // Not client connections: the table holds the clients' only (conns.txt: 9 entries).
    let conns = std::fs::read_to_string(file(fx, "conns.txt")).unwrap();
    assert_eq!(doc["connections"], conns.lines().skip(2).count() as u64);

    let c = check(&doc, "health.path");
    let findings = c["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{c:#}");
    let f = &findings[0];
    assert_eq!(f["severity"], "fail");
    assert_eq!(f["host"], RS2_HOST);
    assert_eq!(f["count"], tunnelled.len() as u64);
    assert_eq!(f["out_of"], tunnelled.len() as u64);
    let summary = f["summary"].as_str().unwrap();
    let k = syns.len();
    assert!(
        summary.contains(&format!("{k} of {k} health checks")),
        "{summary}"
    );
    assert!(f["likely_cause"].as_str().unwrap().contains("tunl0"));
    let fix = f["fix"].as_str().unwrap();
    for words in [
        "ip addr add 10.7.0.100/32 dev tunl0",
        "MISC_CHECK",
        "connect_ip 10.7.0.100",
        "fwmark",
    ] {
        assert!(fix.contains(words), "{fix}");
    }
    // Evidence: a check's SYN-ACK from rs2 at the director, then unanswered tunnelled SYNs.
    let evidence = f["evidence"].as_array().unwrap();
    assert!(evidence[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("director.pcap"));
    assert!(syn_acks.contains(&evidence[0]["frame"].as_u64().unwrap()));
    let rs2_tunnelled_syns = frames(
        &file(fx, "rs2.pcap"),
        &format!("ip.proto==4 && ip.dst=={RS2} && tcp.flags==0x002"),
    );
    for e in &evidence[1..] {
        assert!(e["file"].as_str().unwrap().ends_with("rs2.pcap"), "{e}");
        assert!(
            rs2_tunnelled_syns.contains(&e["frame"].as_u64().unwrap()),
            "{e}"
        );
    }
    assert_eq!(evidence.len(), 1 + tunnelled.len().min(4));
    // The display filter shows, at the director, every check of rs2 and every tunnelled SYN.
    let shown = frames(&director, f["display_filter"].as_str().unwrap());
    assert!(syns.is_subset(&shown) && syn_acks.is_subset(&shown));
    let tunnelled_frames = frames(&director, &format!("ip.proto==4 && ip.dst=={RS2}"));
    assert!(tunnelled_frames.is_subset(&shown));

    // reply.present names the same server with the same counts.
    let rp = &check(&doc, "reply.present")["findings"][0];
    assert_eq!((&rp["host"], &rp["count"]), (&f["host"], &f["count"]));
}

#[test]
fn checks_that_pass_with_the_tunnel_working_pass() {
    let fx = "keepalived";
    for rules in ["rules.txt", "keepalived.conf"] {
        let (code, doc) = run(fx, rules);
        assert_eq!(code, 0, "{rules}");
        assert_eq!(status(&doc, "health.path"), "pass", "{rules}");
        let director = file(fx, "director.pcap");
        for rs in [RS1, RS2] {
            let syns = check_syns(&director, rs);
            let seen = director_view(&doc, rs);
            assert_eq!(seen["started"], syns.len() as u64, "{rs}");
            let syn_acks = check_answers(&director, rs, "tcp.flags==0x012");
            assert_eq!(seen["answered"], syn_acks.len() as u64, "{rs}");
            assert_eq!(seen["with_data"], 0, "TCP_CHECK sends nothing");
        }
    }
}

#[test]
fn a_server_keepalived_removed_is_no_failure() {
    let fx = "health-removed";
    let director = file(fx, "director.pcap");
    let refusals = check_answers(&director, RS2, "tcp.flags.reset==1");
    let syns = check_syns(&director, RS2);
    assert!(refusals.len() >= 2 && refusals.len() == syns.len());
    // rules.txt (ipvsadm -Sn once keepalived had removed rs2) lists rs1 only; with it rs2 is
    // neither in the rules nor in the traffic, and only rs1's checks are judged.
    let rules = std::fs::read_to_string(file(fx, "rules.txt")).unwrap();
    assert!(!rules.contains(RS2));
    let (code, doc) = run(fx, "rules.txt");
    assert_eq!(code, 0);
    assert_eq!(status(&doc, "health.path"), "pass");
    // HTTP_GET: rs1 answered each check with the page (HTTP 200 at the director).
    let ok = frames(
        &director,
        &format!("ip.src=={RS1} && ip.dst=={DIRECTOR} && http.response.code==200"),
    );
    let seen = director_view(&doc, RS1);
    assert_eq!(seen["with_data"], ok.len() as u64);
    assert_eq!(seen["answered"], check_syns(&director, RS1).len() as u64);

    // keepalived.conf gives rs2 weight 1: the refused checks are reported, as information.
    let (code, doc) = run(fx, "keepalived.conf");
    assert!(failing(&doc).is_empty(), "{}", doc["checks"]);
    assert_eq!(code, 0);
    let c = check(&doc, "health.path");
    assert_eq!(c["status"], "info", "{c:#}");
    let f = &c["findings"][0];
    assert_eq!(f["host"], RS2_HOST);
    assert_eq!(f["count"], refusals.len() as u64);
    let seen = director_view(&doc, RS2);
    assert_eq!(seen["refused"], refusals.len() as u64);
    assert_eq!(seen["answered"], 0);
    let evidence = &f["evidence"][0];
    assert!(
        refusals.contains(&evidence["frame"].as_u64().unwrap()),
        "{evidence}"
    );
}

#[test]
fn no_health_checks_skip() {
    let args: Vec<String> = ["client", "server1", "server2", "server3"]
        .iter()
        .map(|h| format!("fixtures/tutorial/{h}.pcap"))
        .collect();
    let (code, doc) = verify(&args);
    assert_eq!(code, 0);
    assert_eq!(status(&doc, "health.path"), "skip");
    assert_eq!(doc["health_checks"].as_array().map(Vec::len), Some(0));
    // No packet from the director to a real server's own address outside the tunnel.
    let direct = frames(
        &file("tutorial", "server1.pcap"),
        "ip.src==172.25.67.1 && (ip.dst==172.25.67.2 || ip.dst==172.25.67.3) && !(ip.proto==4) && (tcp || udp)",
    );
    assert!(direct.is_empty());
}
