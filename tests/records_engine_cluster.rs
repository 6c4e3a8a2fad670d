//! `--engine ballista://HOST:PORT` against a Ballista cluster on this machine: a scheduler and
//! an executor, each a process of its own (this test binary started again in a node role, see
//! `node`), reached over localhost as a remote cluster is. The join gives the rows computed in
//! plain Rust (engine_common::expected), as the embedded engine does in records_engine.rs.
//! Built only with `--features ballista` (Cargo.toml's required-features).

mod engine_common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine_common::{expected, rows_of, write_records, QUERY};
use lvscheck::records::engine::local::{LocalExecutor, LocalScheduler};
use lvscheck::records::engine::{run_query_with, Engine, EngineError, QueryOptions};

/// Set to `scheduler` or `executor` (with the scheduler's url) in a node process.
const ROLE_ENV: &str = "LVSCHECK_TEST_BALLISTA_ROLE";
const SCHEDULER_ENV: &str = "LVSCHECK_TEST_BALLISTA_SCHEDULER";

/// Starts the line a node prints once it serves; libtest may print before it on that line.
const READY: &str = "lvscheck-test-node-ready ";

const OPTIONS: QueryOptions = QueryOptions {
    memory_limit: 1 << 30,
};

/// A node process, killed when dropped.
struct Node {
    child: Child,
    /// What it printed after [`READY`].
    said: String,
}

impl Node {
    /// `tmp` becomes the process's TMPDIR: Ballista 55's executor keeps its shuffle files in
    /// a temporary directory that it never removes (only the scheduler's clean-up, minutes
    /// after a job, does), so the test gives it one that it removes itself.
    fn spawn(role: &str, scheduler: Option<&str>, tmp: &std::path::Path) -> Node {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "node",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_ENV, role)
            .env("TMPDIR", tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = scheduler {
            command.env(SCHEDULER_ENV, url);
        }
        let mut child = command.spawn().expect("start a node process");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find(READY) {
                    let _ = tx.send(line[at + READY.len()..].trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(said) => Node { child, said },
            Err(_) => {
                let _ = child.kill();
                panic!("the {role} process did not start: {:?}", child.wait());
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ballista_cluster_of_local_processes_gives_the_same_rows() {
    // 24 000 rows: several batches, whose order Ballista's result stream must keep.
    let records = write_records(12_000, 400, 1_024);
    let want = expected(&records.legs);
    let tmp = tempfile::tempdir().unwrap();
    let scheduler = Node::spawn("scheduler", None, tmp.path());
    let url = scheduler.said.clone();
    let executor = Node::spawn("executor", Some(&url), tmp.path());
    assert_eq!(executor.said, "executor");
    let address = url.strip_prefix("df://").expect("df:// url");
    let engine = Engine::parse(&format!("ballista://{address}")).unwrap();
    assert_eq!(engine, Engine::Ballista { url: url.clone() });
    let mut rows = Vec::new();
    let stats = run_query_with(&engine, &OPTIONS, &records.tables(), QUERY, &mut |batch| {
        rows_of(&batch, &mut rows)
    })
    .unwrap();
    assert_eq!(stats.rows, want.len() as u64);
    assert!(stats.batches > 1, "{stats:?}");
    assert_eq!(rows, want);
    drop((executor, scheduler));
}

#[test]
fn an_unreachable_scheduler_is_an_error_naming_it() {
    let records = write_records(20, 5, 64);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let engine = Engine::parse(&format!("ballista://127.0.0.1:{port}")).unwrap();
    let started = Instant::now();
    let err =
        run_query_with(&engine, &OPTIONS, &records.tables(), QUERY, &mut |_| Ok(())).unwrap_err();
    let label = format!("Ballista scheduler df://127.0.0.1:{port}");
    assert!(
        matches!(&err, EngineError::Query { engine, .. } if *engine == label),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
}

/// A node of the cluster above, in a process of its own: runs only when a test starts this
/// binary with ROLE_ENV set, prints [`READY`] and serves until its standard input closes
/// (the test ended, or was killed).
#[test]
#[ignore = "a node process that ballista_cluster_of_local_processes_gives_the_same_rows starts"]
fn node() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        eprintln!("{ROLE_ENV} not set: nothing to serve");
        return;
    };
    let (_scheduler, _executor, said) = match role.as_str() {
        "scheduler" => {
            let scheduler = LocalScheduler::start().unwrap();
            let url = scheduler.url();
            (Some(scheduler), None, url)
        }
        "executor" => {
            let url = std::env::var(SCHEDULER_ENV).expect("the scheduler's url");
            let executor = LocalExecutor::start(&url).unwrap();
            (None, Some(executor), "executor".to_string())
        }
        other => panic!("unknown role {other}"),
    };
    println!("{READY}{said}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
