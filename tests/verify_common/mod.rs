//! Running `lvscheck verify --json` from the verify tests and reading its document.
#![allow(dead_code)]

use std::process::Command;

use serde_json::Value;

pub fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// Runs `lvscheck ARGS...` in the repository.
pub fn lvscheck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("lvscheck runs")
}

/// The fields of every frame of `file` that tshark reads, as it prints them (`-T fields`, every occurrence,
/// several joined with `aggregator`), one Vec per frame; with `md5`, `frame.md5_hash` can be
/// asked for.
pub fn tshark_fields(
    file: &std::path::Path,
    md5: bool,
    aggregator: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut command = Command::new("tshark");
    if md5 {
        command.args(["-o", "frame.generate_md5_hash:TRUE"]);
    }
    command
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "occurrence=a"]);
    command.arg("-E").arg(format!("aggregator={aggregator}"));
    for f in fields {
        command.args(["-e", f]);
    }
    // Not checked for success: tshark exits 2 on a capture cut short, after its frames.
    let out = command
        .stderr(std::process::Stdio::null())
        .output()
        .expect("tshark runs");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.splitn(fields.len(), '\t').map(str::to_string).collect())
        .collect()
}

/// Runs `lvscheck verify --json ARGS...` in the repository: the exit status and the document
/// (null when nothing was written).
pub fn verify<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .arg("verify")
        .arg("--json")
        .args(args)
        .output()
        .expect("lvscheck runs");
    let code = out.status.code().expect("exit status");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, doc)
}

/// The check `id` of a verify document.
pub fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// Every reason and finding text, for asserting that a false claim is absent.
pub fn all_text(doc: &Value) -> String {
    let mut out = String::new();
    for c in doc["checks"].as_array().unwrap() {
        out.push_str(c["reason"].as_str().unwrap_or(""));
        out.push('\n');
        for f in c["findings"].as_array().unwrap() {
            for k in ["summary", "likely_cause", "fix"] {
                out.push_str(f[k].as_str().unwrap_or(""));
                out.push('\n');
            }
        }
    }
    out
}

/// Whether tshark can be run; a test that needs it skips without it, unless
/// LVSCHECK_REQUIRE_TSHARK is set (CI sets it, so that it cannot skip).
pub fn tshark_available() -> bool {
    let found = Command::new("tshark").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("LVSCHECK_REQUIRE_TSHARK").is_none(),
            "tshark is required here: apt-get install tshark"
        );
        eprintln!("skipped: tshark is not installed (apt-get install tshark)");
    }
    found
}

/// The pcap and pcapng files of a fixture, in name order (as the shell expands `*.pcap`).
pub fn fixture_captures(fixture: &str) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(root()).join("fixtures").join(fixture);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    files
}
