//! Every capture of the shared corpus (`../shared/corpus`: other projects' test captures,
//! damaged and hostile ones included; issue 11): `inspect --json`, `verify --json` and
//! `flows --json` each end within a time and memory bound, without a panic; the frames read
//! are the ones capinfos counts (MANIFEST.tsv) or a warning says why not; and a capture in
//! which tshark dissects no tunnel (tests/data/corpus-tunnels.tsv, made by
//! tests/data/corpus-tunnels.sh) is never failed: no VIP, no verdict.
//!
//! Skipped, saying so, when the corpus is not there (`LVSCHECK_CORPUS` names another place).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

mod process_common;
use process_common::run_bounded;

/// Wall time one command may take on one corpus file (the largest is a few MB; a hang is what
/// this catches, not slowness: the benchmarks measure speed).
const TIME_LIMIT: Duration = Duration::from_secs(120);
/// Address space one command may map (`ulimit -v`, KiB): unbounded memory is an abort, not a
/// machine brought down. A safety net only: the tests that bound memory check the peak
/// resident set, as address space also holds glibc's 64 MB reservation per malloc arena.
const MEMORY_LIMIT_KIB: u64 = 2 * 1024 * 1024;

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("LVSCHECK_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    };
    dir.join("MANIFEST.tsv").is_file().then_some(dir)
}

struct Entry {
    file: String,
    /// capinfos's packet count, None where capinfos refuses the file.
    capinfos: Option<u64>,
}

fn manifest(dir: &Path) -> Vec<Entry> {
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let file = f.next()?.to_string();
            let capinfos = f.next()?.parse().ok();
            Some(Entry { file, capinfos })
        })
        .collect()
}

/// File -> frames in which tshark dissects a tunnel.
fn tunnel_frames() -> HashMap<String, u64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus-tunnels.tsv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

struct Ran {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
    killed: bool,
    /// Peak resident memory (KiB).
    peak_rss_kib: u64,
}

/// Runs `lvscheck ARGS` under the address-space limit, killed after the time limit.
fn run(args: &[&str], file: &Path) -> Ran {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lvscheck"))
        .args(args)
        .arg(file)
        .env("NO_COLOR", "1");
    let r = run_bounded(command, None, TIME_LIMIT);
    Ran {
        code: r.status.code(),
        stdout: r.stdout,
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        took: r.took,
        killed: r.killed,
        peak_rss_kib: r.peak_rss_kib,
    }
}

/// JSON Lines as an array, or null when a line is not JSON or there is none.
fn json_lines(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let lines: Option<Vec<Value>> = text.lines().map(|l| serde_json::from_str(l).ok()).collect();
    match lines {
        Some(v) if !v.is_empty() => Value::Array(v),
        _ => Value::Null,
    }
}

/// What is wrong with one file's three runs, if anything.
fn judge(dir: &Path, e: &Entry, tunnels: &HashMap<String, u64>) -> Vec<String> {
    let path = dir.join(&e.file);
    let mut problems = Vec::new();
    let mut docs = Vec::new();
    for cmd in ["inspect", "verify", "flows"] {
        let r = run(&[cmd, "--json"], &path);
        let what = format!("{} {cmd}", e.file);
        if r.killed {
            problems.push(format!("{what}: killed after {:?}", r.took));
            docs.push(Value::Null);
            continue;
        }
        match r.code {
            Some(0..=3) => {}
            c => problems.push(format!(
                "{what}: exit {c:?} (a crash or an abort?): {}",
                r.stderr.lines().last().unwrap_or("")
            )),
        }
        if r.stderr.contains("panicked") {
            problems.push(format!("{what}: panicked: {}", r.stderr.trim()));
        }
        // `flows --json` writes JSON Lines: a topology record, connections, a summary.
        let doc: Value = if cmd == "flows" {
            json_lines(&r.stdout)
        } else {
            serde_json::from_slice(&r.stdout).unwrap_or(Value::Null)
        };
        // `verify` and `flows` refuse unusable input (exit 2) with a message instead of a
        // document; `inspect` always writes one.
        if doc.is_null() && !(r.code == Some(2) && cmd != "inspect") {
            problems.push(format!("{what}: no JSON document (exit {:?})", r.code));
        }
        docs.push(doc);
    }
    let (inspect, verify) = (&docs[0], &docs[1]);
    if let Some(c) = inspect["captures"].get(0) {
        let warned = c["error"].is_string()
            || c["summary"]["warnings"]
                .as_array()
                .is_some_and(|w| !w.is_empty());
        // A file of a link type Wireshark does not know is refused by capinfos; lvscheck reads
        // its frames and says, frame by frame, that it does not decode them.
        let undecoded = c["decode_notes"].as_array().is_some_and(|n| {
            !n.is_empty()
                && n.iter()
                    .all(|x| x["reason"].as_str().unwrap_or("").contains("not decoded"))
        });
        let frames = c["summary"]["frames"].as_u64();
        match e.capinfos {
            Some(n) if frames != Some(n) && !warned => problems.push(format!(
                "{}: {frames:?} frames read, capinfos counts {n}, and no warning says why",
                e.file
            )),
            None if !warned && !undecoded => problems.push(format!(
                "{}: capinfos refuses this file; lvscheck read {frames:?} frames without a \
                 warning",
                e.file
            )),
            _ => {}
        }
    }
    if tunnels.get(&e.file) == Some(&0) && verify["verdict"]["outcome"] == "failed" {
        let failed: Vec<String> = verify["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "fail")
            .map(|c| format!("{}: {}", c["id"], c["reason"]))
            .collect();
        problems.push(format!(
            "{}: no tunnel in it (tshark), yet verify FAILs: {}",
            e.file,
            failed.join("; ")
        ));
    }
    problems
}

#[test]
fn every_corpus_capture_is_read_within_bounds_and_never_failed_without_a_tunnel() {
    let Some(dir) = corpus() else {
        println!(
            "skipped: no corpus at ../shared/corpus (set LVSCHECK_CORPUS to run this test on one)"
        );
        return;
    };
    let entries = manifest(&dir);
    let tunnels = tunnel_frames();
    assert!(!entries.is_empty(), "an empty MANIFEST.tsv");
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = entries.get(i) else { break };
                let found = judge(&dir, e, &tunnels);
                problems.lock().unwrap().extend(found);
            });
        }
    });
    let mut problems = problems.into_inner().unwrap();
    problems.sort();
    assert!(
        problems.is_empty(),
        "{} problems on {} corpus files:\n{}",
        problems.len(),
        entries.len(),
        problems.join("\n")
    );
}

fn text_of(args: &[&str], file: &Path) -> (Option<i32>, String) {
    let r = run(args, file);
    let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
    text.push_str(&r.stderr);
    (r.code, text)
}

/// repro/nonlvs_verdicts: plain HTTP to a public resolver, a raw-IP capture, NFLOG and 802.11
/// radiotap: no VIP, so no verdict (inconclusive, exit 3), never "FAIL ... block ARP for the
/// VIP"; the link types lvscheck does not decode are named in capture.read.
#[test]
fn repro_captures_without_lvs_get_no_verdict() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let repro = dir.join("repro/nonlvs_verdicts");
    for (file, undecoded) in [
        ("tests_http-evader_http-evader-440_input.pcap", None),
        ("tests_scps_invalid.pcap", None),
        ("tests_nflog.pcap", Some("NFLOG (239)")),
        (
            "tests_radiotap-heapoverflow.pcap",
            Some("IEEE 802.11 radiotap (127)"),
        ),
    ] {
        let r = run(&["verify", "--json"], &repro.join(file));
        assert_eq!(r.code, Some(3), "{file}: {}", r.stderr);
        let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(doc["verdict"]["outcome"], "inconclusive", "{file}");
        let summary = doc["verdict"]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("no LVS service seen"),
            "{file}: {summary}"
        );
        for c in doc["checks"].as_array().unwrap() {
            assert_ne!(c["status"], "fail", "{file}: {c}");
        }
        let read = doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "capture.read")
            .unwrap();
        match undecoded {
            Some(name) => {
                assert_eq!(read["status"], "warn", "{file}");
                let reason = read["reason"].as_str().unwrap();
                assert!(
                    reason.contains(name) && reason.contains("does not decode"),
                    "{file}: {reason}"
                );
            }
            None => assert_eq!(read["status"], "pass", "{file}"),
        }
        let (_, text) = text_of(&["verify"], &repro.join(file));
        assert!(!text.contains("block ARP"), "{file}: {text}");
    }
}

/// repro/terminal_escapes: pcapng interface names carrying an OSC title, a colour, CR and a
/// line erase reach no terminal raw, from any command.
#[test]
fn repro_interface_names_with_control_characters_are_escaped() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let repro = dir.join("repro/terminal_escapes");
    for file in ["ifname_escape.pcapng", "idb_bad_opt_escape.pcapng"] {
        for cmd in ["inspect", "verify", "flows", "fairness"] {
            let (code, text) = text_of(&[cmd], &repro.join(file));
            assert!(matches!(code, Some(0..=3)), "{cmd} {file}: {code:?}");
            let bad: Vec<char> = text
                .chars()
                .filter(|c| c.is_control() && *c != '\n')
                .collect();
            assert!(bad.is_empty(), "{cmd} {file}: {bad:?} in\n{text}");
        }
    }
}

/// The packets capinfos (Wireshark) reads in a file: its count, or where it stopped on an
/// error; None when capinfos is not installed or refuses the file outright.
fn capinfos_packets(file: &Path) -> Option<u64> {
    let out = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(file)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |key: &str| {
        let rest = &text[text.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    after("Number of packets:").or_else(|| after("An error occurred after reading"))
}

/// repro/frame_count_disagreements: files libpcap or Wireshark refuse or read differently
/// (pcap 1.4, link-type reserved bits, pcapng sections 0.1, 1.1 and 2.0, absurd record
/// lengths). lvscheck reads what it can and says why its count differs from capinfos's, naming
/// the byte offset.
#[test]
fn repro_frame_counts_that_differ_from_capinfos_are_explained() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let repro = dir.join("repro/frame_count_disagreements");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&repro)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 7, "{files:?}");
    let refused = [
        ("tests_pcap-invalid-version-1.pcap", "pcap version 1.4"),
        (
            "tests_linktype-reserved-field-not-zero.pcap",
            "reserved bits set",
        ),
        ("tests_pcapng-invalid-vers-1.pcapng", "has version 0.1"),
        ("tests_pcapng-invalid-vers-2.pcapng", "has version 1.1"),
        ("pcapgo_tests_le_test901.pcapng", "has version 2.0"),
    ];
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let r = run(&["inspect", "--json"], file);
        let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
        let summary = &doc["captures"][0]["summary"];
        let warnings: Vec<&str> = summary["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["message"].as_str().unwrap())
            .collect();
        let frames = summary["frames"].as_u64().unwrap();
        if let Some(n) = capinfos_packets(file) {
            if n != frames {
                assert!(
                    warnings.iter().any(|w| w.contains("byte")),
                    "{name}: {frames} frames, capinfos {n}, warnings {warnings:?}"
                );
            }
        }
        if let Some((_, phrase)) = refused.iter().find(|(f, _)| *f == name) {
            assert!(
                warnings.iter().any(|w| w.contains(phrase)),
                "{name}: no warning saying {phrase:?}: {warnings:?}"
            );
        }
    }
}

/// repro/tunnel_count_disagreements: IPv4 under IPv6 next header 41 is malformed (the kernel
/// drops it), and IP behind an authentication header is IPsec, not an LVS tunnel; tshark shows
/// both paths (ipv6:ip, ip:ah:ip).
#[test]
fn repro_what_ipvs_never_sends_is_not_counted_as_a_tunnel() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let repro = dir.join("repro/tunnel_count_disagreements");
    for (file, note) in [
        (
            "tests_bug-7964-02_wrong-version-ipv6-ipv6.pcap",
            Some("IP version 4 under protocol 41"),
        ),
        ("tests_filter_AH-IPcomp-IPv4.pcap", None),
    ] {
        let r = run(&["inspect", "--json"], &repro.join(file));
        let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
        let capture = &doc["captures"][0];
        for layers in capture["layers_per_interface"].as_array().unwrap() {
            for (kind, n) in layers["tunnels"].as_object().unwrap() {
                assert_eq!(n, 0, "{file}: {kind} tunnels counted");
            }
        }
        if let Some(note) = note {
            let notes = capture["decode_notes"].to_string();
            assert!(notes.contains(note), "{file}: {notes}");
        }
        let r = run(&["verify", "--json"], &repro.join(file));
        let v: Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_ne!(v["verdict"]["outcome"], "failed", "{file}");
    }
}

/// repro/verify_cubic_interfaces: one packet on each of 1 000 pcapng interfaces, or in each of
/// 1 000 sections, took 30 s and 1.96 GB (clock pairs and `capture.time` findings for every
/// pair of interfaces; the corpus README measured 191 MB resident for `verify`). Now `verify`
/// and `flows` stay under 96 MB resident, and what they write grows like the interfaces (10x
/// from 100 to 1 000), not like their pairs (100x). The bound is on resident memory, not
/// address space: with `ulimit -v` at 256 MB the run failed at random in CI, as glibc reserves
/// 64 MB of address space for each allocating thread's malloc arena (five threads here).
#[test]
fn repro_many_interfaces_or_sections_cost_in_proportion() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let repro = dir.join("repro/verify_cubic_interfaces");
    for cmd in ["verify", "flows"] {
        let small = run(&[cmd, "--json"], &repro.join("ifaces_100.pcapng"));
        assert!(
            !small.killed && small.code.is_some(),
            "{cmd}: {}",
            small.stderr
        );
        for file in ["ng_1000_ifaces.pcapng", "ng_1000_sections.pcapng"] {
            let r = run(&[cmd, "--json"], &repro.join(file));
            assert!(
                matches!(r.code, Some(0..=3)) && !r.killed,
                "{cmd} {file}: exit {:?}: {}",
                r.code,
                r.stderr
            );
            assert!(
                r.peak_rss_kib < 96 * 1024,
                "{cmd} {file}: {} KiB resident at its peak",
                r.peak_rss_kib
            );
            let ratio = r.stdout.len() as f64 / small.stdout.len() as f64;
            assert!(
                ratio < 15.0,
                "{cmd} {file}: {} bytes written, {ratio:.1}x what 100 interfaces give",
                r.stdout.len()
            );
        }
    }
}

/// repro/inspect_interface_amplification: 100 000 interface description blocks and 2 frames
/// made `inspect --json` write 40 MB (one entry per interface). Empty interfaces past the
/// first 8 are counted, not listed; interfaces past 65 536 are not kept, which a warning
/// naming the byte says, and reading goes on.
#[test]
fn repro_empty_interfaces_are_counted_not_listed() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let file = dir.join("repro/inspect_interface_amplification/ng_100000_ifaces.pcapng");
    let r = run(&["inspect", "--json"], &file);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.peak_rss_kib < 96 * 1024,
        "{} KiB resident at its peak",
        r.peak_rss_kib
    );
    assert!(r.stdout.len() < 64 * 1024, "{} bytes", r.stdout.len());
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    let c = &doc["captures"][0];
    let listed = c["summary"]["interfaces"].as_array().unwrap().len() as u64;
    let omitted = c["empty_interfaces_omitted"].as_u64().unwrap();
    // Interfaces 0..65535 are kept (listed or counted), the rest only counted.
    assert_eq!(listed + omitted, 65_536);
    // tshark: two packets, on interfaces 0 and 99999; the second is on an interface past the
    // limit, skipped with its number kept.
    assert_eq!(c["summary"]["complete"], true);
    assert_eq!(c["summary"]["frames"], 1);
    assert_eq!(c["summary"]["skipped_records"], 1);
    let warnings = c["summary"]["warnings"].to_string();
    assert!(
        warnings.contains("at byte") && warnings.contains("not kept"),
        "{warnings}"
    );
}

/// repro/fifo_and_pipe: a FIFO hung `verify`, and `<(cat f)` passed what the file fails. Both
/// now give the file's own verdict.
#[test]
fn repro_a_fifo_or_a_pipe_gives_the_verdict_of_the_file() {
    let Some(dir) = corpus() else {
        println!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let file = dir.join("repro/fifo_and_pipe/ng_valid.pcapng");
    let verdict = |stdout: &[u8]| {
        let doc: Value = serde_json::from_slice(stdout).unwrap_or(Value::Null);
        doc["verdict"]["outcome"].clone()
    };
    let direct = run(&["verify", "--json"], &file);
    assert_eq!(direct.code, Some(1), "{}", direct.stderr);
    assert_eq!(verdict(&direct.stdout), "failed");
    let fifo = std::env::temp_dir().join(format!("lvscheck-repro-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    for script in [
        "\"$0\" verify --json <(cat \"$1\")",
        "mkfifo \"$2\" && { cat \"$1\" > \"$2\" & \"$0\" verify --json \"$2\"; }",
    ] {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_lvscheck"))
            .arg(&file)
            .arg(&fifo);
        let r = run_bounded(command, None, Duration::from_secs(60));
        assert!(!r.killed, "{script}: still running after 60 s");
        assert_eq!(r.status.code(), direct.code, "{script}");
        assert_eq!(verdict(&r.stdout), "failed", "{script}");
    }
    let _ = std::fs::remove_file(&fifo);
}
