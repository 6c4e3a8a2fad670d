//! Capture mistakes are the capture's findings, never the deployment's (issue 10, case 2).
//!
//! The captures are fixtures/port-filter (a real recording made with `tcp port 80`) and the
//! sets fixtures/derived/make-capture-mistakes.sh derives from the healthy fixtures. Expected
//! values come from fixtures/derived/expected.txt (tshark and capinfos), from the script's
//! construction (documented in fixtures/derived/README.md), from the director's own table
//! (conns.txt) and from the fixtures' READMEs; never from lvscheck.

use serde_json::Value;
use std::collections::BTreeMap;

mod verify_common;
use verify_common::{all_text, check, root, verify};

/// The capture files of a fixture directory, in name order, as the shell expands `*.pcap*`.
fn captures(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("{}/{dir}", root()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pcap"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    v.sort();
    v
}

fn with_rules(mut args: Vec<String>, fixture: &str) -> Vec<String> {
    args.push("--rules".into());
    args.push(format!("fixtures/{fixture}/rules.txt"));
    args
}

fn findings<'a>(doc: &'a Value, id: &str) -> &'a Vec<Value> {
    check(doc, id)["findings"].as_array().unwrap()
}

/// The finding of a check whose summary names this file.
fn finding_on<'a>(doc: &'a Value, id: &str, file: &str) -> &'a Value {
    findings(doc, id)
        .iter()
        .find(|f| f["summary"].as_str().unwrap().starts_with(file))
        .unwrap_or_else(|| panic!("{id}: no finding on {file}: {}", check(doc, id)))
}

/// Nothing is claimed against the deployment: no check but the capture checks fails or
/// warns, and none of the false findings of issue 10 case 2 appears.
fn nothing_against_the_deployment(doc: &Value) {
    for c in doc["checks"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        if !id.starts_with("capture.") {
            assert!(
                c["status"] != "fail" && c["status"] != "warn",
                "{id} blames the deployment: {c}"
            );
        }
    }
    let text = all_text(doc);
    for false_claim in [
        "not forwarded at all",
        "ipvsadm -A",
        "never arrived",
        "0 of 0",
        "got no connection",
    ] {
        assert!(!text.contains(false_claim), "says {false_claim:?}: {text}");
    }
    // A scheduler with nothing to replay is not a pass.
    let sched = check(doc, "scheduler");
    if sched["status"] == "pass" {
        assert!(!sched["reason"].as_str().unwrap().contains("0 of 0"));
    }
}

/// One line of fixtures/derived/expected.txt.
#[derive(Debug, Clone)]
struct Counted {
    frames: u64,
    ipip: u64,
    ipip_tcp_cut: u64,
    tcp_cut: u64,
    cut: u64,
    snaplen: u64,
    first: f64,
    last: f64,
    stat_entries: u64,
    filter: String,
}

/// fixtures/derived/expected.txt: what tshark and capinfos count, per derived file.
fn counted() -> BTreeMap<String, Counted> {
    let text = std::fs::read_to_string(format!("{}/fixtures/derived/expected.txt", root()))
        .expect("expected.txt (make-capture-mistakes.sh writes it)");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(11, ' ').collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            let t = |i: usize| f[i].parse::<f64>().unwrap();
            (
                format!("fixtures/derived/{}", f[0]),
                Counted {
                    frames: n(1),
                    ipip: n(2),
                    ipip_tcp_cut: n(3),
                    tcp_cut: n(4),
                    cut: n(5),
                    snaplen: n(6),
                    first: t(7),
                    last: t(8),
                    stat_entries: n(9),
                    filter: f[10].to_string(),
                },
            )
        })
        .collect()
}

/// Connections in the director's own table (`ipvsadm -Lnc`).
fn director_connections(fixture: &str) -> u64 {
    let path = format!("{}/fixtures/{fixture}/conns.txt", root());
    let entries = lvscheck::topology::rules::read_conns(std::path::Path::new(&path)).unwrap();
    entries.iter().filter(|e| !e.is_template()).count() as u64
}

fn derived(set: &str, name: &str) -> String {
    format!("fixtures/derived/{set}/{name}")
}

/// A port filter on every host: the director's and the real servers' captures are named,
/// with what shows the filter, and nothing is said against the deployment.
#[test]
fn a_port_filter_on_every_host_is_the_captures_fault() {
    let counts = counted();
    let (code, doc) = verify(&with_rules(
        captures("fixtures/derived/port-filter-tutorial"),
        "tutorial",
    ));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    assert_eq!(check(&doc, "capture.filter")["status"], "warn");
    let director = finding_on(
        &doc,
        "capture.filter",
        &derived("port-filter-tutorial", "server1.pcap"),
    );
    assert_eq!(
        director["count"].as_u64(),
        Some(director_connections("tutorial"))
    );
    assert!(director["fix"].as_str().unwrap().contains("proto 4"));
    // Every frame of a real server's filtered capture is a reply from the VIP.
    for rs in ["server2.pcap", "server3.pcap"] {
        let file = derived("port-filter-tutorial", rs);
        let f = finding_on(&doc, "capture.filter", &file);
        assert_eq!(f["count"].as_u64(), Some(counts[&file].frames), "{f}");
        assert_eq!(f["evidence"][0]["file"], file.as_str());
    }
    for id in ["tunnel.encapsulation", "tunnel.delivery"] {
        let c = check(&doc, id);
        assert_eq!(c["status"], "skip", "{c}");
        assert!(
            c["reason"].as_str().unwrap().contains("capture.filter"),
            "{c}"
        );
    }
    let sched = check(&doc, "scheduler");
    assert_eq!(sched["status"], "skip", "{sched}");
    assert!(sched["reason"]
        .as_str()
        .unwrap()
        .contains("nothing to replay"));
    nothing_against_the_deployment(&doc);
}

/// fixtures/port-filter, recorded with `tcp port 80` on every host: what its README says a
/// correct verifier must report.
#[test]
fn the_recorded_port_filter_fixture_reports_what_its_readme_states() {
    let counts = counted();
    let (code, doc) = verify(&with_rules(captures("fixtures/port-filter"), "port-filter"));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["outcome"], "inconclusive");
    assert_eq!(check(&doc, "capture.read")["status"], "pass");
    let director = finding_on(&doc, "capture.filter", "fixtures/port-filter/director.pcap");
    assert_eq!(
        director["count"].as_u64(),
        Some(director_connections("port-filter"))
    );
    for rs in ["rs1", "rs2"] {
        // The same packets as the pcapng rewrite, which expected.txt counts.
        let frames = counts[&derived("port-filter-pcapng", &format!("{rs}.pcapng"))].frames;
        let f = finding_on(
            &doc,
            "capture.filter",
            &format!("fixtures/port-filter/{rs}.pcap"),
        );
        assert_eq!(f["count"].as_u64(), Some(frames));
    }
    for id in [
        "tunnel.encapsulation",
        "tunnel.delivery",
        "arp.vip",
        "scheduler",
    ] {
        assert_eq!(check(&doc, id)["status"], "skip", "{id}");
    }
    for id in [
        "reply.present",
        "reply.source",
        "reply.direct",
        "bypass",
        "mtu",
    ] {
        assert_eq!(check(&doc, id)["status"], "pass", "{id}");
    }
    nothing_against_the_deployment(&doc);
}

/// The same recording as pcapng, whose interface descriptions name the filter: the finding
/// quotes it as capinfos reads it.
#[test]
fn a_pcapng_names_its_capture_filter() {
    let counts = counted();
    let (code, doc) = verify(&with_rules(
        captures("fixtures/derived/port-filter-pcapng"),
        "port-filter",
    ));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    for host in ["director", "rs1", "rs2"] {
        let file = derived("port-filter-pcapng", &format!("{host}.pcapng"));
        let filter = &counts[&file].filter;
        assert_eq!(filter, "tcp port 80");
        let f = finding_on(&doc, "capture.filter", &file);
        assert_eq!(f["severity"], "warn");
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("`{filter}`")),
            "{f}"
        );
    }
    // The client's capture is fine for what it shows, and its filter is still worth a note.
    let client = derived("port-filter-pcapng", "client.pcapng");
    assert_eq!(
        finding_on(&doc, "capture.filter", &client)["severity"],
        "info"
    );
    let capture = doc["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == client.as_str())
        .unwrap();
    assert_eq!(capture["interfaces"][0]["filter"], "tcp port 80");
    nothing_against_the_deployment(&doc);
}

/// The client captured with `dst port 80`: its requests, no reply. The connections were
/// answered (the servers' captures show it), so the missing replies are the filter's.
#[test]
fn a_client_capture_without_its_replies_is_the_filters_doing() {
    let client = derived("reply-filter", "client.pcap");
    let files = vec![
        client.clone(),
        "fixtures/tutorial/server1.pcap".to_string(),
        "fixtures/tutorial/server2.pcap".to_string(),
        "fixtures/tutorial/server3.pcap".to_string(),
    ];
    let (code, doc) = verify(&with_rules(files, "tutorial"));
    assert_eq!(code, 0, "{}", doc["verdict"]);
    let f = finding_on(&doc, "capture.filter", &client);
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["count"].as_u64(), Some(director_connections("tutorial")));
    assert!(f["summary"]
        .as_str()
        .unwrap()
        .contains("dropped the replies"));
    assert_eq!(findings(&doc, "capture.filter").len(), 1);
    nothing_against_the_deployment(&doc);
}

/// Only the real servers filtered, the director captured whole: the tunnel left the director
/// (judged), and "never arrived" is not concluded from captures that cannot show arrivals.
#[test]
fn filtered_real_servers_do_not_make_tunnelled_packets_lost() {
    let mut files = vec![
        "fixtures/tutorial/client.pcap".to_string(),
        "fixtures/tutorial/server1.pcap".to_string(),
    ];
    files.push(derived("port-filter-tutorial", "server2.pcap"));
    files.push(derived("port-filter-tutorial", "server3.pcap"));
    let (code, doc) = verify(&with_rules(files, "tutorial"));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    let enc = check(&doc, "tunnel.encapsulation");
    assert_eq!(enc["status"], "pass");
    assert_eq!(
        enc["judged"].as_u64(),
        Some(director_connections("tutorial"))
    );
    let delivery = check(&doc, "tunnel.delivery");
    assert_eq!(delivery["status"], "skip", "{delivery}");
    let named: Vec<&str> = findings(&doc, "capture.filter")
        .iter()
        .map(|f| f["summary"].as_str().unwrap())
        .collect();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(named
        .iter()
        .all(|s| s.contains("port-filter-tutorial/server")));
    nothing_against_the_deployment(&doc);
}

/// A snap length too short for the inner headers: every IP-in-IP frame cut, counted as
/// tshark counts them, with the snap length named, in the finding and in the per-capture JSON.
/// At 40 bytes every TCP header is cut too: no connection at all, still nobody blamed.
#[test]
fn a_short_snap_length_is_counted_per_capture_and_named() {
    let counts = counted();
    for set in ["snaplen-40", "snaplen-64", "snaplen-68"] {
        let (code, doc) = verify(&with_rules(
            captures(&format!("fixtures/derived/{set}")),
            "tutorial",
        ));
        assert_eq!(code, 3, "{set}: {}", doc["verdict"]);
        assert_eq!(check(&doc, "capture.snaplen")["status"], "warn");
        for name in [
            "client.pcap",
            "server1.pcap",
            "server2.pcap",
            "server3.pcap",
        ] {
            let file = derived(set, name);
            let want = &counts[&file];
            let headers_cut = want.ipip_tcp_cut + want.tcp_cut;
            let capture = doc["captures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["file"] == file.as_str())
                .unwrap();
            assert_eq!(
                capture["headers_cut_frames"].as_u64(),
                Some(headers_cut),
                "{file}"
            );
            assert_eq!(
                capture["snaplen_truncated_frames"].as_u64(),
                Some(want.cut),
                "{file}"
            );
            assert_eq!(
                capture["interfaces"][0]["snaplen"].as_u64(),
                Some(want.snaplen)
            );
            let on_file = findings(&doc, "capture.snaplen")
                .iter()
                .find(|f| f["summary"].as_str().unwrap().starts_with(&file));
            if headers_cut == 0 {
                // Cut after the headers: only payload is missing, worth a note at most.
                if let Some(f) = on_file {
                    assert_eq!(f["severity"], "info", "{file}: {f}");
                    assert_eq!(f["count"].as_u64(), Some(want.cut));
                }
                continue;
            }
            let f = on_file.unwrap_or_else(|| panic!("{file}: no finding"));
            assert_eq!(f["severity"], "warn");
            assert_eq!(f["count"].as_u64(), Some(headers_cut));
            let summary = f["summary"].as_str().unwrap();
            if want.ipip_tcp_cut > 0 {
                let tunnelled = format!("{} of {} tunnelled", want.ipip_tcp_cut, want.ipip);
                assert!(summary.contains(&tunnelled), "{summary}");
            }
            if want.tcp_cut > 0 {
                let plain = format!(
                    "{} frames were cut inside their TCP/UDP header",
                    want.tcp_cut
                );
                assert!(summary.contains(&plain), "{summary}");
            }
            assert!(summary.contains(&format!("snap length of {} bytes", want.snaplen)));
            assert!(f["fix"].as_str().unwrap().contains("-s 0"));
            assert!(!f["evidence"].as_array().unwrap().is_empty());
        }
        if doc["connections"].as_u64() == Some(0) {
            // Nothing readable: the rules' service is not "without traffic" for that.
            assert_eq!(check(&doc, "topology")["status"], "info");
        } else {
            for id in ["tunnel.encapsulation", "tunnel.delivery"] {
                let c = check(&doc, id);
                assert_eq!(c["status"], "skip", "{set}: {c}");
                assert!(
                    c["reason"].as_str().unwrap().contains("capture.snaplen"),
                    "{c}"
                );
            }
            // A cut tunnelled packet is no service on port 0.
            let services = doc["topology"]["services"].as_array().unwrap();
            assert_eq!(services.len(), 1, "{services:?}");
            assert_eq!(services[0]["port"], 80);
        }
        nothing_against_the_deployment(&doc);
    }
}

/// Only the real servers' captures cut: what arrived cannot be read there, so nothing is
/// "lost"; the director's view still judges the encapsulation.
#[test]
fn cut_real_server_captures_do_not_make_tunnelled_packets_lost() {
    let files = vec![
        "fixtures/tutorial/client.pcap".to_string(),
        "fixtures/tutorial/server1.pcap".to_string(),
        derived("snaplen-64", "server2.pcap"),
        derived("snaplen-64", "server3.pcap"),
    ];
    let (code, doc) = verify(&with_rules(files, "tutorial"));
    assert_eq!(code, 3, "{}", doc["verdict"]);
    assert_eq!(check(&doc, "tunnel.encapsulation")["status"], "pass");
    assert_eq!(check(&doc, "tunnel.delivery")["status"], "skip");
    nothing_against_the_deployment(&doc);
}

/// Interface statistics that report drops: a capture finding with the counts the script
/// wrote (3 by the interface, 14 by the operating system, on server1.pcapng only); nothing
/// else changes, since every packet is in fact there.
#[test]
fn dropped_packets_are_reported_with_their_count() {
    let counts = counted();
    let files = captures("fixtures/derived/drops-pcapng");
    for f in &files {
        assert_eq!(
            counts[f].stat_entries, 1,
            "{f}: capinfos reads one statistics block"
        );
    }
    let (code, doc) = verify(&with_rules(files.clone(), "tutorial"));
    assert_eq!(code, 0, "{}", doc["verdict"]);
    let drops = findings(&doc, "capture.drops");
    assert_eq!(drops.len(), 1, "{drops:?}");
    let f = finding_on(
        &doc,
        "capture.drops",
        &derived("drops-pcapng", "server1.pcapng"),
    );
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["count"].as_u64(), Some(3 + 14));
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("3 by the interface") && summary.contains("14 by the operating"));
    assert!(f["fix"].as_str().unwrap().contains("-B"));
    nothing_against_the_deployment(&doc);
    // A warning about the capture fails the run only when asked to.
    let mut strict = with_rules(files, "tutorial");
    strict.extend(["--fail-on".to_string(), "warn".into()]);
    assert_eq!(verify(&strict).0, 1);
}

/// A real server's capture that lost a whole connection (its 13 frames, tshark's count,
/// removed) and reports as many drops: that connection is not "never arrived", the others are
/// judged. The same capture without statistics is the control: then nothing excuses the
/// absence, and delivery fails for that one connection, to server2 (conns.txt: rr's second).
#[test]
fn drops_excuse_a_missing_connection_only_when_the_capture_reports_them() {
    let counts = counted();
    let with = |server2: &str| {
        vec![
            "fixtures/tutorial/client.pcap".to_string(),
            "fixtures/tutorial/server1.pcap".to_string(),
            server2.to_string(),
            "fixtures/tutorial/server3.pcap".to_string(),
        ]
    };
    let reported = derived("drops-lost", "server2.pcapng");
    let unreported = derived("drops-lost-unreported", "server2.pcapng");
    assert_eq!(counts[&reported].stat_entries, 1);
    assert_eq!(counts[&unreported].stat_entries, 0);
    let (code, doc) = verify(&with_rules(with(&reported), "tutorial"));
    assert_eq!(code, 0, "{}", doc["verdict"]);
    let delivery = check(&doc, "tunnel.delivery");
    assert_eq!(delivery["status"], "pass", "{delivery}");
    assert_eq!(
        delivery["judged"].as_u64(),
        Some(director_connections("tutorial") - 1)
    );
    assert!(delivery["reason"]
        .as_str()
        .unwrap()
        .contains("capture.drops"));
    assert_eq!(finding_on(&doc, "capture.drops", &reported)["count"], 13);
    nothing_against_the_deployment(&doc);

    let (code, doc) = verify(&with_rules(with(&unreported), "tutorial"));
    assert_eq!(code, 1, "{}", doc["verdict"]);
    let lost = &findings(&doc, "tunnel.delivery")[0];
    assert!(
        lost["host"].as_str().unwrap().starts_with("172.25.67.2 "),
        "{lost}"
    );
    assert_eq!(lost["count"], 1);
}

/// pcap files record no drops: the check says so instead of passing on nothing.
#[test]
fn drops_are_not_passed_where_no_capture_records_them() {
    let (code, doc) = verify(&with_rules(captures("fixtures/tutorial"), "tutorial"));
    assert_eq!(code, 0);
    assert_eq!(check(&doc, "capture.drops")["status"], "skip");
}

/// The client's capture stopped before the others started: which ended before which, by how
/// long (capinfos' first and last frame times), and nothing against the deployment.
#[test]
fn captures_that_do_not_overlap_say_which_and_by_how_long() {
    let counts = counted();
    let (code, doc) = verify(&with_rules(
        captures("fixtures/derived/time-apart"),
        "tutorial",
    ));
    assert_eq!(code, 0, "{}", doc["verdict"]);
    assert_eq!(check(&doc, "capture.time")["status"], "warn");
    let client = derived("time-apart", "client.pcap");
    let apart = findings(&doc, "capture.time");
    assert_eq!(apart.len(), 3, "{apart:?}");
    for server in ["server1.pcap", "server2.pcap", "server3.pcap"] {
        let file = derived("time-apart", server);
        let gap = counts[&file].first - counts[&client].last;
        let says = format!("{client} ended {gap:.3} s before {file} began");
        assert!(
            apart
                .iter()
                .any(|f| f["summary"].as_str().unwrap().starts_with(&says)),
            "{says}: {apart:?}"
        );
    }
    nothing_against_the_deployment(&doc);
}

/// A clock an hour ahead (editcap -t 3600, which capinfos' first frame times show): noted,
/// with a time-zone hint, not a warning; the connections are matched all the same.
#[test]
fn a_clock_a_whole_hour_off_gets_a_time_zone_hint() {
    let counts = counted();
    let shifted = counts[&derived("clock-hour", "client.pcap")].first;
    let (code, doc) = verify(&with_rules(
        captures("fixtures/derived/clock-hour"),
        "tutorial",
    ));
    assert_eq!(code, 0, "{}", doc["verdict"]);
    let time = check(&doc, "capture.time");
    assert_eq!(time["status"], "info", "{time}");
    let f = finding_on(
        &doc,
        "capture.time",
        "the clock of fixtures/derived/clock-hour/client",
    );
    let summary = f["summary"].as_str().unwrap();
    // The shift the script applied, as the capture's times show it against the original.
    let original = first_frame_time("fixtures/tutorial/client.pcap");
    assert_eq!((shifted - original).round(), 3600.0);
    assert!(summary.contains("1 h 0 min ahead"), "{summary}");
    assert!(f["likely_cause"].as_str().unwrap().contains("time zone"));
    assert!(f["fix"].as_str().unwrap().contains("chrony"));
    assert_eq!(
        doc["connections"].as_u64(),
        Some(director_connections("tutorial"))
    );
    nothing_against_the_deployment(&doc);
}

/// Pairs of capture files of one host, from a fixture's hosts.json (which lvscheck never
/// reads).
fn hosts_captured_twice(fixture: &str) -> Vec<(String, String)> {
    let path = format!("{}/fixtures/{fixture}/hosts.json", root());
    let hosts: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in hosts["captures"].as_array().into_iter().flatten() {
        if let (Some(h), Some(f)) = (c["host"].as_str(), c["file"].as_str()) {
            by_host.entry(h.into()).or_default().push(f.into());
        }
    }
    let mut pairs = Vec::new();
    for files in by_host.values() {
        for (i, a) in files.iter().enumerate() {
            for b in &files[i + 1..] {
                pairs.push((format!("/{a} "), format!("/{b} ")));
            }
        }
    }
    pairs
}

/// The first frame time of a pcap, read from its first record header (seconds and
/// microseconds, little-endian as the tutorial's files are), without lvscheck.
fn first_frame_time(file: &str) -> f64 {
    let bytes = std::fs::read(format!("{}/{file}", root())).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    f64::from(u32_at(24)) + f64::from(u32_at(28)) / 1e6
}

/// The fixtures fixtures/README.md says nothing must fail in, captured as they should be:
/// no capture check warns or fails on them. (port-filter is healthy too, but captured with a
/// port filter: its own test above.) The notes they do get are the truth of their READMEs:
/// clock-skew's clocks (+3.5 s, -2.25 s) and wrr's two captures of rs-a (hosts.json).
#[test]
fn healthy_well_captured_fixtures_get_no_capture_warning() {
    let table = std::fs::read_to_string(format!("{}/fixtures/README.md", root())).unwrap();
    let healthy: Vec<&str> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 3 && cells[3].starts_with("nothing")).then(|| cells[1])
        })
        .filter(|f| *f != "port-filter")
        .collect();
    for must in [
        "tutorial",
        "wrr",
        "wlc-long",
        "sh-clients",
        "persistence",
        "clock-skew",
    ] {
        assert!(healthy.contains(&must), "{must} not in {healthy:?}");
    }
    for fixture in healthy {
        let (code, doc) = verify(&with_rules(
            captures(&format!("fixtures/{fixture}")),
            fixture,
        ));
        assert_eq!(code, 0, "{fixture}: {}", doc["verdict"]);
        for c in doc["checks"].as_array().unwrap() {
            if c["id"].as_str().unwrap().starts_with("capture.") {
                assert!(
                    c["status"] != "warn" && c["status"] != "fail",
                    "{fixture}: {c}"
                );
            }
        }
        let notes: Vec<&str> = findings(&doc, "capture.time")
            .iter()
            .map(|f| f["summary"].as_str().unwrap())
            .collect();
        match fixture {
            "clock-skew" => {
                assert_eq!(notes.len(), 2, "{notes:?}");
                assert!(notes
                    .iter()
                    .any(|n| n.contains("client.pcap (a client) is 3.500 s ahead")));
                assert!(notes
                    .iter()
                    .any(|n| n.contains("server2.pcap") && n.contains("2.250 s behind")));
            }
            _ => {
                // A host captured twice (hosts.json: one host, two files) is noted, once.
                let twice = hosts_captured_twice(fixture);
                assert_eq!(notes.len(), twice.len(), "{fixture}: {notes:?}");
                for (a, b) in twice {
                    assert!(
                        notes.iter().any(|n| n.contains(&a) && n.contains(&b)),
                        "{fixture}: {a} and {b} not noted: {notes:?}"
                    );
                }
            }
        }
    }
}
