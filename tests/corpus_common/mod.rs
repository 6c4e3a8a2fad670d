//! What the tests on ../shared/corpus share: where the corpus is, running lvscheck on it, and
//! asking tshark for the expected values (`LVSCHECK_REQUIRE_TSHARK=1` makes its absence a
//! failure; without it the recorded values are checked alone).
#![allow(dead_code)] // each test crate uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder of the corpus (`../shared/corpus`, or where `LVSCHECK_CORPUS` says), or None,
/// saying that the test is skipped, when it is not there.
pub fn corpus_dir(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("LVSCHECK_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    };
    let dir = root.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no corpus at {} (set LVSCHECK_CORPUS)",
            dir.display()
        );
        None
    }
}

/// lvscheck's standard output; any exit status but a verdict's (0-3) fails the test.
pub fn lvscheck(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("lvscheck runs");
    assert!(
        out.status.code().is_some_and(|c| c <= 3),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// tshark's fields of every frame of `file` (with the preferences `-o` given), a line a frame
/// split on tabs; None when tshark is not there.
pub fn tshark_fields(file: &Path, prefs: &[&str], fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    for p in prefs {
        cmd.args(["-o", p]);
    }
    cmd.arg("-r").arg(file).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect(),
        ),
        _ => {
            assert!(
                std::env::var_os("LVSCHECK_REQUIRE_TSHARK").is_none(),
                "tshark is required (LVSCHECK_REQUIRE_TSHARK) and did not run"
            );
            eprintln!("tshark not run: checking against the recorded values only");
            None
        }
    }
}
