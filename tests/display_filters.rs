//! Every finding's Wireshark display filter is valid for Wireshark's own tools and shows the
//! finding's example packets: `tshark -r FILE -Y "frame.number == N && (FILTER)"` finds each
//! evidence frame. Needs tshark (Debian package tshark; `.ci/run` installs it and sets
//! LVSCHECK_REQUIRE_TSHARK=1 so that CI cannot skip this).

mod verify_common;

use std::path::Path;
use std::process::Command;

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;
use lvscheck::verify::verify;
use verify_common::tshark_available;

#[test]
fn every_filter_shows_its_evidence_in_tshark() {
    if !tshark_available() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for name in [
        "arp-vip",
        "arp-vip-late",
        "rp-filter",
        "no-vip",
        "reply-via-director",
        "not-listening-tcp",
        "not-listening-udp",
        "udp-wildcard",
        "mtu",
        "stale-vip-host",
    ] {
        let dir = root.join("fixtures").join(name);
        let rules = read_rules(&dir.join("rules.txt")).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        files.sort();
        let sources: Vec<CaptureSource> = files.iter().map(CaptureSource::from_arg).collect();
        let opts = FlowOptions {
            expected: Some(expected_from_rules(&rules).0),
            ..FlowOptions::default()
        };
        let v = verify(&sources, DecodeOptions::default(), &opts, Some(&rules));
        for finding in v.checks.iter().flat_map(|c| c.findings.iter()) {
            let Some(filter) = &finding.display_filter else {
                continue;
            };
            for packet in &finding.evidence {
                let out = Command::new("tshark")
                    .arg("-r")
                    .arg(&packet.file)
                    .arg("-Y")
                    .arg(format!("frame.number == {} && ({filter})", packet.frame))
                    .output()
                    .expect("tshark runs");
                assert!(
                    out.status.success(),
                    "{name} {}: tshark rejects {filter:?}: {}",
                    finding.check,
                    String::from_utf8_lossy(&out.stderr)
                );
                let lines = String::from_utf8_lossy(&out.stdout).lines().count();
                assert_eq!(
                    lines, 1,
                    "{name} {}: filter {filter:?} does not show frame {} of {}",
                    finding.check, packet.frame, packet.file
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} evidence packets checked");
}
