//! Captures large in an odd dimension (issue 11): many pcapng interfaces or sections that saw
//! the same packet, many interfaces that saw nothing. What is asserted is behaviour: every
//! interface's clock is still found, findings and output stay proportional to what carried
//! frames, and what is left out is counted. No timing: the bench (bench/run.sh --scale) measures
//! that. Expected values come from the bytes written here.

mod capture_common;

use std::process::Command;

use capture_common::{Pcapng, TempFile};
use serde_json::Value;

/// One Ethernet frame: UDP 10.0.0.1:1234 -> 10.0.0.2:80, payload "ping" (the packet of
/// ../shared/corpus/repro/verify_cubic_interfaces).
fn frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let ip = [
        0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    f.extend(ip);
    f.extend([0x04, 0xd2, 0, 80, 0, 12, 0, 0]);
    f.extend(b"ping");
    f
}

const ETHERNET: u16 = 1;
/// Microsecond ticks (the pcapng default resolution).
const MS: u64 = 1000;
const T0: u64 = 1_700_000_000_000_000;

fn lvscheck(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("lvscheck runs");
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn json(args: &[&str]) -> (usize, Value) {
    let (_, out) = lvscheck(args);
    let doc = serde_json::from_slice(&out).expect("JSON on stdout");
    (out.len(), doc)
}

/// `n` interfaces declared, frames (one each, 1 ms apart) on those in `with_frames`.
fn interfaces(n: u32, with_frames: &[u32]) -> Vec<u8> {
    let mut ng = Pcapng::new(false);
    for _ in 0..n {
        ng.interface(ETHERNET, 262_144, &[]);
    }
    let f = frame();
    for (k, &i) in with_frames.iter().enumerate() {
        ng.epb(i, T0 + k as u64 * MS, &f, f.len() as u32);
    }
    ng.bytes
}

/// `n` sections of one interface and one frame each, section i's frame at i ms.
fn sections(n: u32) -> Vec<u8> {
    let mut ng = Pcapng::new(false);
    let f = frame();
    for i in 0..n {
        if i > 0 {
            ng.section(false);
        }
        ng.interface(ETHERNET, 262_144, &[]);
        ng.epb(0, T0 + u64::from(i) * MS, &f, f.len() as u32);
    }
    ng.bytes
}

/// Interfaces without frames that inspect and verify still list one by one.
const EMPTY_LISTED: u64 = 8;
/// What one listed interface may cost in the output (pretty JSON of its description and its
/// layer counts is about 1 KB), and what a capture's block costs besides.
const BYTES_PER_LISTED: usize = 2_000;
const BYTES_BESIDES: usize = 20_000;

#[test]
fn inspect_counts_empty_interfaces_instead_of_listing_them() {
    let n = 20_000;
    let carried = [3, 17_000];
    let file = TempFile::new("many-empty.pcapng", &interfaces(n, &carried));
    let path = file.0.to_str().unwrap();
    let (bytes, doc) = json(&["inspect", "--json", path]);
    assert_eq!(doc["schema_version"], 2);
    let capture = &doc["captures"][0];
    let listed = carried.len() as u64 + EMPTY_LISTED;
    assert_eq!(
        capture["empty_interfaces_omitted"],
        u64::from(n) - listed,
        "{capture}"
    );
    let ids: Vec<u64> = capture["summary"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    // The two that carried frames, and the first eight that did not, in file order.
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 17_000]);
    let frames: Vec<u64> = capture["summary"]["frames_per_interface"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(frames, vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    let layers = capture["layers_per_interface"].as_array().unwrap();
    assert_eq!(layers.len(), ids.len());
    assert_eq!(layers[3]["udp"], 1);
    assert_eq!(layers[9]["udp"], 1);
    assert_eq!(capture["span_per_interface"].as_array().unwrap().len(), 10);
    assert!(
        bytes < listed as usize * BYTES_PER_LISTED + BYTES_BESIDES,
        "{bytes} bytes of JSON for {listed} interfaces listed"
    );

    let (code, text) = lvscheck(&["inspect", path]);
    assert_eq!(code, 0);
    let text = String::from_utf8(text).unwrap();
    let omitted = u64::from(n) - listed;
    assert!(
        text.contains(&format!(
            "interfaces {n} read; {omitted} without frames not shown"
        )),
        "{text}"
    );
    assert!(text.len() < listed as usize * BYTES_PER_LISTED + BYTES_BESIDES);
}

#[test]
fn verify_lists_the_interfaces_that_carried_frames_and_counts_the_rest() {
    let n = 5_000;
    let file = TempFile::new("many-empty-verify.pcapng", &interfaces(n, &[1, 4_000]));
    let (bytes, doc) = json(&["verify", "--json", file.0.to_str().unwrap()]);
    let capture = &doc["captures"][0];
    assert_eq!(
        capture["empty_interfaces_omitted"],
        u64::from(n) - 2 - EMPTY_LISTED
    );
    let ids: Vec<u64> = capture["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 4_000]);
    assert!(bytes < 10 * BYTES_PER_LISTED + 2 * BYTES_BESIDES, "{bytes}");
}

/// The offsets verify finds for interfaces that all saw one packet, interface or section i at
/// i ms: interface i's clock is i ms ahead of interface 0's, the reference.
fn assert_every_clock_found(doc: &Value, n: u64) {
    let offsets = doc["clock_offsets"].as_array().unwrap();
    assert_eq!(offsets.len() as u64, n);
    for (i, o) in offsets.iter().enumerate() {
        assert_ne!(o["method"], "unmatched", "{o}");
        assert_eq!(o["offset_ns"], i as i64 * 1_000_000, "{o}");
    }
}

/// All of them are one host (one MAC) over overlapping times: one finding for the group, not
/// one per pair (half a million for a thousand interfaces).
fn assert_one_finding_for_the_host(doc: &Value, n: u64) {
    let time = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "capture.time")
        .unwrap();
    let findings = time["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{time}");
    assert_eq!(findings[0]["count"], n);
    let summary = findings[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("{n} captures of one host")),
        "{summary}"
    );
}

#[test]
fn a_packet_seen_on_a_thousand_interfaces_gives_every_clock_and_one_finding() {
    let n: u32 = 1_000;
    let all: Vec<u32> = (0..n).collect();
    let file = TempFile::new("thousand-interfaces.pcapng", &interfaces(n, &all));
    let (bytes, doc) = json(&["verify", "--json", file.0.to_str().unwrap()]);
    assert_every_clock_found(&doc, u64::from(n));
    assert_one_finding_for_the_host(&doc, u64::from(n));
    // One packet: one connection, its legs at every interface joined.
    assert_eq!(doc["connections"], 1);
    // Proportional to the interfaces: each is listed with its frames, vantage point and clock.
    assert!(bytes < n as usize * 3 * BYTES_PER_LISTED, "{bytes}");
}

#[test]
fn a_packet_seen_in_a_thousand_sections_gives_every_clock_and_one_finding() {
    let n: u32 = 1_000;
    let file = TempFile::new("thousand-sections.pcapng", &sections(n));
    let (_, doc) = json(&["verify", "--json", file.0.to_str().unwrap()]);
    assert_every_clock_found(&doc, u64::from(n));
    assert_one_finding_for_the_host(&doc, u64::from(n));
    assert_eq!(doc["connections"], 1);
    let (_, flows) = lvscheck(&["flows", "--json", file.0.to_str().unwrap()]);
    let records: Vec<Value> = flows
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let connections: Vec<&Value> = records
        .iter()
        .filter(|r| r["record"] == "connection")
        .collect();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0]["legs"].as_array().unwrap().len() as u32, n);
}
