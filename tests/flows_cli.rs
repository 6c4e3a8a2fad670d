//! `lvscheck flows` as a user runs it: JSON Lines records, filters, exit status. Expected values
//! come from the fixtures' own ground truth (ipvsadm -Lnc, parsed with topology::rules).

use lvscheck::topology::rules::read_conns;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    v
}

fn flows(args: &[&str], files: &[PathBuf]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("flows")
        .args(args)
        .args(files)
        .output()
        .expect("runs");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn json_lines_hold_a_topology_the_filtered_connections_and_a_summary() {
    let dir = fixture("tutorial");
    let conns = read_conns(&dir.join("conns.txt")).unwrap();
    let rs = conns[0].rs.ip().to_string();
    let (code, lines) = flows(&["--json", "--rs", &rs], &captures(&dir));
    assert_eq!(code, 0);
    assert_eq!(lines[0]["record"], "topology");
    assert_eq!(lines[0]["schema_version"], 2);
    assert!(lines[0]["topology"]["vantages"].as_array().unwrap().len() == 4);
    let want = conns.iter().filter(|c| c.rs.ip().to_string() == rs).count();
    let (summary, records) = lines[1..].split_last().unwrap();
    assert_eq!(records.len(), want);
    assert_eq!(summary["record"], "summary");
    assert_eq!(summary["connections"], want);
    assert_eq!(summary["connections_total"], conns.len());
    assert_eq!(summary["stats"].as_array().unwrap().len(), 4);
    let mut ids = Vec::new();
    for l in records {
        assert_eq!(l["record"], "connection");
        assert_eq!(l["real_server"], rs.as_str());
        let client = l["client"].as_str().unwrap();
        assert!(conns
            .iter()
            .any(|c| c.client.to_string() == client && c.rs.ip().to_string() == rs));
        assert!(!l["legs"].as_array().unwrap().is_empty());
        ids.push(l["id"].as_u64().unwrap());
    }
    // Numbered in the order written (the order connections ended), the others filtered out.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.iter().all(|&i| i >= 1 && i <= conns.len() as u64));
}

#[test]
fn the_outcome_filter_selects_the_refused_connections() {
    // rs2 has no web server: its connections are refused, rs1's complete.
    let dir = fixture("not-listening-tcp");
    let conns = read_conns(&dir.join("conns.txt")).unwrap();
    let hosts: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hosts.json")).unwrap()).unwrap();
    let rs2 = hosts["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["host"] == "rs2")
        .unwrap()["ips"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (code, lines) = flows(&["--json", "--outcome", "refused"], &captures(&dir));
    assert_eq!(code, 0);
    let to_rs2 = conns
        .iter()
        .filter(|c| c.rs.ip().to_string() == rs2 && c.client.port() != 0)
        .count();
    assert!(to_rs2 > 0);
    assert_eq!(lines.len() - 2, to_rs2);
    assert_eq!(lines.last().unwrap()["record"], "summary");
    for l in &lines[1..lines.len() - 1] {
        assert_eq!(l["outcome"], "refused");
        assert_eq!(l["real_server"], rs2.as_str());
    }
}

#[test]
fn unreadable_input_and_bad_arguments_exit_2() {
    let (code, _) = flows(&["--json"], &[PathBuf::from("/nonexistent/capture.pcap")]);
    assert_eq!(code, 2);
    let dir = fixture("tutorial");
    let (code, _) = flows(&["--outcome", "sideways"], &captures(&dir));
    assert_eq!(code, 2);
    let (code, _) = flows(&["--role", "director=other.pcap"], &captures(&dir));
    assert_eq!(code, 2);
}

#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    let dir = fixture("tutorial");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("flows")
        .arg("--json")
        .args(captures(&dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // Closed before the first line is written, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (number, client) of each row of the connections table.
/// `lvscheck flows ARGS` on the captures in `dir`, as a table (exit 0 expected).
fn flows_table(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("flows")
        .args(args)
        .args(captures(dir))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

fn table_rows(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter(|l| l.contains("┆ tcp ") || l.contains("┆ udp "))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('│').split('┆').map(str::trim).collect();
            Some((cells.first()?.parse().ok()?, cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn a_filtered_table_numbers_connections_as_the_whole_one_does() {
    let dir = fixture("tutorial");
    let run = |args: &[&str]| flows_table(args, &dir);
    let all = table_rows(&run(&[]));
    assert_eq!(all.len(), 10);
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let conns = read_conns(&dir.join("conns.txt")).unwrap();
    let rs = conns[0].rs.ip().to_string();
    let text = run(&["--rs", &rs]);
    let some = table_rows(&text);
    assert!(!some.is_empty() && some.len() < all.len(), "{text}");
    assert!(text.contains(&format!("Connections ({} of 10)", some.len())));
    for row in &some {
        assert!(all.contains(row), "{row:?} not in the whole table");
    }
}

/// `--limit N` keeps the N selected connections that started first (numbered as in the whole
/// table) and says how many there were; a filter and a limit together count what the filter
/// selected.
#[test]
fn a_limited_table_keeps_the_earliest_and_counts_the_rest() {
    let dir = fixture("tutorial");
    let run = |args: &[&str]| flows_table(args, &dir);
    let all = table_rows(&run(&["--limit", "0"]));
    // conns.txt, the director's own table: the tutorial's 10 connections.
    let conns = read_conns(&dir.join("conns.txt")).unwrap();
    assert_eq!(all.len(), conns.len());
    let text = run(&["--limit", "3"]);
    assert_eq!(table_rows(&text), all[..3].to_vec());
    assert!(
        text.contains("the first 3 by start of the 10 selected, of 10"),
        "{text}"
    );
    let rs = conns[0].rs.ip().to_string();
    let filtered = table_rows(&run(&["--rs", &rs, "--limit", "0"]));
    let text = run(&["--rs", &rs, "--limit", "2"]);
    assert_eq!(table_rows(&text), filtered[..2].to_vec());
    assert!(
        text.contains(&format!(
            "the first 2 by start of the {} selected",
            filtered.len()
        )),
        "{text}"
    );
}
