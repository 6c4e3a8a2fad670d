//! `verify` on every lab fixture gives exactly the statuses its README says: the healthy ones
//! fail nothing; each failure fixture fails the expected check naming the right host, and no
//! other check fails.
//!
//! The expectations below are transcribed from each `fixtures/<name>/README.md` ("What a
//! correct verifier must report"), which the lab wrote from what each scenario configured.

use std::path::{Path, PathBuf};

use lvscheck::capture::CaptureSource;
use lvscheck::checks::Status;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;
use lvscheck::verify::{verify, Verification};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Every capture file of a fixture, in name order.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".pcap")
                || name.ends_with(".pcapng")
                || name.ends_with(".pcap.gz")
                || name.ends_with(".pcapng.gz")
        })
        .collect();
    files.sort();
    files
}

fn run(name: &str) -> Verification {
    let dir = fixture(name);
    let rules = read_rules(&dir.join("rules.txt")).expect("rules.txt parses");
    let opts = FlowOptions {
        expected: Some(expected_from_rules(&rules).0),
        ..FlowOptions::default()
    };
    let sources: Vec<CaptureSource> = captures(&dir).iter().map(CaptureSource::from_arg).collect();
    assert!(!sources.is_empty(), "{name}: no capture");
    verify(&sources, DecodeOptions::default(), &opts, Some(&rules))
}

/// Asserts the status of one check and, for a fail or warn, that a finding names `host`.
fn expect(v: &Verification, fixture: &str, id: &str, status: Status, host: Option<&str>) {
    let c = v
        .check(id)
        .unwrap_or_else(|| panic!("{fixture}: no check {id}"));
    assert_eq!(
        c.status, status,
        "{fixture}: {id} is {:?} ({}), expected {:?}",
        c.status, c.reason, status
    );
    if let Some(host) = host {
        assert!(
            c.findings.iter().any(
                |f| f.severity == status && f.host.as_deref().is_some_and(|h| h.contains(host))
            ),
            "{fixture}: {id} has no {status:?} finding naming {host}: {:#?}",
            c.findings
        );
    }
}

/// No check other than `allowed` may fail.
fn no_other_failure(v: &Verification, fixture: &str, allowed: &[&str]) {
    for c in &v.checks {
        if !allowed.contains(&c.id) {
            assert_ne!(
                c.status,
                Status::Fail,
                "{fixture}: {} fails falsely: {} {:#?}",
                c.id,
                c.reason,
                c.findings
            );
        }
    }
}

/// A healthy capture set: the LVS checks pass, topology is informational, scheduler passes.
fn healthy(name: &str, scheduler: Status) -> Verification {
    let v = run(name);
    for id in [
        "tunnel.encapsulation",
        "tunnel.delivery",
        "reply.present",
        "reply.source",
        "reply.direct",
        "arp.vip",
        "bypass",
        "mtu",
    ] {
        expect(&v, name, id, Status::Pass, None);
    }
    expect(&v, name, "topology", Status::Info, None);
    expect(&v, name, "scheduler", scheduler, None);
    v
}

#[test]
fn tutorial_is_healthy_and_rr_conforms() {
    let v = healthy("tutorial", Status::Pass);
    expect(&v, "tutorial", "capture.read", Status::Pass, None);
    assert_eq!(v.analysis.connections.len(), 10);
}

#[test]
fn wrr_with_three_link_types_is_healthy_and_conforms() {
    let v = healthy("wrr", Status::Pass);
    expect(&v, "wrr", "capture.read", Status::Pass, None);
    assert_eq!(v.analysis.connections.len(), 30);
}

#[test]
fn format_variants_change_nothing() {
    for name in [
        "formats-pcapng",
        "formats-nsec",
        "formats-gzip",
        "formats-merged",
        "clock-skew",
    ] {
        let v = healthy(name, Status::Pass);
        expect(&v, name, "capture.read", Status::Pass, None);
        assert_eq!(v.analysis.connections.len(), 10, "{name}");
    }
}

#[test]
fn a_capture_cut_mid_record_warns_and_the_rest_is_analysed() {
    let name = "formats-truncated";
    let v = healthy(name, Status::Pass);
    expect(&v, name, "capture.read", Status::Warn, None);
    let c = v.check("capture.read").unwrap();
    assert!(
        c.reason.contains("client.pcap") && c.reason.contains("14076"),
        "names the file and the offset: {}",
        c.reason
    );
    no_other_failure(&v, name, &[]);
}
