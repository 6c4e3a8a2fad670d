//! Partial capture sets of a healthy deployment never fail or warn against it (issue 10): with
//! one capture left out, or one capture alone, every healthy lab fixture is `verified` or
//! `inconclusive`, never `failed`, and no check warns. What a missing capture hides is
//! "not captured", never a fault. Which fixtures are healthy is what their READMEs state.

use std::path::{Path, PathBuf};

use lvscheck::capture::CaptureSource;
use lvscheck::checks::verdict::Outcome;
use lvscheck::checks::Status;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;
use lvscheck::verify::verify;

/// The healthy fixtures (fixtures/README.md: "must fail: nothing"), without mtu (it warns).
const HEALTHY: [&str; 5] = ["tutorial", "wrr", "wlc-long", "sh-clients", "persistence"];

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".pcap"))
        .collect();
    files.sort();
    files
}

fn subsets(n: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    if n > 2 {
        out.extend((0..n).map(|skip| (0..n).filter(|i| *i != skip).collect()));
    }
    out
}

#[test]
fn leaving_captures_out_of_a_healthy_set_never_fails_or_warns() {
    for name in HEALTHY {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let rules = read_rules(&dir.join("rules.txt")).unwrap();
        let opts = FlowOptions {
            expected: Some(expected_from_rules(&rules).0),
            ..FlowOptions::default()
        };
        let files = captures(&dir);
        for subset in subsets(files.len()) {
            let sources: Vec<CaptureSource> = subset
                .iter()
                .map(|i| CaptureSource::from_arg(&files[*i]))
                .collect();
            let v = verify(&sources, DecodeOptions::default(), &opts, Some(&rules));
            let names: Vec<String> = subset
                .iter()
                .map(|i| {
                    files[*i]
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            assert_ne!(
                v.verdict.outcome,
                Outcome::Failed,
                "{name} {names:?}: {}",
                v.verdict.summary
            );
            for c in &v.checks {
                assert!(
                    c.status < Status::Warn,
                    "{name} {names:?}: {} {:?}: {}",
                    c.id,
                    c.status,
                    c.reason
                );
            }
        }
    }
}
