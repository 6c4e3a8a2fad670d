//! Making the records of a fixture as a user does (`facts` on each capture, `topology`,
//! `extract` on each capture), for the tests that compare them with the captures.
#![allow(dead_code)] // each test crate uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
}

/// Every fixture folder holding captures, and its captures in name order.
pub fn fixtures() -> Vec<(String, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    // Folders of folders (fixtures/derived/*) too.
    let nested: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|e| e.map(|e| e.unwrap().path()).filter(|p| p.is_dir()))
        .collect();
    dirs.extend(nested);
    dirs.sort();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                [".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz"]
                    .iter()
                    .any(|s| n.ends_with(s))
            })
            .collect();
        files.sort();
        if !files.is_empty() {
            let name = d.strip_prefix(&root).unwrap().to_string_lossy().to_string();
            out.push((name, files));
        }
    }
    out
}

pub fn rules_of(files: &[PathBuf]) -> Option<PathBuf> {
    let r = files[0].parent().unwrap().join("rules.txt");
    r.is_file().then_some(r)
}

pub fn run(mut c: Command, what: &str) -> (i32, Vec<u8>, String) {
    let out = c.output().expect("lvscheck runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.code().is_some(),
        "{what}: killed by a signal: {stderr}"
    );
    (out.status.code().unwrap(), out.stdout, stderr)
}

/// The `--gue-port N` flags `topology` asks for, from its message.
pub fn asked_gue_ports(stderr: &str) -> Vec<String> {
    stderr
        .split("--gue-port ")
        .skip(1)
        .filter_map(|s| {
            let n: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            (!n.is_empty()).then_some(n)
        })
        .collect()
}

/// The records of a fixture, made step by step; the --gue-port flags the facts needed.
pub fn make_records(name: &str, files: &[PathBuf], work: &Path) -> (PathBuf, Vec<String>) {
    let rules = rules_of(files);
    let mut gue: Vec<String> = Vec::new();
    for attempt in 0..2 {
        let mut facts = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let out = work.join(format!("facts-{i}.json"));
            let mut c = bin();
            c.arg("facts").arg(f).arg("-o").arg(&out);
            for p in &gue {
                c.args(["--gue-port", p]);
            }
            if let Some(r) = &rules {
                c.arg("--rules").arg(r);
            }
            let (code, _, err) = run(c, name);
            assert!(
                code == 0 || code == 2,
                "{name}: facts {}: {code} {err}",
                f.display()
            );
            facts.push(out);
        }
        let topo = work.join("topology.json");
        let mut c = bin();
        c.arg("topology").args(&facts).arg("-o").arg(&topo);
        if let Some(r) = &rules {
            c.arg("--rules").arg(r);
        }
        let (code, _, err) = run(c, name);
        if code != 0 {
            let asked = asked_gue_ports(&err);
            assert!(
                attempt == 0 && !asked.is_empty(),
                "{name}: topology: {code} {err}"
            );
            gue = asked;
            continue;
        }
        let recs = work.join("records");
        for f in files {
            let mut c = bin();
            c.arg("extract")
                .arg(f)
                .arg("--topology")
                .arg(&topo)
                .arg("--out")
                .arg(&recs);
            let (code, _, err) = run(c, name);
            assert_eq!(code, 0, "{name}: extract {}: {err}", f.display());
        }
        return (recs, gue);
    }
    unreachable!("{name}: topology asked twice for GUE ports")
}
