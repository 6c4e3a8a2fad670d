//! On every fixture, `verify` on the captures and the records route (`facts` on each capture,
//! `topology`, `extract` on each capture, `verify --records`) give identical JSON documents
//! (checks, findings, verdict, topology, clocks, counts), and `flows` on the captures and on
//! the records the same connections, field for field. The records route runs as a user runs
//! it: one process per step, each capture on its own, as on its own host.
//!
//! This compares lvscheck with itself on purpose: the records must say what the captures say.
//! What each fixture's verdict should be is tested against its README elsewhere
//! (tests/verify_fixtures.rs).

mod records_common;

use records_common::{bin, fixtures, make_records, rules_of, run};
use std::path::{Path, PathBuf};

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::records::engine::Engine;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;

/// The verify document without what describes the run rather than the deployment: how many
/// keys the streaming join held at once (the query holds them instead).
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("max_waiting");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (p, q) = (x.get(k).unwrap_or(&Null), y.get(k).unwrap_or(&Null));
                if let Some(d) = first_difference(p, q, &format!("{at}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!(
            "{at}: captures say {}, records say {}",
            truncate(a),
            truncate(b)
        )),
    }
}

fn truncate(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 400 {
        format!("{}...", &s[..400])
    } else {
        s
    }
}

#[test]
fn records_give_what_the_captures_give_on_every_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let all = fixtures();
    // Two at a time: each step is a process of its own, mostly waiting on the other.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((name, files)) = all.get(i) else {
                            return failures;
                        };
                        failures.extend(compare(name, files, tmp.path()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker"))
            .collect()
    });
    assert!(all.len() >= 60, "only {} fixtures compared", all.len());
    // A few fixtures have no connection to compare (snap length cut the headers, no VIP).
    let (empty, failures): (Vec<String>, Vec<String>) = failures
        .into_iter()
        .partition(|f| f.starts_with(NO_CONNECTION));
    assert!(empty.len() <= 5, "{empty:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// How [`compare`] says a fixture had no connection to compare.
const NO_CONNECTION: &str = "no connection: ";

/// What differs between the captures and the records of one fixture.
fn compare(name: &str, files: &[PathBuf], tmp: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let name = name.to_string();
    let files = files.to_vec();
    let work = tmp.join(&name);
    std::fs::create_dir_all(&work).unwrap();
    let (recs, gue) = make_records(&name, &files, &work);
    let rules = rules_of(&files);
    let mut a = bin();
    a.args(["verify", "--json"]).args(&files);
    for p in &gue {
        a.args(["--gue-port", p]);
    }
    let mut b = bin();
    b.args(["verify", "--json", "--records"]).arg(&recs);
    if let Some(r) = &rules {
        a.arg("--rules").arg(r);
        b.arg("--rules").arg(r);
    }
    let (ca, oa, ea) = run(a, &name);
    let (cb, ob, eb) = run(b, &name);
    let parse = |o: &[u8], e: &str| -> serde_json::Value {
        serde_json::from_slice(o).unwrap_or_else(|_| panic!("{name}: no JSON: {e}"))
    };
    let (ja, jb) = (comparable(parse(&oa, &ea)), comparable(parse(&ob, &eb)));
    if ca != cb {
        failures.push(format!(
            "{name}: exit {ca} on the captures, {cb} on the records"
        ));
    }
    if let Some(d) = first_difference(&ja, &jb, "verify") {
        failures.push(format!("{name}: {d}"));
    }
    // The scheduler's fairness, as `fairness` reports it (it needs the rules; it takes
    // no --gue-port, so not where the facts needed one).
    if let (Some(r), true) = (&rules, gue.is_empty()) {
        let (mut a, mut b) = (bin(), bin());
        a.args(["fairness", "--json"])
            .args(&files)
            .arg("--rules")
            .arg(r);
        b.args(["fairness", "--json", "--records"])
            .arg(&recs)
            .arg("--rules")
            .arg(r);
        let ((ca, oa, _), (cb, ob, eb)) = (run(a, &name), run(b, &name));
        if (ca, &oa) != (cb, &ob) {
            failures.push(format!(
                "{name}: fairness differs (exit {ca} on the captures, {cb} on the records) {eb}"
            ));
        }
    }
    // The connections, field for field.
    let rules = rules.map(|r| read_rules(&r).unwrap());
    let mut decode = DecodeOptions {
        gue_ports: rules.as_ref().map(|r| r.gue_ports()).unwrap_or_default(),
        gue_probe: true,
        ..DecodeOptions::default()
    };
    decode
        .gue_ports
        .extend(gue.iter().map(|p| p.parse::<u16>().unwrap()));
    let opts = FlowOptions {
        expected: rules.as_ref().map(|r| expected_from_rules(r).0),
        ..FlowOptions::default()
    };
    let sources: Vec<CaptureSource> = files.iter().map(CaptureSource::from_arg).collect();
    let on_captures = lvscheck::flows::analyse(&sources, decode, &opts);
    let on_records =
        lvscheck::records::analyse(std::slice::from_ref(&recs), &Engine::Embedded, &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    let ca = serde_json::to_value(&on_captures.connections).unwrap();
    let cb = serde_json::to_value(&on_records.connections).unwrap();
    if on_captures.connections.is_empty() {
        // Counted by the caller: most fixtures must have connections to compare.
        failures.push(format!("{NO_CONNECTION}{name}"));
    }
    if let Some(d) = first_difference(&ca, &cb, "connections") {
        failures.push(format!("{name}: {d}"));
    }
    if on_captures.connections.len() != on_records.connections.len() {
        failures.push(format!(
            "{name}: {} connections on the captures, {} on the records",
            on_captures.connections.len(),
            on_records.connections.len()
        ));
    }
    failures
}
