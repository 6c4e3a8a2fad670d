//! `--director-state`: every fixture's own snapshots (conns.txt, `ipvsadm -Lnc`; stats.txt,
//! `ipvsadm -Ln --stats`, taken on the director right after the traffic) against its captures,
//! and edited copies of them that disagree with the traffic.
//!
//! The expected values come from the snapshot files themselves (read here with a few lines of
//! their own, not with lvscheck's parser), from the fixtures' READMEs and, where installed,
//! from tshark; never from lvscheck's output.

mod verify_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use verify_common::{check, root, tshark_available, verify};

/// One line of conns.txt: protocol, client, VIP, real server, as written.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    text: String,
    client: String,
    vip: String,
    rs: String,
}

/// The entries of an `ipvsadm -Lnc` file that are connections (not templates: client port 0).
fn entries(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("TCP ") || l.starts_with("UDP "))
        .map(|(i, l)| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Entry {
                line: i + 1,
                text: l.trim().to_string(),
                client: w[3].to_string(),
                vip: w[4].to_string(),
                rs: w[5].to_string(),
            }
        })
        .filter(|e| !e.client.ends_with(":0"))
        .collect()
}

/// The `Conns` column of stats.txt: the service's, then each server's, by address.
fn stats_conns(text: &str) -> (u64, BTreeMap<String, u64>) {
    let mut service = None;
    let mut servers = BTreeMap::new();
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["->", addr, conns, ..] if conns.parse::<u64>().is_ok() => {
                servers.insert(addr.to_string(), conns.parse().unwrap());
            }
            ["TCP" | "UDP", _, conns, ..] => service = conns.parse().ok(),
            _ => {}
        }
    }
    (service.expect("a service row"), servers)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(root()).join("fixtures").join(name)
}

/// The fixture's captures, in name order (as a shell expands `*.pcap`).
fn captures(name: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(fixture(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".pcap.gz")
        })
        .map(|p| {
            format!(
                "fixtures/{name}/{}",
                p.file_name().unwrap().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    files
}

/// `verify` on a fixture with its rules and the snapshot files given.
fn run(name: &str, state: &[&str]) -> (i32, Value) {
    let mut args = captures(name);
    args.push("--rules".into());
    args.push(format!("fixtures/{name}/rules.txt"));
    for s in state {
        args.push("--director-state".into());
        args.push(s.to_string());
    }
    verify(&args)
}

fn own_snapshots(name: &str) -> (i32, Value) {
    run(
        name,
        &[
            &format!("fixtures/{name}/conns.txt"),
            &format!("fixtures/{name}/stats.txt"),
        ],
    )
}

fn findings<'a>(c: &'a Value, severity: &str) -> Vec<&'a Value> {
    c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity)
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Fixtures whose README says nothing is wrong (exit 0), and every connection of which the
/// captures show: their own snapshots must keep them verified, every entry of the table
/// matched, and a counter below the captured count only noted when it is the estimator's lag.
#[test]
fn healthy_fixtures_stay_verified_with_their_own_snapshots() {
    for name in [
        "tutorial",
        "wrr",
        "wlc-long",
        "sh-clients",
        "persistence",
        "ipv6-healthy",
        "clock-skew",
        "mtu",
        "formats-pcapng",
    ] {
        let dir = fixture(name);
        let table = entries(&read(&dir.join("conns.txt")));
        let (service_conns, server_conns) = stats_conns(&read(&dir.join("stats.txt")));
        let (code, doc) = own_snapshots(name);
        assert_eq!(code, 0, "{name}: {}", doc["verdict"]["summary"]);
        assert!(doc["verdict"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "director.state"));
        let c = check(&doc, "director.state");
        assert!(
            findings(c, "fail").is_empty() && findings(c, "warn").is_empty(),
            "{name}: {c}"
        );
        let n = table.len();
        let per_rs: BTreeMap<&str, u64> = table.iter().fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.rs.as_str()).or_default() += 1;
            m
        });
        if service_conns as usize == n && per_rs.iter().all(|(rs, k)| server_conns[*rs] == *k) {
            assert_eq!(c["status"], "pass", "{name}: {c}");
            assert!(
                c["reason"].as_str().unwrap().contains(&format!(
                    "its table holds {n} of them, each on the real server"
                )),
                "{name}: {c}"
            );
            assert_eq!(c["judged"], n as u64, "{name}");
        } else {
            // ipv6-healthy, sh-clients, persistence: counters read before the estimator's copy
            // held the last connections (the READMEs say so for ipv6-healthy).
            assert!(service_conns < n as u64, "{name}");
            assert_eq!(c["status"], "info", "{name}: {c}");
            let lag = findings(c, "info");
            assert_eq!(lag.len(), 1, "{name}: {c}");
            let summary = lag[0]["summary"].as_str().unwrap();
            assert!(
                summary.contains(&format!("{service_conns} counted, {n} in the captures")),
                "{name}: {summary}"
            );
            assert!(summary.contains("last 2.5 s"), "{summary}");
            assert!(lag[0]["likely_cause"].as_str().unwrap().contains("2 s"));
            assert!(lag[0]["snapshot"][0]["text"]
                .as_str()
                .unwrap()
                .contains(&service_conns.to_string()));
        }
    }
}

/// ipv6-healthy's counters (3 connections) lag the ten connections conns.txt lists and the
/// director's capture shows: tshark counts the client SYNs that left it tunnelled.
#[test]
fn ipv6_lag_is_told_with_the_numbers_tshark_counts() {
    let dir = fixture("ipv6-healthy");
    let table = entries(&read(&dir.join("conns.txt")));
    let (counted, _) = stats_conns(&read(&dir.join("stats.txt")));
    assert_eq!((table.len(), counted), (10, 3));
    if tshark_available() {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(dir.join("director.pcap"))
            .args([
                "-Y",
                "ipv6.nxt == 41 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
                "-T",
                "fields",
                "-e",
                "tcp.srcport",
            ])
            .output()
            .unwrap();
        let ports: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let listed: BTreeSet<String> = table
            .iter()
            .map(|e| e.client.rsplit_once(':').unwrap().1.to_string())
            .collect();
        assert_eq!(ports, listed);
    }
    let (code, doc) = own_snapshots("ipv6-healthy");
    assert_eq!(code, 0);
    let c = check(&doc, "director.state");
    let text = c["findings"][0]["summary"].as_str().unwrap();
    assert!(
        text.contains("tcp [2001:db8:7::100]:80: 3 counted, 10 in the captures"),
        "{text}"
    );
}

/// The fixtures whose deployment is broken: the snapshot agrees with the traffic in each (the
/// director's table holds what the captures show), so director.state adds no failure and the
/// exit status is the README's.
#[test]
fn broken_fixtures_keep_their_exit_status_and_the_snapshot_agrees() {
    for (name, exit) in [
        ("arp-vip", 1),
        ("arp-vip-late", 1),
        ("rp-filter", 1),
        ("span-rp-filter", 1),
        ("dr-server", 1),
        ("no-vip", 1),
        ("reply-via-director", 1),
        ("not-listening-tcp", 1),
        ("not-listening-udp", 1),
        ("udp-wildcard", 1),
        ("ipv6-nd-vip", 1),
        ("ipv6-outer-vip", 1),
        ("port-filter", 3),
    ] {
        let table = entries(&read(&fixture(name).join("conns.txt")));
        let (code, doc) = own_snapshots(name);
        assert_eq!(code, exit, "{name}: {}", doc["verdict"]["summary"]);
        let c = check(&doc, "director.state");
        assert!(
            c["status"] == "pass" || c["status"] == "info",
            "{name}: {c}"
        );
        let reason = c["reason"].as_str().unwrap();
        let n = table.len();
        match name {
            // The clients bypassed the director: its table is empty, its counters 0.
            "arp-vip" => {
                assert_eq!(n, 0);
                assert!(reason.contains("its table is empty"), "{reason}");
            }
            // `tcp port 80` on every capture: no tunnelled packet, so no real server shown.
            "port-filter" => assert!(
                reason.contains(&format!(
                    "its table holds {n} of them: 0 on the real server the captures show, {n} \
                     whose real server the captures do not show"
                )),
                "{reason}"
            ),
            // not-listening-tcp's counters say 5 for 6 connections: the lag, as an info.
            "not-listening-tcp" => assert_eq!(c["status"], "info", "{c}"),
            _ => assert!(
                reason.contains(&format!("its table holds {n} of them, each on")),
                "{name}: {reason}"
            ),
        }
    }
}

/// Writes `text` into a fresh temporary directory and gives its path.
fn temp_file(tag: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvscheck-dstate-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The tutorial's table with its first entry sent to the other real server, and two entries
/// the captures cannot show: a port of the captured client no capture holds, and a client no
/// capture shows.
#[test]
fn an_edited_table_fails_on_the_swapped_server_and_warns_on_unseen_entries() {
    let original = read(&fixture("tutorial").join("conns.txt"));
    let table = entries(&original);
    let servers: BTreeSet<&str> = table.iter().map(|e| e.rs.as_str()).collect();
    assert_eq!(servers.len(), 2);
    let first = &table[0];
    let other = *servers.iter().find(|s| **s != first.rs).unwrap();
    let used: BTreeSet<&str> = table.iter().map(|e| e.client.as_str()).collect();
    let client_ip = first.client.rsplit_once(':').unwrap().0;
    let unseen_port = (40000..).find(|p| !used.contains(format!("{client_ip}:{p}").as_str()));
    let extra_same = format!(
        "TCP 01:30  FIN_WAIT    {client_ip}:{} {}   {}",
        unseen_port.unwrap(),
        first.vip,
        first.rs
    );
    let extra_stranger = format!(
        "TCP 01:31  FIN_WAIT    198.51.100.7:40002 {}   {other}",
        first.vip
    );
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    lines[first.line - 1] = first.text.replace(&first.rs, other);
    lines.push(extra_same.clone());
    lines.push(extra_stranger.clone());
    let edited = temp_file("swap", "conns.txt", &(lines.join("\n") + "\n"));

    let (code, doc) = run(
        "tutorial",
        &[edited.to_str().unwrap(), "fixtures/tutorial/stats.txt"],
    );
    assert_eq!(code, 1, "{}", doc["verdict"]["summary"]);
    let c = check(&doc, "director.state");
    assert_eq!(c["status"], "fail");

    let fail = findings(c, "fail");
    assert_eq!(fail.len(), 1, "{c}");
    let f = fail[0];
    let summary = f["summary"].as_str().unwrap();
    let first_ip = first.rs.rsplit_once(':').unwrap().0;
    let other_ip = other.rsplit_once(':').unwrap().0;
    assert!(summary.contains(&first.client), "{summary}");
    assert!(
        summary.contains(&format!("went to {first_ip} ")),
        "the captured server: {summary}"
    );
    assert!(
        summary.contains(&format!("says {other_ip} ")),
        "the table's server: {summary}"
    );
    assert_eq!(f["count"], 1);
    assert!(f["host"].as_str().unwrap().starts_with("172.25.67.1 ("));
    assert_eq!(f["snapshot"][0]["line"], first.line as u64);
    assert!(f["snapshot"][0]["text"].as_str().unwrap().ends_with(other));
    let evidence = &f["evidence"][0];
    assert_eq!(evidence["file"], "fixtures/tutorial/server1.pcap");
    if tshark_available() {
        // The evidence frame is the connection's request leaving the director tunnelled to the
        // server conns.txt first named: outer destination that server, inner client port the
        // entry's.
        let port = first.client.rsplit_once(':').unwrap().1;
        let out = Command::new("tshark")
            .arg("-r")
            .arg(fixture("tutorial").join("server1.pcap"))
            .arg("-Y")
            .arg(format!(
                "frame.number == {} && ip.proto == 4 && ip.dst == {first_ip} && tcp.srcport == \
                 {port} && ({})",
                evidence["frame"],
                f["display_filter"].as_str().unwrap()
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }

    let warn = findings(c, "warn");
    assert_eq!(warn.len(), 1, "{c}");
    let w = warn[0];
    assert_eq!(w["count"], 2);
    assert_eq!(w["out_of"], table.len() as u64 + 2);
    assert!(w["summary"]
        .as_str()
        .unwrap()
        .contains("1 of them from clients no capture shows"));
    let shown: Vec<&str> = w["snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(shown, [extra_same.trim(), extra_stranger.trim()]);
    assert!(w["likely_cause"]
        .as_str()
        .unwrap()
        .contains("started after"));

    // The text report prints the snapshot lines, with the file and line.
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .arg("verify")
        .args(captures("tutorial"))
        .arg("--director-state")
        .arg(&edited)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "  snapshot: {}:{}: {}",
            edited.display(),
            first.line,
            lines[first.line - 1].trim()
        )),
        "{text}"
    );
    std::fs::remove_dir_all(edited.parent().unwrap()).unwrap();
}

/// stats.txt with the `Conns` column of the service row and of every server row replaced.
fn with_conns(stats: &str, service: u64, server: u64) -> String {
    stats
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["TCP", addr, _, rest @ ..] => format!("TCP  {addr} {service} {}", rest.join(" ")),
                ["->", addr, c, rest @ ..] if c.parse::<u64>().is_ok() => {
                    format!("  -> {addr} {server} {}", rest.join(" "))
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Counters edited against the tutorial's ten connections (5 per server, over 19 s): more
/// than captured is a note (traffic before the captures); far fewer than captured, more than
/// the last 2.5 s could hold, a warning; a service the captures use missing, a warning.
#[test]
fn edited_counters_are_told_apart() {
    let stats = read(&fixture("tutorial").join("stats.txt"));
    let (service, servers) = stats_conns(&stats);
    assert_eq!(service, 10);
    assert!(servers.values().all(|n| *n == 5));
    let path = temp_file("counters", "stats.txt", "");
    let judged = |text: String| {
        std::fs::write(&path, text).unwrap();
        let (code, doc) = run("tutorial", &[path.to_str().unwrap()]);
        let c = check(&doc, "director.state");
        let summary = c["findings"][0]["summary"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (code, c["status"].as_str().unwrap().to_string(), summary)
    };
    let (code, status, s) = judged(with_conns(&stats, 40, 20));
    assert_eq!((code, status.as_str()), (0, "info"), "{s}");
    assert!(
        s.contains("tcp 172.25.67.100:80: 40 counted, 10 in the captures (30 more)"),
        "{s}"
    );
    assert!(s.contains("20 counted, 5 in the captures (15 more)"), "{s}");

    // A warning does not fail the run.
    let (code, status, s) = judged(with_conns(&stats, 2, 1));
    assert_eq!((code, status.as_str()), (0, "warn"), "{s}");
    assert!(
        s.contains("more than the 2 s their copy lags explains"),
        "{s}"
    );
    assert!(
        s.contains("tcp 172.25.67.100:80: 2 counted, 10 in the captures"),
        "{s}"
    );

    let elsewhere = stats.replace("172.25.67.100:80", "172.25.67.200:80");
    std::fs::write(&path, elsewhere).unwrap();
    let (_, doc) = run("tutorial", &[path.to_str().unwrap()]);
    let c = check(&doc, "director.state");
    let warn = findings(c, "warn");
    assert!(
        warn.iter()
            .any(|f| f["summary"].as_str().unwrap().contains(
                "no service tcp 172.25.67.100:80, though the captures show 10 connections"
            )),
        "{c}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Both listings in one file read as the two files do.
#[test]
fn one_file_with_both_listings() {
    let both = read(&fixture("tutorial").join("conns.txt"))
        + &read(&fixture("tutorial").join("stats.txt"));
    let path = temp_file("both", "director.txt", &both);
    let (code, doc) = run("tutorial", &[path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let reason = check(&doc, "director.state")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("its table holds 10 of them"), "{reason}");
    assert!(reason.contains("its counters agree"), "{reason}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Without snapshots the check is skipped, saying what to give, and the verdict is as before;
/// required by `--require`, it makes the run inconclusive.
#[test]
fn without_snapshots_the_check_is_skipped() {
    let (code, doc) = run("tutorial", &[]);
    assert_eq!(code, 0);
    let c = check(&doc, "director.state");
    assert_eq!(c["status"], "skip");
    assert!(c["reason"].as_str().unwrap().contains("--director-state"));
    assert!(!doc["verdict"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "director.state"));
    let mut args = captures("tutorial");
    args.extend(["--require".to_string(), "director.state".to_string()]);
    let (code, doc) = verify(&args);
    assert_eq!(code, 3);
    assert_eq!(doc["verdict"]["not_run"][0]["check"], "director.state");
}

/// A file that is neither listing, or cannot be read, is refused naming it: exit 2, nothing
/// on standard output.
#[test]
fn files_that_are_no_snapshot_are_refused() {
    for (file, says) in [
        (
            "fixtures/tutorial/rules.txt",
            "fixtures/tutorial/rules.txt:1: neither",
        ),
        ("fixtures/tutorial/rules-nosort.txt", "give it with --rules"),
        (
            "fixtures/tutorial/no-such-file.txt",
            "fixtures/tutorial/no-such-file.txt",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
            .current_dir(root())
            .arg("verify")
            .args(captures("tutorial"))
            .args(["--director-state", file])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{file}: {err}");
    }
}
