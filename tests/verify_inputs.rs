//! Input mistakes a new user makes (issue 10, cases 6 and 8), rebuilt at test time from the
//! fixtures: a mistyped or unreadable capture path, the same capture given twice, an empty
//! rules file (`ipvsadm -Sn` without root), rules of another VIP or director, a `--role` the
//! traffic contradicts, and the advice given for a UDP service that does not listen. Each is
//! refused with exit status 2 and a message naming the file, and never gives a verdict (nothing
//! on standard output, so no PASS and no FAIL). Expected values come from the fixtures' own
//! rules.txt and stats.txt (the director's tables).

use std::path::{Path, PathBuf};
use std::process::Output;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

mod verify_common;
use verify_common::lvscheck;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The capture files of a fixture, relative to the crate root, sorted.
fn captures(name: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("fixtures").join(name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".pcap"))
        .map(|f| format!("fixtures/{name}/{f}"))
        .collect();
    v.sort();
    v
}

/// A scratch directory for derived inputs, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "lvscheck-verify-inputs-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn write(&self, name: &str, content: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The services (`-A -t VIP:PORT`) of an `ipvsadm -Sn` file, as lvscheck names them.
fn rules_services(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let proto = match w[0] {
                "-t" => "tcp",
                "-u" => "udp",
                other => panic!("unexpected {other}"),
            };
            format!("{proto} {}", w[1])
        })
        .collect()
}

/// The total `Conns` of the director's `ipvsadm -Ln --stats` (stats.txt), over all services.
fn stats_connections(name: &str) -> u64 {
    let s = std::fs::read_to_string(root().join("fixtures").join(name).join("stats.txt")).unwrap();
    s.lines()
        .filter(|l| l.starts_with("TCP ") || l.starts_with("UDP "))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Exit 2, a message on standard error that contains every one of `needles`, nothing on
/// standard output (no verdict at all: neither PASS nor FAIL).
fn refused(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(
        out.stdout.is_empty(),
        "a verdict was printed: {}",
        text(&out.stdout)
    );
}

#[test]
fn a_mistyped_capture_path_is_an_error_naming_it() {
    let mut files = captures("tutorial");
    files.push("fixtures/tutorial/clinet.pcap".into());
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    let out = lvscheck(&args);
    refused(
        &out,
        &[
            "fixtures/tutorial/clinet.pcap: cannot open",
            "nothing was verified",
            "mistyped",
        ],
    );
    // Every unreadable path is named, not only the first.
    let out = lvscheck(&[
        "verify",
        "fixtures/tutorial/client.pcap",
        "no/a.pcap",
        "no/b.pcap",
    ]);
    refused(&out, &["no/a.pcap: cannot open", "no/b.pcap: cannot open"]);
    // A directory given as a capture.
    let out = lvscheck(&[
        "verify",
        "fixtures/tutorial/client.pcap",
        "fixtures/tutorial",
    ]);
    refused(&out, &["fixtures/tutorial: is a directory"]);
    // The same for the other analysing commands.
    for cmd in ["flows", "fairness"] {
        let out = lvscheck(&[cmd, "fixtures/tutorial/client.pcap", "no/a.pcap"]);
        refused(&out, &["no/a.pcap: cannot open"]);
    }
}

#[test]
fn a_file_that_is_not_a_capture_among_captures_is_an_error() {
    // Readable, but nothing of it is a capture: what the others show would be a verdict on
    // another set of captures than the one asked for.
    let mut files = captures("tutorial");
    files.push("fixtures/tutorial/rules.txt".into());
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    let out = lvscheck(&args);
    let of = format!("1 of the {} captures", files.len());
    refused(
        &out,
        &[
            "fixtures/tutorial/rules.txt: not a pcap or pcapng file",
            &of,
        ],
    );
}

#[test]
fn the_same_capture_twice_is_refused() {
    let files = captures("tutorial");
    let client = files
        .iter()
        .find(|f| f.ends_with("client.pcap"))
        .unwrap()
        .clone();
    let scratch = Scratch::new("twice");
    let copy = scratch.0.join("copy-of-client.pcap");
    std::fs::copy(root().join(&client), &copy).unwrap();
    let copy = copy.display().to_string();
    let other_name = format!("./{client}");
    // The same path, another path to the same file, a copy, and the tutorial's client capture
    // gzip-compressed (fixtures/formats-gzip: "the packets are those of fixtures/tutorial").
    let cases: [(&str, String); 4] = [
        (client.as_str(), format!("{client} is given twice")),
        (
            other_name.as_str(),
            format!("{other_name} is another name of {client}"),
        ),
        (
            copy.as_str(),
            format!("{copy} holds the same capture as {client}"),
        ),
        (
            "fixtures/formats-gzip/client.pcap.gz",
            format!("fixtures/formats-gzip/client.pcap.gz holds the same capture as {client}"),
        ),
    ];
    for (again, message) in &cases {
        let mut args = vec!["verify"];
        args.extend(files.iter().map(String::as_str));
        args.push(again);
        refused(&lvscheck(&args), &[message, "counted twice"]);
    }
    let out = lvscheck(&["fairness", &client, &copy]);
    refused(&out, &["holds the same capture"]);
}

#[test]
fn an_empty_rules_file_is_refused_naming_it() {
    let scratch = Scratch::new("empty-rules");
    let files = captures("tutorial");
    // What `ipvsadm -Sn > rules.txt` leaves when not run as root.
    let empty = scratch.write("rules.txt", "");
    // A listing of a director without any service.
    let none = scratch.write(
        "rules-ln.txt",
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    // ipvsadm's complaint, saved with 2>&1.
    let complaint = scratch.write(
        "rules-root.txt",
        "Can't initialize ipvs: Permission denied (you must be root)\n",
    );
    let garbage = scratch.write("rules-garbage.txt", "hello world\n");
    let cases = [
        (
            empty.as_str(),
            vec!["holds no virtual service", "without root"],
        ),
        (
            none.as_str(),
            vec!["holds no virtual service", "none configured"],
        ),
        (complaint.as_str(), vec![":1:", "run it as root"]),
        (garbage.as_str(), vec![":1:", "expected -A or -a"]),
    ];
    for (rules, needles) in &cases {
        for cmd in ["verify", "fairness"] {
            let mut args = vec![cmd];
            args.extend(files.iter().map(String::as_str));
            args.extend(["--rules", rules]);
            let out = lvscheck(&args);
            let mut all = vec![*rules];
            all.extend(needles.iter().copied());
            refused(&out, &all);
            // Not the false advice of before: "give --rules" when --rules was given.
            assert!(!text(&out.stderr).contains("give --rules"));
        }
    }
}

#[test]
fn rules_for_another_vip_do_not_describe_this_traffic() {
    let scratch = Scratch::new("other-vip");
    let files = captures("tutorial");
    let rules = std::fs::read_to_string(root().join("fixtures/tutorial/rules.txt")).unwrap();
    let traffic = rules_services(&rules);
    assert_eq!(traffic, vec!["tcp 172.25.67.100:80"]);
    // sed s/172.25.67.100/172.25.67.200/: the same director, another VIP.
    let other_vip = rules.replace("172.25.67.100", "172.25.67.200");
    let other = scratch.write("rules-other-vip.txt", &other_vip);
    // Another port of the same VIP.
    let other_port = scratch.write(
        "rules-other-port.txt",
        &rules.replace("172.25.67.100:80", "172.25.67.100:443"),
    );
    // Another director's rules altogether.
    let rp = "fixtures/rp-filter/rules.txt";
    let rp_rules = std::fs::read_to_string(root().join(rp)).unwrap();
    for (file, content) in [
        (other.as_str(), other_vip.clone()),
        (
            other_port.as_str(),
            std::fs::read_to_string(&other_port).unwrap(),
        ),
        (rp, rp_rules),
    ] {
        let defined = rules_services(&content);
        let says = format!(
            "they define {} and the captures show traffic to {}",
            defined.join(", "),
            traffic[0]
        );
        for cmd in ["verify", "fairness"] {
            let mut args = vec![cmd];
            args.extend(files.iter().map(String::as_str));
            args.extend(["--rules", file]);
            refused(
                &lvscheck(&args),
                &[file, "these rules do not describe this traffic", &says],
            );
        }
    }
    // Rules that share the service with the traffic are compared as before: the tutorial's
    // own rules verify (exit 0).
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--rules", "fixtures/tutorial/rules.txt"]);
    assert_eq!(lvscheck(&args).status.code(), Some(0));
}

#[test]
fn a_role_the_traffic_contradicts_is_an_error_and_counts_stay_within_the_connections() {
    let files = captures("tutorial");
    let client = "fixtures/tutorial/client.pcap";
    assert!(files.iter().any(|f| f == client));
    let spec = format!("director={client}");
    for cmd in ["verify", "flows"] {
        let mut args = vec![cmd];
        args.extend(files.iter().map(String::as_str));
        args.extend(["--role", &spec, "--json"]);
        let out = lvscheck(&args);
        refused(
            &out,
            &[
                &format!("--role {spec} contradicts the traffic"),
                "that capture shows a client",
                "packets to the VIP left",
            ],
        );
    }
    // A role that agrees with the traffic is taken, and no count exceeds the connections the
    // director counted (stats.txt).
    let conns = stats_connections("tutorial");
    for spec in [
        "director=fixtures/tutorial/server1.pcap",
        "client=fixtures/tutorial/client.pcap",
    ] {
        let mut args = vec!["verify", "--json"];
        args.extend(files.iter().map(String::as_str));
        args.extend(["--rules", "fixtures/tutorial/rules.txt", "--role", spec]);
        let out = lvscheck(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["connections"].as_u64(), Some(conns));
        for check in doc["checks"].as_array().unwrap() {
            for f in check["findings"].as_array().unwrap() {
                for key in ["count", "out_of"] {
                    if let Some(n) = f[key].as_u64() {
                        assert!(n <= conns, "{}: {key} {n} > {conns}", check["id"]);
                    }
                }
            }
        }
    }
}

#[test]
fn a_udp_service_not_listening_is_told_to_bind_to_the_vip() {
    let files = captures("not-listening-udp");
    let mut args = vec!["verify", "--json"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--rules", "fixtures/not-listening-udp/rules.txt"]);
    let out = lvscheck(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let present = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "reply.present")
        .unwrap();
    let refused: Vec<&serde_json::Value> = present["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["summary"].as_str().unwrap().contains("refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{present}");
    let fix = refused[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("bound to the VIP address on the real server"),
        "{fix}"
    );
    // Not the advice that reply.source then fails (fixtures/udp-wildcard).
    assert!(!fix.contains("bind to 0.0.0.0 or to the VIP"), "{fix}");
    assert!(fix.contains("reply.source"), "{fix}");
}
