//! The `mtu` check's prediction, against what tshark reads in the captures: the MSS each
//! handshake agreed on (the SYN-ACK's, capped by the client's SYN), the tunnel the rules
//! configure, and the lab's 1500-byte links (every lab link has MTU 1500: lab/README.md; the
//! `mtu` fixture's ICMP says 1480 inside the IP-in-IP tunnel, 1500 on the path).

mod verify_common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use verify_common::{check, root, tshark_available, tshark_fields, verify};

const PATH_MTU: u32 = 1500;

/// What each kind of tunnel adds, as the kernel writes it (ip_vs_xmit.c): the outer IPv4
/// header (20) or IPv6 header (40), plus GRE's 4-byte header without checksum
/// (gre_calc_hlen) or UDP's 8 and GUE's 4-byte header (ipvs_gue_encap without options).
fn overhead(fixture: &str) -> u32 {
    let rules = std::fs::read_to_string(
        Path::new(root())
            .join("fixtures")
            .join(fixture)
            .join("rules.txt"),
    )
    .unwrap();
    let outer = if rules.contains("-r [") { 40 } else { 20 };
    outer
        + if rules.contains("--tun-type gue") {
            12
        } else if rules.contains("--tun-type gre") {
            4
        } else {
            0
        }
}

/// Per TCP stream of the client's capture: (client SYN's MSS, SYN-ACK's MSS, IPv6).
fn handshakes(fixture: &str) -> Vec<(u32, u32, bool)> {
    let file = Path::new(root())
        .join("fixtures")
        .join(fixture)
        .join("client.pcap");
    let rows = tshark_fields(
        &file,
        false,
        ",",
        &[
            "tcp.stream",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.options.mss_val",
            "ipv6.src",
        ],
    );
    let mut per: BTreeMap<u32, (Option<u32>, Option<u32>, bool)> = BTreeMap::new();
    for r in rows {
        if r.len() < 5 || r[1] != "1" || r[3].is_empty() {
            continue;
        }
        let e = per.entry(r[0].parse().unwrap()).or_default();
        let mss: u32 = r[3].parse().unwrap();
        if r[2] == "1" {
            e.1 = Some(mss);
        } else {
            e.0 = Some(mss);
        }
        e.2 = !r[4].is_empty();
    }
    per.into_values()
        .map(|(c, s, v6)| (c.unwrap(), s.unwrap(), v6))
        .collect()
}

fn captures(fixture: &str) -> Vec<String> {
    verify_common::fixture_captures(fixture)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn predicted(doc: &Value) -> Vec<&Value> {
    check(doc, "mtu")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "info")
        .collect()
}

/// Asserts the prediction for a fixture: the connections whose full segment, wrapped, exceeds
/// the path, and the MSS to clamp to.
fn assert_prediction(fixture: &str, status: &str) {
    let over = overhead(fixture);
    let shakes = handshakes(fixture);
    assert!(!shakes.is_empty(), "{fixture}: tshark found handshakes");
    let v6 = shakes[0].2;
    let headers = if v6 { 60 } else { 40 };
    let too_big = shakes
        .iter()
        .filter(|(c, s, _)| c.min(s) + headers + over > PATH_MTU)
        .count();
    let (_, doc) = verify(&captures(fixture));
    let mtu = check(&doc, "mtu");
    assert_eq!(mtu["status"], status, "{fixture}: {mtu:#}");
    let found = predicted(&doc);
    if too_big == 0 {
        assert!(found.is_empty(), "{fixture}: nothing to predict: {mtu:#}");
        let mss = shakes[0].0.min(shakes[0].1);
        assert!(
            mtu["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("MSS {mss}")),
            "{fixture}: the pass names the MSS: {mtu:#}"
        );
        return;
    }
    assert_eq!(found.len(), 1, "{fixture}: one kind of handshake: {mtu:#}");
    let f = found[0];
    assert_eq!(f["count"], too_big as u64, "{fixture}: {f:#}");
    assert_eq!(f["out_of"], shakes.len() as u64, "{fixture}: {f:#}");
    let clamp = PATH_MTU - over - headers;
    let fix = f["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("--set-mss {clamp}")),
        "{fixture}: {fix}"
    );
    assert!(
        fix.contains(if v6 { "ip6tables" } else { "iptables" }),
        "{fixture}: {fix}"
    );
    assert!(
        fix.contains(&format!("mtu {}", PATH_MTU + over)),
        "{fixture}: raising the path MTU by the overhead: {fix}"
    );
    // The evidence is the SYN-ACK that offered the MSS: tshark finds its MSS there.
    let ev = &f["evidence"][0];
    let frame = ev["frame"].as_u64().unwrap();
    let rows = tshark_fields(
        &Path::new(root()).join(ev["file"].as_str().unwrap()),
        false,
        ",",
        &[
            "frame.number",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.options.mss_val",
        ],
    );
    let row = &rows[frame as usize - 1];
    assert_eq!(
        (row[1].as_str(), row[2].as_str()),
        ("1", "1"),
        "{fixture}: a SYN-ACK"
    );
    assert!(ev["summary"]
        .as_str()
        .unwrap()
        .contains(&format!("MSS {}", row[3])));
}

#[test]
fn unclamped_handshakes_are_predicted_not_to_fit_each_tunnel() {
    if !tshark_available() {
        return;
    }
    for fixture in ["tutorial", "gue-healthy", "gre-healthy", "ipv6-healthy"] {
        assert_prediction(fixture, "info");
    }
}

#[test]
fn the_mtu_fixture_warns_and_predicts_only_the_connection_before_the_client_learned() {
    if !tshark_available() {
        return;
    }
    // The client's later SYNs offer 1440 (its route cache holds the 1480 the director sent).
    assert_prediction("mtu", "warn");
    let (_, doc) = verify(&captures("mtu"));
    let warn = &check(&doc, "mtu")["findings"][0];
    assert_eq!(warn["severity"], "warn");
    assert!(
        warn["fix"].as_str().unwrap().contains("OUTPUT"),
        "the fix clamps the SYN-ACKs: {warn:#}"
    );
}

#[test]
fn clamped_real_servers_pass() {
    if !tshark_available() {
        return;
    }
    assert_prediction("mtu-clamped", "pass");
}

#[test]
fn without_a_syn_ack_the_clients_syn_bounds_the_prediction() {
    if !tshark_available() {
        return;
    }
    // server1.pcap is the tutorial director's (hosts.json).
    let director = Path::new(root()).join("fixtures/tutorial/server1.pcap");
    let syns = tshark_fields(&director, false, ",", &["tcp.options.mss_val"])
        .into_iter()
        .filter(|r| !r[0].is_empty())
        .count();
    let (_, doc) = verify(&[director.to_string_lossy().into_owned()]);
    let found = predicted(&doc);
    assert_eq!(found.len(), 1, "{:#}", check(&doc, "mtu"));
    // Each SYN is seen twice at the director: arriving, and leaving wrapped.
    assert_eq!(found[0]["count"].as_u64().unwrap() * 2, syns as u64);
    let summary = found[0]["summary"].as_str().unwrap();
    assert!(summary.contains("no SYN-ACK was captured"), "{summary}");
}
