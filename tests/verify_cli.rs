//! `lvscheck verify` as scripts and CI use it: exit status 0 / 1 / 2 / 3, one JSON document with
//! its schema version, and no colour codes in a pipe.

use std::process::{Command, Output};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("verify")
        .args(args)
        .output()
        .expect("lvscheck runs")
}

fn fixture_files(name: &str) -> Vec<String> {
    let dir = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".pcap"))
        .collect();
    files.sort();
    files
}

#[test]
fn healthy_captures_exit_0_and_print_no_colour_in_a_pipe() {
    let files = fixture_files("tutorial");
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = verify(&args);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tunnel.encapsulation") && text.contains("PASS"));
    assert!(!text.contains('\u{1b}'), "ANSI escape in piped output");
}

#[test]
fn a_failed_check_exits_1_and_the_json_says_which() {
    let files = fixture_files("rp-filter");
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(files.iter().map(String::as_str));
    let out = verify(&args);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["schema_version"], 2);
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["verdict"]["outcome"], "failed");
    assert_eq!(doc["exit_code"], 1);
    let failed: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["reply.present"]);
    let finding = &doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "reply.present")
        .unwrap()["findings"][0];
    assert!(finding["host"].as_str().unwrap().starts_with("10.7.0.12"));
    assert!(finding["evidence"][0]["frame"].as_u64().unwrap() > 0);
}

#[test]
fn unusable_input_exits_2() {
    let out = verify(&["Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout when nothing could be read"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("Cargo.toml"), "{err}");
    let out = verify(&["--role", "nonsense=x", "fixtures/tutorial/client.pcap"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_same_captures_give_the_same_document() {
    // Hash maps inside must not leak their order into the report: CI diffs these documents.
    let files = fixture_files("wrr");
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(files.iter().map(String::as_str));
    let first = verify(&args).stdout;
    for _ in 0..3 {
        assert_eq!(verify(&args).stdout, first);
    }
}

/// `--html -` writes the page to standard output in place of the tables (no file named `-`),
/// with the verdict's exit status; with `--json` both would claim standard output: refused.
#[test]
fn html_dash_writes_the_page_to_standard_output() {
    let dir = std::env::temp_dir().join(format!("lvscheck-html-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = fixture_files("rp-filter");
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(&dir)
        .arg("verify")
        .args(&files)
        .args(["--html", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "rp-filter fails");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(page.trim_end().ends_with("</html>"));
    assert!(!page.contains("Connections per real server\n"), "no tables");
    assert!(!dir.join("-").exists(), "no file named -");

    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(&dir)
        .arg("verify")
        .args(&files)
        .args(["--json", "--html", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--html a file"));
    std::fs::remove_dir_all(&dir).unwrap();
}
