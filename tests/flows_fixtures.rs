//! The flows analysis on the lab's real captures (fixtures/<scenario>/, recorded from a real
//! Linux IPVS director under qemu). Ground truth comes from the fixture, never from lvscheck:
//! `hosts.json` says which capture was taken on which host in which role, `conns.txt` is the
//! director's `ipvsadm -Lnc` (client, VIP and chosen real server of every connection).

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::{analyse, Analysis, FlowOptions};
use lvscheck::topology::Role;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

struct Truth {
    file: String,
    role: Role,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture directory with a hosts.json.
fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("hosts.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn role_of(s: &str) -> Role {
    match s {
        "director" => Role::Director,
        "real-server" | "real_server" | "rs" => Role::RealServer,
        "client" => Role::Client,
        _ => Role::Other,
    }
}

fn hosts(dir: &Path) -> Vec<Truth> {
    let text = std::fs::read_to_string(dir.join("hosts.json")).expect("hosts.json");
    let v: Value = serde_json::from_str(&text).expect("hosts.json is JSON");
    v["captures"]
        .as_array()
        .expect("captures[]")
        .iter()
        .map(|c| Truth {
            file: c["file"].as_str().expect("file").to_string(),
            role: role_of(c["role"].as_str().expect("role")),
        })
        .collect()
}

/// One line of `ipvsadm -Lnc`: protocol, client, VIP, real server.
#[derive(Debug)]
struct IpvsConn {
    proto: String,
    client: SocketAddr,
    vip: SocketAddr,
    rs: IpAddr,
}

fn ipvs_conns(dir: &Path) -> Vec<IpvsConn> {
    let Ok(text) = std::fs::read_to_string(dir.join("conns.txt")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let client: SocketAddr = f[3].parse().ok()?;
            let vip: SocketAddr = f[4].parse().ok()?;
            let rs: SocketAddr = f[5].parse().ok()?;
            // Persistence templates have client port 0: not connections.
            (client.port() != 0).then(|| IpvsConn {
                proto: f[0].to_ascii_lowercase(),
                client,
                vip,
                rs: rs.ip(),
            })
        })
        .collect()
}

fn run(dir: &Path, truth: &[Truth]) -> Analysis {
    let files: Vec<CaptureSource> = truth
        .iter()
        .map(|t| CaptureSource::File(dir.join(&t.file)))
        .collect();
    analyse(&files, DecodeOptions::default(), &FlowOptions::default())
}

#[test]
fn every_fixture_gives_the_right_roles_and_real_servers() {
    let all = fixtures();
    assert!(
        !all.is_empty(),
        "no fixture in {}",
        fixtures_dir().display()
    );
    let mut failures = Vec::new();
    for dir in &all {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let truth = hosts(dir);
        let a = run(dir, &truth);
        for (i, t) in truth.iter().enumerate() {
            for v in a
                .topology
                .vantages
                .iter()
                .filter(|v| v.id.capture == i as u32)
            {
                if v.role != t.role {
                    failures.push(format!(
                        "{name}/{}: role {} (by {}: {}), expected {}",
                        t.file, v.role, v.decided_by, v.reason, t.role
                    ));
                }
            }
        }
        let has_director = truth.iter().any(|t| t.role == Role::Director);
        for c in ipvs_conns(dir) {
            let found = a
                .connections
                .iter()
                .find(|x| x.client == c.client && x.vip == c.vip && x.proto.to_string() == c.proto);
            match found {
                None => failures.push(format!("{name}: connection {c:?} not rebuilt")),
                Some(x) if has_director && x.real_server != Some(c.rs) => failures.push(format!(
                    "{name}: {} -> {}: real server {:?}, ipvsadm says {}",
                    c.client, c.vip, x.real_server, c.rs
                )),
                Some(x) if x.real_server.is_some_and(|r| r != c.rs) => failures.push(format!(
                    "{name}: {} -> {}: real server {:?}, ipvsadm says {}",
                    c.client, c.vip, x.real_server, c.rs
                )),
                Some(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
