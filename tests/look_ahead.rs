//! Each capture read once: the topology and the clocks are learnt from the first frames of each
//! capture (the look-ahead), which pass 2 replays before reading on. On captures larger than the
//! look-ahead this must give what reading every capture twice gives (`--read-twice`), or, when
//! the look-ahead did not show the whole deployment, read twice and say so.
//!
//! The captures are the generator's (tests/synth_common/generator.rs), some appended one after
//! the other as one longer capture; expected counts come from its truth.json.

#[path = "synth_common/generator.rs"]
mod generator;

use generator::{generate, Config};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Enough that every capture is several times the smallest look-ahead (256 KiB).
const CONNECTIONS: u64 = 1500;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvscheck-ahead-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Real server -> connections, from truth.json files.
fn truth_per_rs(truths: &[&Path]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for t in truths {
        let truth: Value = serde_json::from_slice(&std::fs::read(t).unwrap()).unwrap();
        for c in truth["connections"].as_array().unwrap() {
            *m.entry(c["real_server"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    m
}

fn reported_per_rs(report: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in report["per_real_server"].as_array().unwrap() {
        let rs = r["real_server"].as_str().unwrap_or("(unknown)").to_string();
        *m.entry(rs).or_default() += r["connections"].as_u64().unwrap();
    }
    m
}

fn verify(files: &[PathBuf], args: &[&str]) -> Value {
    json_of("verify", files, args)
}

/// `lvscheck COMMAND --json ARGS FILES`, parsed.
fn json_of(command: &str, files: &[PathBuf], args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg(command)
        .arg("--json")
        .args(args)
        .args(files)
        .output()
        .expect("lvscheck runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} --json printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Real server address -> connections, and the verdict, from `fairness --json`.
fn fairness_per_rs(report: &Value) -> (BTreeMap<String, u64>, Value) {
    let mut m = BTreeMap::new();
    for svc in report["services"].as_array().unwrap() {
        for s in svc["servers"].as_array().unwrap() {
            let addr: std::net::SocketAddr = s["addr"].as_str().unwrap().parse().unwrap();
            *m.entry(addr.ip().to_string()).or_default() += s["connections"].as_u64().unwrap();
        }
    }
    (m, report["verdict"].clone())
}

fn warnings(report: &Value) -> Vec<String> {
    report["read_warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The report says every capture was read twice, naming `why` (an address or a file).
fn assert_read_twice(report: &Value, why: &str) {
    let w = warnings(report);
    assert!(
        w.iter()
            .any(|w| w.contains("every capture was read twice") && w.contains(why)),
        "says it read twice, naming {why}: {w:?}"
    );
}

/// The report without what legitimately differs between one read and two: the clock
/// estimates (taken from a sample of the look-ahead instead of the whole captures) and the
/// warnings saying how the captures were read.
fn comparable(mut report: Value) -> Value {
    let obj = report.as_object_mut().unwrap();
    obj.remove("clock_offsets");
    obj.remove("read_warnings");
    obj.remove("max_waiting");
    strip(
        &mut report,
        &["offset_ns", "uncertainty_ns", "samples", "clock"],
    );
    report
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            for x in m.values_mut() {
                strip(x, keys);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

/// Appends pcap `more` (same link type and resolution) to pcap `to`.
fn append_pcap(to: &Path, more: &Path) {
    let bytes = std::fs::read(more).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(to).unwrap();
    std::io::Write::write_all(&mut f, &bytes[24..]).unwrap();
}

/// Captures of a client, a director and three real servers during two runs, the second
/// two seconds after the first with a fourth real server added (`ipvsadm -a`) that is not
/// captured itself, each host's two captures appended into one: the fourth appears only in
/// the director's, past its look-ahead. The captures, and the two runs' truth.json.
fn late_real_server(dir: &Path, seed: u64) -> (Vec<PathBuf>, [PathBuf; 2]) {
    let first = dir.join("first");
    let second = dir.join("second");
    let mut a = Config::new(CONNECTIONS, 3);
    a.seed = seed;
    let sa = generate(&a, &first).unwrap();
    let mut b = Config::new(CONNECTIONS, 4);
    b.seed = seed + 1;
    b.start_ns = sa.duration_ns + 2_000_000_000;
    let sb = generate(&b, &second).unwrap();
    let mut files = Vec::new();
    for host in ["client", "director", "rs1", "rs2", "rs3"] {
        let to = dir.join(format!("{host}.pcap"));
        std::fs::copy(first.join(format!("{host}.pcap")), &to).unwrap();
        append_pcap(&to, &second.join(format!("{host}.pcap")));
        files.push(to);
    }
    (files, [sa.truth, sb.truth])
}

#[test]
fn one_read_gives_what_two_reads_give_on_captures_larger_than_the_look_ahead() {
    let dir = scratch("same");
    let mut cfg = Config::new(CONNECTIONS, 3);
    cfg.seed = 5;
    let summary = generate(&cfg, &dir).unwrap();
    let files: Vec<PathBuf> = summary
        .captures
        .iter()
        .filter_map(|(_, p, _, _)| p.clone())
        .collect();
    let smallest = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .min()
        .unwrap();
    assert!(
        smallest > 4 * 256 * 1024,
        "each capture must be well past the look-ahead ({smallest} bytes)"
    );
    let rules = dir.join("rules.txt");
    let rules = rules.to_str().unwrap();
    // 1 MiB over 5 captures: each gets the smallest share, 256 KiB.
    let once = verify(&files, &["--rules", rules, "--look-ahead", "1"]);
    let twice = verify(&files, &["--rules", rules, "--read-twice"]);
    assert_eq!(once["status"], "pass", "{once:#}");
    assert_eq!(
        reported_per_rs(&once),
        truth_per_rs(&[&summary.truth]),
        "connections per real server"
    );
    assert!(
        !warnings(&once).iter().any(|w| w.contains("read twice")),
        "the look-ahead showed the whole deployment: {:?}",
        warnings(&once)
    );
    // The vantage points' counts cover the whole captures, not the look-ahead.
    let frames = |r: &Value| -> Vec<u64> {
        r["topology"]["vantages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["frames"].as_u64().unwrap())
            .collect()
    };
    let mut written: Vec<u64> = summary.captures.iter().map(|c| c.2).collect();
    let mut seen = frames(&once);
    written.sort_unstable();
    seen.sort_unstable();
    assert_eq!(
        seen, written,
        "frames per vantage point, from the generator"
    );
    assert_eq!(comparable(once), comparable(twice));
    // fairness reads the same way, with the same flags.
    let once = json_of("fairness", &files, &["--rules", rules, "--look-ahead", "1"]);
    let twice = json_of("fairness", &files, &["--rules", rules, "--read-twice"]);
    let (per_rs, verdict) = fairness_per_rs(&once);
    assert_eq!(
        per_rs,
        truth_per_rs(&[&summary.truth]),
        "fairness: {once:#}"
    );
    assert_eq!((per_rs, verdict), fairness_per_rs(&twice));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A real server that appears only after the look-ahead (added to the service later, and not
/// captured itself): pass 2's facts show it, `verify` starts over reading every capture twice
/// and says so, and gets every connection right.
#[test]
fn a_real_server_seen_only_past_the_look_ahead_makes_verify_read_twice() {
    let dir = scratch("late-rs");
    let (files, truths) = late_real_server(&dir, 6);
    let once = verify(&files, &["--look-ahead", "1"]);
    let twice = verify(&files, &["--read-twice"]);
    assert_read_twice(&once, "192.0.2.14");
    assert_eq!(
        reported_per_rs(&once),
        truth_per_rs(&[&truths[0], &truths[1]]),
        "connections per real server"
    );
    assert_eq!(comparable(once), comparable(twice));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flows --json` writes connections as they come and cannot take them back: when the
/// look-ahead misled it, it says what may be missing and how to avoid it.
#[test]
fn flows_json_says_when_the_look_ahead_misled_it() {
    let dir = scratch("late-rs-flows");
    let (files, _) = late_real_server(&dir, 8);
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(["flows", "--json", "--look-ahead", "1"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let all = serde_json::to_string(&last).unwrap();
    assert!(
        all.contains("--read-twice") && all.contains("192.0.2.14"),
        "the summary line names the real server missed and the option: {all}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A capture whose look-ahead holds no LVS traffic (a real server's capture that begins with
/// other traffic) gets at most a guessed role from it (its MAC is a real server's): pass 1
/// reads every capture to its end, and the analysis says so.
#[test]
fn a_role_the_look_ahead_cannot_settle_is_read_whole_first() {
    let dir = scratch("unsettled");
    let mut cfg = Config::new(CONNECTIONS, 3);
    cfg.seed = 10;
    let summary = generate(&cfg, &dir).unwrap();
    let files: Vec<PathBuf> = summary
        .captures
        .iter()
        .filter_map(|(_, p, _, _)| p.clone())
        .collect();
    // rs1's capture starts with 600 KB of its own DNS-like queries to another host, sent to
    // its gateway, two seconds before the LVS traffic.
    let rs1 = dir.join("rs1.pcap");
    let lvs = std::fs::read(&rs1).unwrap();
    let mut bytes = lvs[..24].to_vec();
    let start_s = u32::from_le_bytes(lvs[24..28].try_into().unwrap()) - 2;
    for i in 0..2000u32 {
        let frame = udp_frame(300, i as u16);
        bytes.extend_from_slice(&start_s.to_le_bytes());
        bytes.extend_from_slice(&(i * 400_000).to_le_bytes());
        bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&frame);
    }
    bytes.extend_from_slice(&lvs[24..]);
    std::fs::write(&rs1, bytes).unwrap();
    let once = verify(&files, &["--look-ahead", "1"]);
    assert_read_twice(&once, "rs1.pcap");
    assert_eq!(once["status"], "pass", "{once:#}");
    assert_eq!(reported_per_rs(&once), truth_per_rs(&[&summary.truth]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An Ethernet/IPv4/UDP frame from rs1 (the generator's MAC and address for it) to 10.9.9.2:53
/// through a gateway, with `payload` bytes (the generator's pcap is nanosecond-resolution,
/// little-endian).
fn udp_frame(payload: usize, id: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[
        0x02, 0, 0x5e, 0xaa, 0, 0x01, 0x02, 0, 0x5e, 0xe0, 0, 0, 0x08, 0x00,
    ]);
    let total = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 17, 0, 0, 192, 0, 2, 11, 10, 9, 9, 2]);
    let udp_len = (8 + payload) as u16;
    f.extend_from_slice(&[0xc0, 0x01, 0, 53]);
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0x5a, payload));
    f
}
