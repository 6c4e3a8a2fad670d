//! `lvscheck verify --json` on synthetic captures whose truth is known: the generator
//! (tests/synth_common/generator.rs) writes what each host would have captured and a
//! truth.json saying which real server every connection went to, the clock errors it applied
//! and the fault it built in. Expected values come from that truth, never from lvscheck.

#[path = "synth_common/generator.rs"]
mod generator;

use generator::{generate, CaptureFormat, Config, Fault};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Small enough to keep the test fast, large enough for several connections per client and
/// connections overlapping in time.
const CONNECTIONS: u64 = 300;
const SERVERS: usize = 3;

struct Run {
    truth: Value,
    report: Value,
    exit: i32,
    /// Capture file names in the order given to lvscheck (the JSON's capture indexes).
    files: Vec<String>,
}

impl Run {
    fn check(&self, id: &str) -> &Value {
        self.report["checks"]
            .as_array()
            .expect("checks is an array")
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in the report"))
    }

    fn host(&self, name: &str) -> &Value {
        self.truth["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("no host {name} in truth.json"))
    }

    fn capture_index(&self, host: &str) -> u64 {
        let file = self.host(host)["file"].as_str().expect("host was written");
        self.files
            .iter()
            .position(|f| f == file)
            .expect("file given") as u64
    }

    /// Real server address -> connections, from truth.json's connection list.
    fn truth_per_rs(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in self.truth["connections"].as_array().unwrap() {
            *m.entry(c["real_server"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        m
    }

    fn reported_per_rs(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in self.report["per_real_server"].as_array().unwrap() {
            let rs = r["real_server"].as_str().unwrap_or("(unknown)").to_string();
            *m.entry(rs).or_default() += r["connections"].as_u64().unwrap();
        }
        m
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvscheck-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(name: &str, cfg: &Config) -> Run {
    run_with(name, cfg, false)
}

/// [`run`], giving lvscheck the generator's rules.txt (`--rules`) when `rules` is set.
fn run_with(name: &str, cfg: &Config, rules: bool) -> Run {
    run_env(name, cfg, rules, &[])
}

/// [`run_with`], lvscheck run with `env` added to its environment.
fn run_env(name: &str, cfg: &Config, rules: bool, env: &[(&str, &str)]) -> Run {
    let dir = scratch(name);
    let summary = generate(cfg, &dir).expect("captures written");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(&summary.truth).unwrap()).expect("truth.json");
    // Not in host order: file order must carry no meaning.
    let mut files: Vec<String> = summary
        .captures
        .iter()
        .filter_map(|(_, p, _, _)| p.as_ref())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.reverse();
    // Without a director's or a real server's capture no tunnelled packet names the VIP, and
    // lvscheck gives no verdict on a guessed one: a user who captured only clients says which
    // address is the VIP, as here.
    let no_tunnel_seen = !cfg.only.is_empty()
        && !cfg
            .only
            .iter()
            .any(|h| h == "director" || h.starts_with("rs"));
    let vip = truth["vip"].as_str().unwrap().rsplit_once(':').unwrap().0;
    let vip_args: &[&str] = if no_tunnel_seen { &["--vip", vip] } else { &[] };
    let rules_path = dir.join("rules.txt");
    let rules_args: Vec<&std::ffi::OsStr> = if rules {
        vec!["--rules".as_ref(), rules_path.as_os_str()]
    } else {
        Vec::new()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .envs(env.iter().copied())
        .arg("verify")
        .arg("--json")
        .args(vip_args)
        .args(rules_args)
        .args(files.iter().map(|f| dir.join(f)))
        .output()
        .expect("lvscheck runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        truth,
        report,
        exit: out.status.code().expect("exited"),
        files,
    }
}

fn assert_healthy(r: &Run) {
    for c in r.report["checks"].as_array().unwrap() {
        let status = c["status"].as_str().unwrap();
        assert!(
            matches!(status, "pass" | "skip" | "info"),
            "check {} is {status}: {}\n{:#}",
            c["id"],
            c["reason"],
            c["findings"]
        );
    }
    assert_eq!(r.exit, 0, "exit status of a healthy run");
    assert_eq!(r.report["exit_code"], 0);
}

fn assert_counts(r: &Run) {
    let truth = r.truth_per_rs();
    assert_eq!(truth.len(), SERVERS, "every server got connections");
    assert_eq!(
        r.reported_per_rs(),
        truth,
        "connections per real server (truth.json vs per_real_server)"
    );
}

#[test]
fn healthy_pcap_every_check_passes_and_every_connection_has_its_server() {
    let r = run("healthy", &Config::new(CONNECTIONS, SERVERS));
    assert_healthy(&r);
    assert_counts(&r);
    assert_eq!(
        r.truth["connections"].as_array().unwrap().len() as u64,
        CONNECTIONS
    );
}

#[test]
fn healthy_pcapng_two_client_hosts() {
    let mut cfg = Config::new(CONNECTIONS, SERVERS);
    cfg.format = CaptureFormat::PcapNg;
    cfg.client_hosts = 2;
    cfg.seed = 7;
    let r = run("healthy-ng", &cfg);
    assert_healthy(&r);
    assert_counts(&r);
}

/// Clock errors of +-3 s on real servers (and a small one on the client): the same
/// connections are found, and each capture's offset is measured within 5 ms.
#[test]
fn clock_shifts_are_measured_and_connections_still_joined() {
    let mut cfg = Config::new(CONNECTIONS, SERVERS);
    cfg.clock_shift_ns.insert("rs1".into(), 3_000_000_000);
    cfg.clock_shift_ns.insert("rs2".into(), -3_000_000_000);
    cfg.clock_shift_ns.insert("client".into(), 120_000_000);
    let r = run("clock", &cfg);
    assert_healthy(&r);
    assert_counts(&r);
    let offsets = r.report["clock_offsets"].as_array().unwrap();
    let shift_of_capture = |capture: u64| -> i64 {
        let file = &r.files[capture as usize];
        let h = r.truth["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["file"] == file.as_str())
            .unwrap();
        h["clock_shift_ns"].as_i64().unwrap()
    };
    for host in ["rs1", "rs2", "rs3", "client", "director"] {
        let capture = r.capture_index(host);
        let o = offsets
            .iter()
            .find(|o| o["vantage"]["capture"] == capture)
            .unwrap_or_else(|| panic!("no clock offset for {host}"));
        let reference = o["reference"]["capture"].as_u64().unwrap();
        let expected = shift_of_capture(capture) - shift_of_capture(reference);
        let got = o["offset_ns"].as_i64().unwrap();
        assert!(
            (got - expected).abs() <= 5_000_000,
            "{host}: offset {got} ns, expected {expected} ns +- 5 ms"
        );
    }
}

/// The check that must fail for a fault on rs1, and that one of its failing findings names rs1
/// (by address or MAC) as the host.
fn assert_fault(fault: Fault, check: &str) -> Run {
    assert_fault_seen_by(fault, check, &[])
}

/// Same, with only the captures of `only` (all when empty).
fn assert_fault_seen_by(fault: Fault, check: &str, only: &[&str]) -> Run {
    let mut cfg = Config::new(CONNECTIONS / 2, SERVERS);
    cfg.fault = Some(fault);
    cfg.only = only.iter().map(|h| h.to_string()).collect();
    let r = run(&format!("{}-{}", fault.name(), only.join("-")), &cfg);
    let f = &r.truth["fault"];
    assert_eq!(f["host"], "rs1");
    let (addr, mac) = (f["addr"].as_str().unwrap(), f["mac"].as_str().unwrap());
    let c = r.check(check);
    assert_eq!(
        c["status"],
        "fail",
        "{check} with fault {}: {}",
        fault.name(),
        c["reason"]
    );
    let findings = c["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|x| x["severity"] == "fail"
            && x["host"]
                .as_str()
                .is_some_and(|h| h.contains(addr) || h.to_lowercase().contains(mac))),
        "{check}: no failing finding names rs1 ({addr} / {mac}): {:#}",
        c["findings"]
    );
    // Only rs1 is faulty.
    for x in findings.iter().filter(|x| x["severity"] == "fail") {
        let h = x["host"].as_str().unwrap_or("");
        for other in ["192.0.2.12", "192.0.2.13"] {
            assert!(!h.contains(other), "{check} blames {h}: {:#}", x);
        }
    }
    assert_eq!(r.exit, 1, "exit status with a failing check");
    assert_counts_within_totals(&r);
    r
}

/// A finding's count is part of its out_of, when it has one.
fn assert_counts_within_totals(r: &Run) {
    for c in r.report["checks"].as_array().unwrap() {
        for x in c["findings"].as_array().unwrap() {
            if let (Some(n), Some(of)) = (x["count"].as_u64(), x["out_of"].as_u64()) {
                assert!(
                    n <= of,
                    "{}: count {n} > out_of {of}: {}",
                    c["id"],
                    x["summary"]
                );
            }
        }
    }
}

#[test]
fn fault_rp_filter_fails_reply_present_on_rs1() {
    let r = assert_fault(Fault::RpFilter, "reply.present");
    // The director still tunnels every connection to its server.
    assert_counts(&r);
}

#[test]
fn fault_arp_fails_arp_vip_on_rs1() {
    let r = assert_fault(Fault::Arp, "arp.vip");
    assert_counts(&r);
}

#[test]
fn fault_reply_from_rip_fails_reply_source_on_rs1() {
    let r = assert_fault(Fault::ReplyFromRip, "reply.source");
    assert_counts(&r);
}

#[test]
fn fault_via_director_fails_reply_direct_on_rs1() {
    let r = assert_fault(Fault::ViaDirector, "reply.direct");
    assert_counts(&r);
}

/// Same seed, same bytes: the generator is deterministic.
#[test]
fn generator_is_deterministic() {
    let cfg = Config::new(50, 2);
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    let sa = generate(&cfg, &a).unwrap();
    generate(&cfg, &b).unwrap();
    for (_, p, _, _) in &sa.captures {
        let name = p.as_ref().unwrap().file_name().unwrap();
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name:?} differs between two runs with the same seed"
        );
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// Captures that do not cover the whole traffic: tcpdump started late on one real server and
/// stopped early on another. Nothing is wrong with the deployment, so nothing may fail, and
/// every connection still has its server (the director's capture shows the tunnel).
fn partial_captures(name: &str, host: &str, window_ms: (i64, i64)) {
    let mut cfg = Config::new(CONNECTIONS, SERVERS);
    cfg.seed = 11;
    cfg.capture_window_ns.insert(
        host.into(),
        (window_ms.0 * 1_000_000, window_ms.1 * 1_000_000),
    );
    let r = run(name, &cfg);
    assert_healthy(&r);
    assert_counts(&r);
}

#[test]
fn rs_capture_stopped_early_blames_nobody() {
    // The traffic lasts about 150 ms (300 connections at 2000/s).
    partial_captures("rs-early-stop", "rs2", (0, 100));
}

#[test]
fn director_capture_started_late_blames_nobody() {
    partial_captures("director-late", "director", (50, 1_000_000));
}

#[test]
fn rs_capture_started_late_blames_nobody() {
    partial_captures("rs-late", "rs1", (50, 1_000_000));
}

/// The faults seen without the real servers' captures (client and director only) and without
/// the client's (director and real servers only): each still shows, on rs1.
#[test]
fn faults_seen_from_client_and_director_only() {
    let only = ["client", "director"];
    assert_counts(&assert_fault_seen_by(
        Fault::RpFilter,
        "reply.present",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(
        Fault::ReplyFromRip,
        "reply.source",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(
        Fault::ViaDirector,
        "reply.direct",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(Fault::Arp, "arp.vip", &only));
}

#[test]
fn faults_seen_from_director_and_real_servers_only() {
    let only = ["director", "rs1", "rs2", "rs3"];
    assert_counts(&assert_fault_seen_by(
        Fault::RpFilter,
        "reply.present",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(
        Fault::ReplyFromRip,
        "reply.source",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(
        Fault::ViaDirector,
        "reply.direct",
        &only,
    ));
    assert_counts(&assert_fault_seen_by(Fault::Arp, "arp.vip", &only));
}

/// From the client alone, replies from 192.0.2.11:80 name rs1 by its address.
#[test]
fn fault_reply_from_rip_seen_from_client_only() {
    assert_fault_seen_by(Fault::ReplyFromRip, "reply.source", &["client"]);
}

/// The ARP replies rs1 sent, counted in its own capture (with etherparse, not lvscheck), are
/// what arp.vip reports: the same reply seen again arriving at the client is not another one.
#[test]
fn arp_reply_seen_in_two_captures_is_counted_once() {
    let mut cfg = Config::new(100, SERVERS);
    cfg.fault = Some(Fault::Arp);
    let dir = scratch("arp-once");
    let summary = generate(&cfg, &dir).unwrap();
    let truth: Value = serde_json::from_slice(&std::fs::read(&summary.truth).unwrap()).unwrap();
    let mut reader =
        pcap_file::pcap::PcapReader::new(std::fs::File::open(dir.join("rs1.pcap")).unwrap())
            .unwrap();
    let mut sent = 0;
    while let Some(p) = reader.next_packet() {
        let p = p.unwrap();
        let sliced = etherparse::SlicedPacket::from_ethernet(p.data());
        if let Ok(etherparse::SlicedPacket {
            net: Some(etherparse::NetSlice::Arp(a)),
            ..
        }) = &sliced
        {
            if a.operation() == etherparse::ArpOperation::REPLY
                && a.sender_protocol_addr() == generator::VIP.octets()
            {
                sent += 1;
            }
        }
    }
    assert!(sent > 0, "the fault makes rs1 answer ARP for the VIP");
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(["verify", "--json"])
        .args(
            [
                "client.pcap",
                "director.pcap",
                "rs1.pcap",
                "rs2.pcap",
                "rs3.pcap",
            ]
            .map(|f| dir.join(f)),
        )
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "arp.vip")
        .unwrap();
    let addr = truth["fault"]["addr"].as_str().unwrap();
    let finding = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["host"].as_str().is_some_and(|h| h.contains(addr)))
        .expect("a finding names rs1");
    assert_eq!(
        finding["count"].as_u64(),
        Some(sent),
        "{}",
        finding["summary"]
    );
}

#[test]
fn a_long_capture_is_checked_and_joined_as_it_goes() {
    // 1200 connections at 40 a second: 30 s of traffic, a handful open at once.
    let mut cfg = Config::new(1200, SERVERS);
    cfg.rate = 40.0;
    cfg.seed = 11;
    let r = run("long", &cfg);
    assert_healthy(&r);
    assert_counts(&r);
    assert_eq!(r.report["connections"], 1200);
    // verify checks each connection as it is rebuilt: it holds no more than flows does.
    let waiting = r.report["max_waiting"].as_u64().unwrap();
    assert!(
        waiting < 400,
        "verify: {waiting} connections waited at once"
    );

    // The same captures through `flows --json`: connections are joined a few seconds after
    // they end (a closed state waits 3 s, the join about 2 s more), not all at the end.
    let dir = scratch("long-flows");
    let summary = generate(&cfg, &dir).expect("captures written");
    let files: Vec<PathBuf> = summary
        .captures
        .iter()
        .filter_map(|(_, p, _, _)| p.clone())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("flows")
        .arg("--json")
        .args(&files)
        .output()
        .expect("lvscheck runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["record"], "summary");
    assert_eq!(last["connections_total"], 1200);
    assert_eq!(lines.len(), 1200 + 2);
    let waiting = last["max_waiting"].as_u64().unwrap();
    assert!(waiting < 400, "{waiting} connections waited at once");
    for s in last["stats"].as_array().unwrap() {
        assert!(s["max_in_flight"].as_u64().unwrap() < 600, "{s}");
        assert!(s["joined_at_end"].is_null(), "{s}");
    }
}

/// IPVS schedules a connection when its SYN reaches the director. At 20 000 connections a
/// second the SYNs are 50 µs apart on average, less than the wire's jitter (40-120 µs), so
/// many reach the director in another order than the clients sent them; round robin follows
/// the order of arrival, and a replay of the generator's own rules (rules.txt, as `ipvsadm
/// -Sn` prints them) reproduces every assignment truth.json records.
#[test]
fn round_robin_follows_the_order_syns_reach_the_director() {
    let mut cfg = Config::new(2000, 4);
    cfg.rate = 20_000.0;
    let r = run_with("rr-arrival-order", &cfg, true);
    let conns = r.truth["connections"].as_array().unwrap();
    // The case is real: round robin in the order the clients sent the SYNs would differ.
    let mut by_start: Vec<&Value> = conns.iter().collect();
    by_start.sort_by_key(|c| c["start_ns"].as_i64().unwrap());
    let servers: Vec<&str> = {
        let mut v: Vec<&str> = conns
            .iter()
            .map(|c| c["real_server"].as_str().unwrap())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let position = |c: &Value| {
        servers
            .iter()
            .position(|s| *s == c["real_server"].as_str().unwrap())
            .unwrap()
    };
    let reordered = by_start
        .windows(2)
        .filter(|w| (position(w[0]) + 1) % servers.len() != position(w[1]))
        .count();
    assert!(
        reordered > 0,
        "no SYN overtook another: the test proves nothing"
    );
    let sched = r.check("scheduler");
    assert_eq!(sched["status"], "pass", "{}", sched["reason"]);
    let n = conns.len();
    let reason = sched["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{n} of {n} assignments reproduced")),
        "{reason}"
    );
    assert_healthy(&r);
}

/// A service with more connections than a table keeps in memory (`LVSCHECK_SPILL_ROWS`, set
/// low here) goes to a temporary file in sorted runs and is merged back in order: the same
/// connections reach the same servers (truth.json), round robin still reproduces every
/// assignment, and the report is the one the table kept in memory gives.
#[test]
fn a_table_written_to_disk_gives_the_report_kept_in_memory() {
    let mut cfg = Config::new(2000, 4);
    cfg.rate = 20_000.0;
    // 2 000 connections: 20 runs of 100 rows, merged into two blocks of the sorted table.
    let spilled = run_env("spilled", &cfg, true, &[("LVSCHECK_SPILL_ROWS", "100")]);
    let kept = run_env("kept", &cfg, true, &[("LVSCHECK_SPILL_ROWS", "1000000000")]);
    assert_healthy(&spilled);
    assert_eq!(spilled.reported_per_rs(), spilled.truth_per_rs());
    let n = spilled.truth["connections"].as_array().unwrap().len();
    let reason = spilled.check("scheduler")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains(&format!("{n} of {n} assignments reproduced")),
        "{reason}"
    );
    // Everything but the captures' paths (each run has its own directory).
    for part in [
        "checks",
        "fairness",
        "verdict",
        "connections",
        "per_real_server",
    ] {
        assert_eq!(
            without_files(&spilled.report[part]),
            without_files(&kept.report[part]),
            "{part}"
        );
    }
}

/// A report part with every evidence packet's `file` left out: each run writes its captures
/// to a directory of its own.
fn without_files(part: &serde_json::Value) -> serde_json::Value {
    let mut part = part.clone();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if m.contains_key("frame") {
                    m.remove("file");
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut part);
    part
}
