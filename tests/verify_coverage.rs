//! The verdict states its coverage (issue 10): exit 0 only when the required checks ran, 3
//! (inconclusive) when they could not, and partial capture sets never give "arrived" or "got
//! no connection" without evidence. Expected values come from the director's own connection
//! table (`conns.txt`, `ipvsadm -Lnc`) and from what each fixture's README says a verifier
//! must report.

use std::collections::BTreeMap;

use serde_json::Value;

mod verify_common;
use verify_common::{all_text, check, root, verify};

fn files(fixture: &str, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("fixtures/{fixture}/{n}"))
        .collect()
}

fn with_rules(mut args: Vec<String>, fixture: &str) -> Vec<String> {
    args.push("--rules".into());
    args.push(format!("fixtures/{fixture}/rules.txt"));
    args
}

/// Real server -> connections, from the director's own table.
fn conns_per_rs(fixture: &str) -> BTreeMap<String, u64> {
    let path = format!("{}/fixtures/{fixture}/conns.txt", root());
    let entries = lvscheck::topology::rules::read_conns(std::path::Path::new(&path)).unwrap();
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.is_template()) {
        *out.entry(e.rs.ip().to_string()).or_default() += 1;
    }
    out
}

fn not_run(doc: &Value) -> Vec<String> {
    doc["verdict"]["not_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["check"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_arp_only_capture_is_inconclusive_not_a_pass() {
    let (code, doc) = verify(&files("arp-vip", &["rs1.pcap"]));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["outcome"], "inconclusive");
    assert_eq!(doc["connections"], 0);
    assert_eq!(doc["exit_code"], 3);
}

#[test]
fn the_director_alone_shows_the_server_that_does_not_answer() {
    // fixtures/rp-filter: the client repeats its SYN for every connection sent to 10.7.0.12.
    let truth = conns_per_rs("rp-filter");
    let (code, doc) = verify(&with_rules(
        files("rp-filter", &["director.pcap"]),
        "rp-filter",
    ));
    assert_eq!(code, 1, "{}", doc["verdict"]);
    let present = check(&doc, "reply.present");
    assert_eq!(present["status"], "fail");
    let f = &present["findings"][0];
    assert!(f["host"].as_str().unwrap().starts_with("10.7.0.12"));
    assert_eq!(f["count"].as_u64(), truth.get("10.7.0.12").copied());
    // The director's frames are the evidence.
    assert!(f["evidence"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("director.pcap"));
    // Nothing else is claimed about what no capture shows.
    assert_eq!(check(&doc, "reply.source")["status"], "skip");
}

#[test]
fn client_and_one_server_never_say_arrived_or_got_no_connection() {
    let truth = conns_per_rs("rp-filter");
    let (code, doc) = verify(&with_rules(
        files("rp-filter", &["client.pcap", "rs1.pcap"]),
        "rp-filter",
    ));
    // The client really was not answered twice: a failure, but of an unidentified server.
    assert_eq!(code, 1);
    let f = &check(&doc, "reply.present")["findings"][0];
    assert!(f["host"].is_null(), "{f}");
    assert_eq!(f["count"].as_u64(), truth.get("10.7.0.12").copied());
    let text = all_text(&doc);
    assert!(!text.contains("arrived at an unidentified"), "{text}");
    assert!(!text.contains("got no connection"), "{text}");
    assert!(!text.contains("rp_filter"), "blames rp_filter: {text}");
    // No director capture: whether the unanswered ones went through the director is unknown.
    let bypass = check(&doc, "bypass");
    assert_eq!(bypass["judged"].as_u64(), truth.get("10.7.0.11").copied());
    assert!(not_run(&doc).contains(&"tunnel.encapsulation".to_string()));
}

/// udp-wildcard with only the client and rs1 captured: rs2 (not captured, not tunnelled to in
/// any capture at hand) answered from its own address. Its replies reach the client from
/// 10.7.0.12:5300, so the story is the fixture's own: reply.source fails at 10.7.0.12 for its
/// connections (conns.txt), and reply.present does not also call them unanswered.
#[test]
fn client_and_one_server_see_the_other_answer_from_its_own_address() {
    let truth = conns_per_rs("udp-wildcard");
    for rules in [true, false] {
        let args = files("udp-wildcard", &["client.pcap", "rs1.pcap"]);
        let args = if rules {
            with_rules(args, "udp-wildcard")
        } else {
            args
        };
        let (code, doc) = verify(&args);
        assert_eq!(code, 1, "rules {rules}: {}", doc["verdict"]);
        let source = check(&doc, "reply.source");
        assert_eq!(source["status"], "fail", "{source}");
        let f = &source["findings"][0];
        assert!(
            f["host"]
                .as_str()
                .is_some_and(|h| h.starts_with("10.7.0.12")),
            "{f}"
        );
        assert_eq!(f["count"].as_u64(), truth.get("10.7.0.12").copied(), "{f}");
        assert_ne!(check(&doc, "reply.present")["status"], "fail");
    }
}

#[test]
fn client_and_the_other_server_do_not_say_the_first_got_no_connection() {
    let truth = conns_per_rs("rp-filter");
    let (code, doc) = verify(&with_rules(
        files("rp-filter", &["client.pcap", "rs2.pcap"]),
        "rp-filter",
    ));
    assert_eq!(code, 1);
    let f = &check(&doc, "reply.present")["findings"][0];
    assert!(f["host"].as_str().unwrap().starts_with("10.7.0.12"));
    assert!(!all_text(&doc).contains("got no connection"));
    // 10.7.0.11's connections completed, uncaptured: counted as not identified.
    let unidentified = doc["per_real_server"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["real_server"].is_null())
        .expect("a row for the unidentified server");
    assert_eq!(
        unidentified["connections"].as_u64(),
        truth.get("10.7.0.11").copied()
    );
    assert_eq!(
        unidentified["outcomes"]["completed"].as_u64(),
        truth.get("10.7.0.11").copied()
    );
}

#[test]
fn a_client_only_capture_is_inconclusive_and_says_what_to_capture() {
    let (code, doc) = verify(&files("tutorial", &["client.pcap"]));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    let missing = not_run(&doc);
    assert!(missing.contains(&"tunnel.encapsulation".to_string()));
    let needs = doc["verdict"]["not_run"][0]["needs"].as_str().unwrap();
    assert!(needs.contains("director"), "{needs}");
}

#[test]
fn require_sets_what_must_run() {
    let client = files("tutorial", &["client.pcap"]);
    // A client's capture holds no tunnelled packet to name the VIP: without --vip (the
    // tutorial's, fixtures/tutorial/README.md) no LVS service is seen and nothing is verified.
    let mut args = vec!["--require".to_string(), "reply.present,reply.source".into()];
    args.extend(client.clone());
    assert_eq!(verify(&args).0, 3);
    args.extend(["--vip".to_string(), "172.25.67.100".into()]);
    let (code, doc) = verify(&args);
    assert_eq!(code, 0, "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["outcome"], "verified");
    let mut args = vec!["--require".to_string(), "reply.presnt".into()];
    args.extend(client);
    assert_eq!(verify(&args).0, 2);
}

#[test]
fn fail_on_warn_turns_the_mtu_warning_into_a_failure() {
    let all = files(
        "mtu",
        &["client.pcap", "director.pcap", "rs1.pcap", "rs2.pcap"],
    );
    let (code, _) = verify(&with_rules(all.clone(), "mtu"));
    assert_eq!(code, 0, "mtu only warns (fixtures/mtu/README.md)");
    let mut args = with_rules(all, "mtu");
    args.extend(["--fail-on".to_string(), "warn".into()]);
    let (code, doc) = verify(&args);
    assert_eq!(code, 1);
    assert_eq!(doc["verdict"]["outcome"], "failed");
}

/// Each fixture's verdict as its README states it (fixtures/README.md, "must fail").
#[test]
fn every_fixture_gives_the_verdict_its_readme_states() {
    let expected = [
        ("tutorial", 0),
        ("wrr", 0),
        ("arp-vip", 1),
        ("arp-vip-late", 1),
        ("rp-filter", 1),
        ("no-vip", 1),
        ("reply-via-director", 1),
        ("not-listening-tcp", 1),
        ("not-listening-udp", 1),
        ("udp-wildcard", 1),
        ("mtu", 0),
        ("wlc-long", 0),
        ("sh-clients", 0),
        ("persistence", 0),
        ("formats-pcapng", 0),
        ("formats-nsec", 0),
        ("formats-gzip", 0),
        ("formats-merged", 0),
        ("formats-truncated", 0),
        ("clock-skew", 0),
        ("dr-server", 1),
        ("span-rp-filter", 1),
        ("stale-vip-host", 1),
        ("stale-vip-flood", 1),
        // Healthy, but captured with `tcp port 80`: the tunnel checks cannot run.
        ("port-filter", 3),
    ];
    for (fixture, want) in expected {
        let dir = format!("{}/fixtures/{fixture}", root());
        let mut captures: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".pcap"))
            .map(|n| format!("fixtures/{fixture}/{n}"))
            .collect();
        captures.sort();
        let (code, doc) = verify(&with_rules(captures, fixture));
        assert_eq!(code, want, "{fixture}: {}", doc["verdict"]);
    }
}

/// fixtures/dr-server: 10.7.0.12 is added with `-g` among tunnelled servers. One fault, one
/// story: `tunnel.encapsulation` names it with the rules line; `bypass` does not claim its
/// connections skipped the director (they did not), and the per-server table counts them.
#[test]
fn a_server_added_in_direct_routing_mode_gives_one_coherent_story() {
    let truth = conns_per_rs("dr-server");
    let all = files(
        "dr-server",
        &["client.pcap", "director.pcap", "rs1.pcap", "rs2.pcap"],
    );
    let (code, doc) = verify(&with_rules(all, "dr-server"));
    assert_eq!(code, 1);
    let enc = check(&doc, "tunnel.encapsulation");
    assert_eq!(enc["status"], "fail");
    let f = &enc["findings"][0];
    assert!(f["host"].as_str().unwrap().starts_with("10.7.0.12"), "{f}");
    assert_eq!(f["count"].as_u64(), truth.get("10.7.0.12").copied());
    assert!(f["likely_cause"]
        .as_str()
        .unwrap()
        .contains("-r 10.7.0.12:80 -g"));
    assert_eq!(check(&doc, "bypass")["status"], "pass");
    for id in ["reply.present", "reply.source", "reply.direct"] {
        assert_ne!(check(&doc, id)["status"], "fail", "{id}");
    }
    let per: BTreeMap<String, u64> = doc["per_real_server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["real_server"].as_str().unwrap_or("(none)").to_string(),
                p["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per, truth);
    assert!(!all_text(&doc).contains("got no connection"));
}

/// Without the director's capture (and without rules), a request arriving unwrapped at a real
/// server from the director's MAC was still sent on by the director (direct routing), not a
/// bypass.
#[test]
fn direct_routing_is_recognised_from_the_servers_capture_alone() {
    let truth = conns_per_rs("dr-server");
    let (code, doc) = verify(&files(
        "dr-server",
        &["client.pcap", "rs1.pcap", "rs2.pcap"],
    ));
    assert_eq!(code, 1);
    let f = &check(&doc, "tunnel.encapsulation")["findings"][0];
    assert!(f["host"].as_str().unwrap().starts_with("10.7.0.12"), "{f}");
    assert_eq!(f["count"].as_u64(), truth.get("10.7.0.12").copied());
    assert_eq!(check(&doc, "bypass")["status"], "pass");
}
