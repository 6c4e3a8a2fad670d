//! The join of `verify --records` on a Ballista cluster started on this machine: a scheduler and
//! an executor, each serving on a localhost port, reached as a remote cluster is
//! (`--engine ballista://HOST:PORT`). The connections and the verify document are those of the
//! captures, as with the embedded engine (tests/records_fixtures.rs). Built only with
//! `--features ballista` (Cargo.toml's required-features).

mod records_common;

use std::path::PathBuf;

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::records::engine::local::{LocalExecutor, LocalScheduler};
use lvscheck::records::engine::Engine;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;
use records_common::{bin, fixtures, make_records, rules_of, run};

/// Fixtures with something for each part of the join: several captures and clocks
/// (clock-skew), GUE, reused client ports (syn-drop), a failover between two directors, a
/// mirror port split into hops.
const FIXTURES: [&str; 6] = [
    "tutorial",
    "clock-skew",
    "gue-healthy",
    "syn-drop",
    "failover-nosync",
    "derived/mirror",
];

fn without_max_waiting(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("max_waiting");
    }
    v
}

#[test]
fn the_join_on_a_ballista_scheduler_and_executor_gives_what_the_captures_give() {
    let tmp = tempfile::tempdir().unwrap();
    let scheduler = LocalScheduler::start().unwrap();
    let executor = LocalExecutor::start(&scheduler.url()).unwrap();
    let engine = Engine::Ballista {
        url: scheduler.url(),
    };
    let address = scheduler.url().trim_start_matches("df://").to_string();
    let all = fixtures();
    let mut compared = 0;
    for name in FIXTURES {
        let files: Vec<PathBuf> = all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
            .1
            .clone();
        let work = tmp.path().join(name.replace('/', "-"));
        std::fs::create_dir_all(&work).unwrap();
        let (recs, gue) = make_records(name, &files, &work);
        assert!(
            gue.is_empty(),
            "{name}: the facts needed --gue-port {gue:?}"
        );
        let rules = rules_of(&files);

        // The connections, field for field, through the library.
        let parsed = rules.as_ref().map(|r| read_rules(r).unwrap());
        let decode = DecodeOptions {
            gue_ports: parsed.as_ref().map(|r| r.gue_ports()).unwrap_or_default(),
            gue_probe: true,
            ..DecodeOptions::default()
        };
        let opts = FlowOptions {
            expected: parsed.as_ref().map(|r| expected_from_rules(r).0),
            ..FlowOptions::default()
        };
        let sources: Vec<CaptureSource> = files.iter().map(CaptureSource::from_arg).collect();
        let on_captures = lvscheck::flows::analyse(&sources, decode, &opts);
        let on_cluster = lvscheck::records::analyse(std::slice::from_ref(&recs), &engine, &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!on_captures.connections.is_empty(), "{name}: no connection");
        assert_eq!(
            serde_json::to_value(&on_captures.connections).unwrap(),
            serde_json::to_value(&on_cluster.connections).unwrap(),
            "{name}: the connections joined on Ballista differ from the captures'"
        );

        // The verify document, through the command line, as a user runs it.
        let mut a = bin();
        a.args(["verify", "--json"]).args(&files);
        let mut b = bin();
        b.args(["verify", "--json", "--records", "--engine"])
            .arg(format!("ballista://{address}"))
            .arg(&recs);
        if let Some(r) = &rules {
            a.arg("--rules").arg(r);
            b.arg("--rules").arg(r);
        }
        let ((ca, oa, ea), (cb, ob, eb)) = (run(a, name), run(b, name));
        assert_eq!(
            ca, cb,
            "{name}: exit {ca} on the captures, {cb} on Ballista: {ea} {eb}"
        );
        let parse = |o: &[u8], e: &str| -> serde_json::Value {
            serde_json::from_slice(o).unwrap_or_else(|_| panic!("{name}: no JSON: {e}"))
        };
        assert_eq!(
            without_max_waiting(parse(&oa, &ea)),
            without_max_waiting(parse(&ob, &eb)),
            "{name}: verify on Ballista differs from verify on the captures"
        );
        compared += 1;
    }
    assert_eq!(compared, FIXTURES.len());
    drop((executor, scheduler));
}

#[test]
fn a_scheduler_that_is_not_there_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, files) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "tutorial")
        .unwrap();
    let (recs, _) = make_records("tutorial", &files, tmp.path());
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut c = bin();
    c.args(["verify", "--records", "--engine"])
        .arg(format!("ballista://127.0.0.1:{port}"))
        .arg(&recs);
    let (code, out, err) = run(c, "tutorial");
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
