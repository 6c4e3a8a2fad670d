//! Captures that can be read only once: standard input (`-`), a named FIFO, a shell's process
//! substitution (`<(cat f)`, a /dev/fd pipe). Every capture is read more than once, so such an
//! input is copied first; the verdict must be the one the files themselves get, with nothing
//! left hanging (repro: ../shared/corpus/repro/fifo_and_pipe, where a FIFO hung forever and
//! `<(cat f)` passed a capture the file itself failed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod process_common;
use process_common::run_bounded;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/rp-filter")
        .join(name)
}

const HOSTS: [&str; 4] = ["director.pcap", "client.pcap", "rs1.pcap", "rs2.pcap"];

/// Runs a shell command line (`$0` is lvscheck), killed after 60 s: a hang fails the test
/// instead of blocking it.
fn sh(script: &str, stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(fixture(""));
    let r = run_bounded(command, stdin.map(<[u8]>::to_vec), Duration::from_secs(60));
    assert!(
        !r.killed,
        "`{script}` still running after 60 s: a stream read twice hangs"
    );
    Output {
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
    }
}

/// The verdict and every check's status, which must not depend on how a capture arrived.
fn outcome(out: &Output) -> (Option<i32>, Value, Vec<(String, String)>) {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].to_string(), c["status"].to_string()))
        .collect();
    (out.status.code(), doc["verdict"]["outcome"].clone(), checks)
}

fn from_files() -> (Option<i32>, Value, Vec<(String, String)>) {
    let out = sh(&format!("\"$0\" verify --json {}", HOSTS.join(" ")), None);
    let o = outcome(&out);
    // The README of the fixture: rp_filter on rs2 drops the tunnelled requests.
    assert_eq!(o.0, Some(1));
    assert_eq!(o.1, "failed");
    o
}

#[test]
fn a_fifo_is_read_like_the_file() {
    let dir = std::env::temp_dir().join(format!("lvscheck-fifo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("director.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let script = format!(
        "cat director.pcap > '{f}' & \"$0\" verify --json '{f}' {rest}",
        f = fifo.display(),
        rest = HOSTS[1..].join(" ")
    );
    let out = sh(&script, None);
    assert_eq!(outcome(&out), from_files());
    // The same FIFO twice: refused by name (exit 2), without waiting for a second writer.
    let script = format!(
        "cat director.pcap > '{f}' & \"$0\" verify --json '{f}' '{f}'",
        f = fifo.display()
    );
    let out = sh(&script, None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is given twice"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn process_substitution_is_read_like_the_file() {
    let script = format!(
        "\"$0\" verify --json <(cat director.pcap) {}",
        HOSTS[1..].join(" ")
    );
    assert_eq!(outcome(&sh(&script, None)), from_files());
}

#[test]
fn standard_input_is_read_like_the_file() {
    let director = std::fs::read(fixture("director.pcap")).unwrap();
    let script = format!("\"$0\" verify --json - {}", HOSTS[1..].join(" "));
    let out = sh(&script, Some(&director));
    assert_eq!(outcome(&out), from_files());
    // The report names it as the user did.
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc.to_string().contains("\"-\"") || doc.to_string().contains("<stdin>"));
    // `-` twice: the second would read an empty stream.
    let out = sh("\"$0\" verify --json - -", Some(&director));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard input can be read only once"),
        "{err}"
    );
}
