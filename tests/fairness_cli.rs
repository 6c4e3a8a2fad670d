//! `lvscheck fairness` end to end on the lab's recordings: captures and rules in, JSON and
//! charts out.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_files(name: &str) -> (Vec<PathBuf>, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    pcaps.sort();
    (pcaps, dir.join("rules.txt"))
}

fn fairness_json(name: &str) -> serde_json::Value {
    let (pcaps, rules) = fixture_files(name);
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("fairness")
        .args(&pcaps)
        .arg("--rules")
        .arg(&rules)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn wlc_long_replays_every_decision() {
    let v = fairness_json("wlc-long");
    let c = &v["services"][0]["conformance"];
    assert_eq!(c["scheduler"], "wlc");
    assert_eq!(c["decisions"], 8);
    assert_eq!(c["matched"], 8);
    assert_eq!(c["mismatches"], 0);
}

#[test]
fn persistence_counts_template_assignments() {
    let v = fairness_json("persistence");
    let svc = &v["services"][0];
    assert_eq!(svc["persistence_s"], 120);
    let c = &svc["conformance"];
    assert_eq!(
        (c["decisions"].as_u64(), c["matched"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (c["persistent"].as_u64(), c["persistent_matched"].as_u64()),
        (Some(8), Some(8))
    );
}

#[test]
fn charts_are_written_where_asked() {
    let (pcaps, rules) = fixture_files("sh-clients");
    let dir = std::env::temp_dir().join(format!("lvscheck-cli-charts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("fairness")
        .args(&pcaps)
        .arg("--rules")
        .arg(&rules)
        .arg("--charts")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("16 of 16 scheduled decisions reproduced"),
        "{stdout}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(
        files.contains(&"tcp-10.7.0.100-80-timeline.svg".to_string()),
        "{files:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
