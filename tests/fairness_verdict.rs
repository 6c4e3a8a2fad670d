//! `lvscheck fairness` gives a verdict and an exit status (issue 10, case 7): conforms (0),
//! deviates at a stated p (1), unusable input (2), inconclusive (3). Inputs are the lab's
//! recordings, and rules derived from their rules.txt at test time; the expected counts come
//! from the director's own `ipvsadm -Ln --stats` (stats.txt).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn captures(name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures").join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    v
}

fn fairness(name: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("fairness")
        .args(captures(name))
        .args(extra)
        .output()
        .expect("lvscheck runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

/// Connections per real server address, from the director's stats.txt.
fn stats(name: &str) -> BTreeMap<String, u64> {
    let s = std::fs::read_to_string(root().join("fixtures").join(name).join("stats.txt")).unwrap();
    s.lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = w.get(1)?.parse().ok()?;
            Some((w[0].rsplit_once(':')?.0.to_string(), n))
        })
        .collect()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "lvscheck-fairness-verdict-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_tutorial_conforms_with_exit_0_and_says_so_last() {
    let out = fairness("tutorial", &["--rules", "fixtures/tutorial/rules.txt"]);
    assert_eq!(out.status.code(), Some(0));
    let line = last_line(&out);
    assert!(line.starts_with("Verdict: conforms at p = "), "{line}");
    // stats.txt: 5 and 5 against rr's equal shares: chi-square 0, p = 1.
    assert_eq!(
        stats("tutorial").values().copied().collect::<Vec<_>>(),
        vec![5, 5]
    );
    assert!(line.contains("p = 1.0000"), "{line}");
    let out = fairness(
        "tutorial",
        &["--rules", "fixtures/tutorial/rules.txt", "--json"],
    );
    let v = json(&out);
    assert_eq!(v["verdict"]["outcome"], "conforms");
    assert_eq!(v["services"][0]["verdict"]["outcome"], "conforms");
    assert_eq!(v["verdict"]["p_value"].as_f64(), Some(1.0));
}

#[test]
fn half_the_load_on_a_server_outside_the_rules_deviates_and_lowers_jain() {
    let scratch = Scratch::new("one-server");
    let rules = std::fs::read_to_string(root().join("fixtures/tutorial/rules.txt")).unwrap();
    let counts = stats("tutorial");
    let (left_out, strays) = counts.iter().next_back().unwrap();
    // grep -v: the rules without their last server.
    let fewer: String = rules
        .lines()
        .filter(|l| !l.contains(&format!("-r {left_out}:")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(fewer.lines().count(), rules.lines().count());
    let path = scratch.0.join("rules.txt");
    std::fs::write(&path, fewer).unwrap();
    let path = path.display().to_string();

    let out = fairness("tutorial", &["--rules", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let total: u64 = counts.values().sum();
    let line = last_line(&out);
    assert_eq!(
        line,
        format!(
            "Verdict: deviates at p = 0: {strays} of {total} connections went to {left_out}, \
             which the configuration does not list"
        )
    );
    assert!(!text.contains("Jain index 1.000"), "{text}");

    let v = json(&fairness("tutorial", &["--rules", &path, "--json"]));
    assert_eq!(v["verdict"]["outcome"], "deviates");
    assert_eq!(v["verdict"]["p_value"].as_f64(), Some(0.0));
    // One configured server took all the promised load (index 1 among the promised), and
    // only (total - strays) of total connections went where load was promised.
    let jain = v["services"][0]["fairness"]["jain"].as_f64().unwrap();
    let want = (total - strays) as f64 / total as f64;
    assert!((jain - want).abs() < 1e-12, "jain {jain}, want {want}");
}

#[test]
fn shares_that_differ_from_the_weights_deviate_at_the_chi_square_p_value() {
    // wrr 3:2:1 recorded; declare the weights reversed (1:2:3) under twos, which is not
    // replayed, so the verdict rests on the chi-square test alone.
    let counts = stats("wrr");
    let servers: Vec<(&String, &u64)> = counts.iter().collect();
    assert_eq!(servers.len(), 3);
    let weights = [1.0, 2.0, 3.0];
    let flag: Vec<String> = servers
        .iter()
        .zip(weights)
        .map(|((ip, _), w)| format!("{ip}={w}"))
        .collect();
    let flag = flag.join(",");
    let out = fairness(
        "wrr",
        &["--scheduler", "twos", "--weights", &flag, "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    // Pearson's statistic by hand from stats.txt; with df 2, P(X >= x) = exp(-x / 2).
    let total: f64 = servers.iter().map(|(_, n)| **n as f64).sum();
    let x: f64 = servers
        .iter()
        .zip(weights)
        .map(|((_, n), w)| {
            let e = total * w / 6.0;
            (**n as f64 - e).powi(2) / e
        })
        .sum();
    let p = (-x / 2.0).exp();
    assert!(p < 0.01);
    let got = v["verdict"]["p_value"].as_f64().unwrap();
    assert!(
        (got - p).abs() < 1e-9 * p.max(1e-300) + 1e-15,
        "{got} vs {p}"
    );
    assert_eq!(v["verdict"]["outcome"], "deviates");
    let reason = v["verdict"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("differ from what the weights promise"),
        "{reason}"
    );
    // The text says it at the stated p.
    let out = fairness("wrr", &["--scheduler", "twos", "--weights", &flag]);
    let line = last_line(&out);
    assert!(
        line.starts_with(&format!("Verdict: deviates at p = {p:.1e}")),
        "{line} / {p:.1e}"
    );
}

#[test]
fn without_a_configuration_or_with_too_few_connections_it_is_inconclusive() {
    let out = fairness("tutorial", &[]);
    assert_eq!(out.status.code(), Some(3));
    let line = last_line(&out);
    assert!(
        line.starts_with("Verdict: inconclusive: no configuration to compare with"),
        "{line}"
    );
    // rp-filter: 2 + 2 connections (stats.txt); twos is not replayed, and the chi-square test
    // needs an expected count of 5 per server.
    let counts = stats("rp-filter");
    assert_eq!(counts.values().sum::<u64>(), 4);
    let flag: Vec<String> = counts.keys().map(|ip| format!("{ip}=1")).collect();
    let out = fairness(
        "rp-filter",
        &["--scheduler", "twos", "--weights", &flag.join(",")],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = last_line(&out);
    assert!(
        line.starts_with("Verdict: inconclusive: too few connections for the chi-square test"),
        "{line}"
    );
    assert!(line.contains("twos cannot be replayed"), "{line}");
}

/// `-` reads the capture from standard input; since every capture is read more than once, it
/// is copied first, and the verdict is the one the file itself gets.
#[test]
fn standard_input_gives_the_verdict_of_the_file() {
    let file = root().join("fixtures/tutorial/server1.pcap");
    let capture = std::fs::read(&file).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(["fairness", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&capture).unwrap();
    drop(stdin);
    let piped = child.wait_with_output().unwrap();
    let direct = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(["fairness"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), direct.status.code());
    assert_eq!(
        last_line(&piped),
        last_line(&direct),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(last_line(&piped).starts_with("Verdict:"));
}
