//! Progress goes to standard error only when that is a terminal and the output is for a
//! person: never into a pipe, never with `--json`. The captures are the generator's
//! (tests/synth_common/generator.rs), large enough (6000 connections, 45 MB, for a debug
//! build) that lvscheck reads them for more than the half second after which the progress line shows.

#[path = "synth_common/generator.rs"]
mod generator;

use generator::{generate, Config};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lvscheck");

fn captures(name: &str, connections: u64) -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("lvscheck-progress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = generate(&Config::new(connections, 3), &dir).unwrap();
    let files = summary
        .captures
        .iter()
        .filter_map(|(_, file, _, _)| Some(file.as_ref()?.display().to_string()))
        .collect();
    (dir, files)
}

/// What lvscheck writes on a terminal (its standard error) while its standard output goes to
/// `out`.
fn stderr_on_terminal(args: &[String], out: &Path) -> String {
    let line = format!(
        "stty cols 120 rows 40; exec {BIN} {} > '{}'",
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" "),
        out.display()
    );
    let run = Command::new("script")
        .env_remove("NO_COLOR")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .output()
        .expect("script (util-linux) runs lvscheck on a terminal");
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_pipes_or_json() {
    // A release build reads ten times as fast: ten times the connections.
    let n = if cfg!(debug_assertions) {
        6_000
    } else {
        60_000
    };
    let (dir, files) = captures("run", n);
    let with = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec![cmd.to_string()];
        v.extend(files.iter().cloned());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // Standard error a pipe: the report and nothing else, in every mode.
    for args in [
        with("verify", &[]),
        with("flows", &["--limit", "5"]),
        with("fairness", &[]),
    ] {
        let run = Command::new(BIN).args(&args).output().unwrap();
        assert!(run.stdout.len() > 100, "{args:?}: no report");
        assert!(
            run.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    // Standard error a terminal: the progress line while reading, cleared before the report.
    let out = dir.join("report.txt");
    let seen = stderr_on_terminal(&with("verify", &[]), &out);
    assert!(
        seen.contains("pass 2/2 connections"),
        "no progress on the terminal: {seen:?}"
    );
    assert!(seen.contains(" files ["), "{seen:?}");
    let report = std::fs::read_to_string(&out).unwrap();
    // The generator's connections, through a director to 3 real servers.
    let head = format!("lvscheck verify: 5 captures, {n} connections: VERIFIED");
    assert!(report.starts_with(&head), "{report}");
    assert!(
        !report.contains("pass 2/2"),
        "progress in the report: {report}"
    );

    // --json, even with standard error a terminal: nothing there.
    let seen = stderr_on_terminal(&with("verify", &["--json"]), &out);
    assert!(seen.trim().is_empty(), "{seen:?}");
    let doc = std::fs::read_to_string(&out).unwrap();
    assert!(doc.starts_with('{'), "{doc}");

    std::fs::remove_dir_all(&dir).unwrap();
}
