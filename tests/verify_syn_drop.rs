//! `syn.drop` on the lab's recordings: the director of fixtures/syn-drop (net.ipv4.vs.conntrack=1,
//! a client reusing its source ports) drops the first SYN of each reused port and tunnels the
//! retransmission; syn-reuse-ok (the same traffic with conntrack=0) drops none. The expected
//! counts and delays come from tshark's reading of the director's capture: per client port and
//! ISN, the first bare SYN and the first IP-in-IP copy.

mod verify_common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use verify_common::{check, fixture_captures, tshark_available, tshark_fields, verify};

/// The director of the failure scenarios (lab/guest/lib.sh: DIR_IP, MAC_DIR).
const DIRECTOR: &str = "10.7.0.1 (02:00:00:07:00:01)";

/// A frame number and its time (ns since the epoch).
type At = (u64, i64);

/// One connection's SYN at the director, as tshark reads it.
#[derive(Default)]
struct Syn {
    /// Frame and time (ns) of the first bare SYN.
    first: Option<At>,
    /// Frame and time of the first IP-in-IP copy.
    tunnelled: Option<At>,
}

fn epoch_ns(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}

/// Per (client port, ISN): the SYNs of a fixture's director capture.
fn director_syns(fixture: &str) -> BTreeMap<(u16, u64), Syn> {
    let file = Path::new(verify_common::root())
        .join("fixtures")
        .join(fixture)
        .join("director.pcap");
    syns_in(&file)
}

/// Per (client port, ISN): the SYNs of a director capture.
fn syns_in(file: &Path) -> BTreeMap<(u16, u64), Syn> {
    let rows = tshark_fields(
        file,
        false,
        ",",
        &[
            "frame.number",
            "frame.time_epoch",
            "ip.proto",
            "tcp.srcport",
            "tcp.seq_raw",
            "tcp.flags.syn",
            "tcp.flags.ack",
        ],
    );
    let mut syns: BTreeMap<(u16, u64), Syn> = BTreeMap::new();
    for r in rows {
        if r.len() < 7 || r[5] != "1" || r[6] != "0" || r[3].is_empty() {
            continue;
        }
        let frame: u64 = r[0].parse().unwrap();
        let t = epoch_ns(&r[1]);
        let key = (r[3].parse().unwrap(), r[4].parse().unwrap());
        let s = syns.entry(key).or_default();
        let slot = if r[2].split(',').any(|p| p == "4") {
            &mut s.tunnelled
        } else {
            &mut s.first
        };
        slot.get_or_insert((frame, t));
    }
    syns
}

fn secs(ns: i64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn run(fixture: &str) -> Value {
    let (_, doc) = verify(&fixture_captures(fixture));
    assert!(!doc.is_null(), "{fixture}: no document");
    doc
}

#[test]
fn the_dropped_first_syns_are_counted_with_their_delays_and_the_director_named() {
    let doc = run("syn-drop");
    let c = check(&doc, "syn.drop");
    assert_eq!(c["status"], "warn", "{c:#}");
    let f = &c["findings"][0];
    assert_eq!(c["findings"].as_array().unwrap().len(), 1, "{c:#}");
    assert!(f["host"].as_str().unwrap().contains(DIRECTOR), "{f:#}");
    assert!(f["fix"]
        .as_str()
        .unwrap()
        .contains("sysctl -w net.ipv4.vs.conntrack=0"));
    // The connections still succeed: nothing fails, the run is verified (exit 0).
    assert_eq!(
        doc["verdict"]["outcome"], "verified",
        "{:#}",
        doc["verdict"]
    );
    if !tshark_available() {
        // fixtures/syn-drop/README.md: 5 of 11.
        assert_eq!(
            (f["count"].as_u64(), f["out_of"].as_u64()),
            (Some(5), Some(11))
        );
        return;
    }
    let syns = director_syns("syn-drop");
    // Dropped: the first tunnelled copy left a retransmission timeout (>= 200 ms) after the
    // first SYN arrived.
    let mut dropped: Vec<(u16, At, At)> = syns
        .iter()
        .filter_map(|(k, s)| {
            let (first, tun) = (s.first?, s.tunnelled?);
            (tun.1 - first.1 >= 200_000_000).then_some((k.0, first, tun))
        })
        .collect();
    dropped.sort_by_key(|d| d.1 .1);
    assert!(!dropped.is_empty());
    assert_eq!(f["count"].as_u64().unwrap(), dropped.len() as u64, "{f:#}");
    assert_eq!(f["out_of"].as_u64().unwrap(), syns.len() as u64, "{f:#}");
    let mut delays: Vec<i64> = dropped.iter().map(|d| d.2 .1 - d.1 .1).collect();
    let sum: i64 = delays.iter().sum();
    delays.sort_unstable();
    let (median, max) = (delays[delays.len() / 2], *delays.last().unwrap());
    let summary = f["summary"].as_str().unwrap();
    for (what, v) in [("lost in all", sum), ("median", median), ("max", max)] {
        assert!(
            summary.contains(&secs(v)),
            "{what} {} not in {summary}",
            secs(v)
        );
    }
    // Each dropped SYN reused a port an earlier connection (another ISN) had used.
    let reused = dropped
        .iter()
        .filter(|d| {
            syns.iter()
                .any(|(k, s)| k.0 == d.0 && s.first.is_some_and(|x| x.1 < d.1 .1))
        })
        .count();
    assert!(
        summary.contains(&format!("{reused} of {} reused", dropped.len())),
        "{summary}"
    );
    // Evidence: the first dropped SYN, then its tunnelled retransmission.
    let frames: Vec<u64> = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(&frames[..2], &[dropped[0].1 .0, dropped[0].2 .0], "{f:#}");
    // Then the client's RST that ended the earlier connection on that port: the last bare RST
    // from that port before the dropped SYN.
    let file = Path::new(verify_common::root()).join("fixtures/syn-drop/director.pcap");
    let rst = tshark_fields(
        &file,
        false,
        ",",
        &["frame.number", "ip.proto", "tcp.srcport", "tcp.flags.reset"],
    )
    .into_iter()
    .filter(|r| r.len() == 4 && r[1] == "6" && r[3] == "1" && r[2] == dropped[0].0.to_string())
    .map(|r| r[0].parse::<u64>().unwrap())
    .filter(|n| *n < dropped[0].1 .0)
    .max();
    assert_eq!(frames.get(2).copied(), rst, "{f:#}");
    for d in &dropped[1..] {
        if frames.len() >= 5 {
            break;
        }
        assert!(frames.contains(&d.1 .0) || frames.len() == 5, "{frames:?}");
    }
}

#[test]
fn the_same_reuse_without_ipvs_conntrack_drops_nothing() {
    let doc = run("syn-reuse-ok");
    let c = check(&doc, "syn.drop");
    assert_eq!(c["status"], "pass", "{c:#}");
    if tshark_available() {
        let syns = director_syns("syn-reuse-ok");
        assert!(syns
            .values()
            .all(|s| s.tunnelled.unwrap().1 - s.first.unwrap().1 < 200_000_000));
        assert_eq!(c["judged"].as_u64().unwrap(), syns.len() as u64);
    }
}

#[test]
fn a_client_capture_alone_only_informs() {
    // The VIP given: without a director's tunnelled packets the traffic only suggests it.
    let (_, doc) = verify(&["--vip", "10.7.0.100", "fixtures/syn-drop/client.pcap"]);
    let c = check(&doc, "syn.drop");
    assert_eq!(c["status"], "info", "{c:#}");
    let f = &c["findings"][0];
    assert!(f["fix"]
        .as_str()
        .unwrap()
        .contains("capture on the director"));
    if tshark_available() {
        // The client's SYN retransmissions, each then answered.
        let file = Path::new(verify_common::root()).join("fixtures/syn-drop/client.pcap");
        let repeated = tshark_fields(
            &file,
            false,
            ",",
            &[
                "tcp.flags.syn",
                "tcp.flags.ack",
                "tcp.analysis.retransmission",
            ],
        )
        .into_iter()
        .filter(|r| r.len() == 3 && r[0] == "1" && r[1] == "0" && !r[2].is_empty())
        .count();
        assert_eq!(f["count"].as_u64().unwrap(), repeated as u64, "{f:#}");
    }
}

#[test]
fn no_other_fixture_shows_a_dropped_syn() {
    let dir = Path::new(verify_common::root()).join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "syn-drop" && !fixture_captures(n).is_empty())
        .collect();
    names.sort();
    // Where clients may reuse ports (director-state, persistence) and the healthy reference.
    for must in ["tutorial", "director-state", "persistence", "syn-reuse-ok"] {
        assert!(names.iter().any(|n| n == must), "{must}");
    }
    for name in names {
        let doc = run(&name);
        let c = check(&doc, "syn.drop");
        let status = c["status"].as_str().unwrap();
        assert!(
            status == "pass" || status == "skip",
            "{name}: syn.drop {status}: {c:#}"
        );
        if ["tutorial", "director-state", "persistence"].contains(&name.as_str()) {
            assert_eq!(status, "pass", "{name}: {c:#}");
        }
    }
}

/// The dropped SYNs of a director capture (first tunnelled copy a retransmission timeout
/// after the first SYN) and how many of them reused a port an earlier SYN had used.
fn dropped_and_reused(syns: &BTreeMap<(u16, u64), Syn>) -> (usize, usize) {
    let dropped: Vec<(u16, i64)> = syns
        .iter()
        .filter_map(|(k, s)| {
            let (first, tun) = (s.first?, s.tunnelled?);
            (tun.1 - first.1 >= 200_000_000).then_some((k.0, first.1))
        })
        .collect();
    let reused = dropped
        .iter()
        .filter(|(port, t)| {
            syns.iter()
                .any(|(k, s)| k.0 == *port && s.first.is_some_and(|x| x.1 < *t))
        })
        .count();
    (dropped.len(), reused)
}

#[test]
fn a_dropped_syn_whose_earlier_connection_is_not_captured_is_still_counted() {
    if !tshark_available() {
        return;
    }
    // The director's capture from frame 45 on: the first connection of port 40001 (frames
    // 33-44, its RST and the RST's tunnelled copy last) is gone, so the next one's dropped SYN
    // has no earlier connection.
    let dir = std::env::temp_dir().join(format!("lvscheck-syn-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("director.pcap");
    let src = Path::new(verify_common::root()).join("fixtures/syn-drop/director.pcap");
    let ok = std::process::Command::new("editcap")
        .arg("-r")
        .arg(&src)
        .arg(&cut)
        .arg("45-1000")
        .status()
        .expect("editcap runs")
        .success();
    assert!(ok);
    let (dropped, reused) = dropped_and_reused(&syns_in(&cut));
    let (_, doc) = verify(&[cut.as_os_str()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        reused < dropped,
        "{reused} of {dropped}: the cut keeps a predecessor"
    );
    let c = check(&doc, "syn.drop");
    assert_eq!(c["status"], "warn", "{c:#}");
    let f = &c["findings"][0];
    assert_eq!(f["count"].as_u64().unwrap(), dropped as u64, "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("{reused} of {dropped} reused")),
        "{summary}"
    );
    assert!(
        f["likely_cause"]
            .as_str()
            .unwrap()
            .contains("for those that did not"),
        "{f:#}"
    );
}
