//! `verify --annotate DIR` (issue 14): the pcapng copies, read back with tshark and capinfos.
//! Every fixture's copies hold every frame of the input, the same bytes at the same times, and
//! a comment naming the check on every evidence frame; on the tutorial, every frame tshark
//! matches for a connection's client port carries that connection's comment and no other does.
//! Frame counts come from capinfos, frame membership from tshark; lvscheck's JSON serves as the
//! list of evidence frames (what is checked is that they carry comments) and flows' records as
//! the list of connections.

mod capture_common;
mod verify_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use capture_common::Pcapng;
use verify_common::{lvscheck, root, tshark_available, tshark_fields};

/// The capture files of a folder, in name order, as the other fixture tests take them.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            [".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz"]
                .iter()
                .any(|s| name.ends_with(s))
        })
        .collect();
    files.sort();
    files
}

/// The capture sets of the fixtures: every folder of `fixtures/` and of `fixtures/derived/`
/// with captures, each with its rules.txt when it has one (a derived set takes the rules of
/// the fixture it was made from: tutorial's, or port-filter's), and each file of
/// `derived/mirror` alone (each is a capture set of its own).
fn capture_sets() -> Vec<(String, Vec<PathBuf>, Option<PathBuf>)> {
    let fixtures = Path::new(root()).join("fixtures");
    let mut sets = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.extend(
        std::fs::read_dir(fixtures.join("derived"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir()),
    );
    dirs.sort();
    for dir in dirs {
        let files = captures(&dir);
        if files.is_empty() {
            continue;
        }
        let name = dir.strip_prefix(&fixtures).unwrap().display().to_string();
        let rules = dir.join("rules.txt");
        let rules = rules.exists().then_some(rules);
        if name == "derived/mirror" {
            for f in files {
                let stem = f.file_name().unwrap().to_string_lossy().to_string();
                sets.push((format!("{name}/{stem}"), vec![f], None));
            }
        } else {
            sets.push((name, files, rules));
        }
    }
    sets
}

/// Frames per file, from capinfos (one call for all of a set's files).
fn capinfos_counts(files: &[PathBuf]) -> BTreeMap<PathBuf, u64> {
    let out = Command::new("capinfos")
        .args(["-c", "-M"])
        .args(files)
        .output()
        .expect("capinfos runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = BTreeMap::new();
    let mut file: Option<PathBuf> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("File name:") {
            file = Some(PathBuf::from(name.trim()));
        } else if let Some(n) = line.strip_prefix("Number of packets:") {
            counts.insert(file.take().unwrap(), n.trim().parse().unwrap());
        }
    }
    counts
}

/// One frame as tshark reads it: number, time, lengths, interface name, the bytes' MD5, and
/// the comments (tshark joins several with ',').
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    number: u64,
    time: String,
    len: String,
    cap_len: String,
    md5: String,
    comment: String,
}

/// Every frame of `file`, one tshark call.
fn tshark_frames(file: &Path) -> Vec<Frame> {
    let fields = [
        "frame.number",
        "frame.time_epoch",
        "frame.len",
        "frame.cap_len",
        "frame.md5_hash",
        "frame.comment",
    ];
    tshark_fields(file, true, ",", &fields)
        .into_iter()
        .map(|f| Frame {
            number: f[0].parse().unwrap(),
            time: f[1].clone(),
            len: f[2].clone(),
            cap_len: f[3].clone(),
            md5: f[4].clone(),
            comment: f.get(5).cloned().unwrap_or_default(),
        })
        .collect()
}

/// The name of the copy of an input: its file name without .gz, with .pcapng.
fn copy_name(input: &Path) -> String {
    let name = input.file_name().unwrap().to_string_lossy().to_string();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = name
        .strip_suffix(".pcapng")
        .or_else(|| name.strip_suffix(".pcap"))
        .unwrap();
    format!("{stem}.pcapng")
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

/// Runs verify --json --annotate on a capture set; the document and the output folder.
fn annotate(files: &[PathBuf], rules: Option<&Path>, out: &Path) -> (i32, Value) {
    let mut args: Vec<String> = vec!["verify".into(), "--json".into()];
    args.extend(files.iter().map(|f| relative(f)));
    if let Some(r) = rules {
        args.extend(["--rules".into(), relative(r)]);
    }
    args.extend(["--annotate".into(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = lvscheck(&args);
    let code = run.status.code().unwrap();
    let doc = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    (code, doc)
}

/// Evidence frames of every finding, per file as given: (frame, check ids).
fn evidence(doc: &Value) -> BTreeMap<String, BTreeMap<u64, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<u64, BTreeSet<String>>> = BTreeMap::new();
    for c in doc["checks"].as_array().unwrap() {
        for f in c["findings"].as_array().unwrap() {
            for e in f["evidence"].as_array().unwrap() {
                out.entry(e["file"].as_str().unwrap().to_string())
                    .or_default()
                    .entry(e["frame"].as_u64().unwrap())
                    .or_default()
                    .insert(f["check"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// Capture sets whose copies are compared frame by frame with their inputs (time, lengths,
/// the bytes' MD5): one of each format and link type (pcap micro and nano, gzip, pcapng,
/// several pcapng interfaces, a cut-off file, Ethernet, Linux cooked, raw IP). The others are
/// counted (capinfos) and read for their comments: one tshark call per copy.
const COMPARED: [&str; 6] = [
    "formats-nsec",
    "formats-gzip",
    "formats-pcapng",
    "formats-merged",
    "formats-truncated",
    "wrr",
];

/// What one capture set's copies showed: evidence frames checked, frames commented.
fn check_set(name: &str, files: &[PathBuf], rules: Option<&Path>, out: &Path) -> (usize, usize) {
    let (code, doc) = annotate(files, rules, out);
    assert!((0..=3).contains(&code) && code != 2, "{name}: exit {code}");
    let evidence = evidence(&doc);
    let counts = capinfos_counts(files);
    let (mut checked, mut commented) = (0, 0);
    for input in files {
        let copy = out.join(copy_name(input));
        let frames = tshark_frames(&copy);
        assert_eq!(
            frames.len() as u64,
            counts[input],
            "{name}: {} has the input's frames (capinfos -c)",
            copy.display()
        );
        assert!(frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.number == i as u64 + 1));
        if COMPARED.contains(&name) {
            let original = tshark_frames(input);
            assert_eq!(original.len(), frames.len());
            for (a, b) in original.iter().zip(&frames) {
                assert_eq!(
                    (a.number, &a.time, &a.len, &a.cap_len, &a.md5),
                    (b.number, &b.time, &b.len, &b.cap_len, &b.md5),
                    "{name}: {} frame {} differs in the copy",
                    input.display(),
                    a.number
                );
                assert!(a.comment.is_empty(), "fixture frames carry no comment");
            }
        }
        for f in frames.iter().filter(|f| !f.comment.is_empty()) {
            commented += 1;
            assert!(
                f.comment.starts_with("lvscheck: "),
                "{name}: frame {}: {}",
                f.number,
                f.comment
            );
        }
        let wanted = evidence.get(&relative(input)).cloned().unwrap_or_default();
        for (frame, checks) in wanted {
            let f = &frames[frame as usize - 1];
            for check in checks {
                assert!(
                    f.comment.contains(&format!("lvscheck: {check} ")),
                    "{name}: {} frame {frame} (evidence of {check}) has comment {:?}",
                    copy.display(),
                    f.comment
                );
                checked += 1;
            }
        }
    }
    if code == 1 {
        assert!(checked > 0, "{name}: a failure with evidence");
    }
    (checked, commented)
}

#[test]
fn every_fixture_is_copied_whole_with_a_comment_on_each_evidence_frame() {
    if !tshark_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sets = capture_sets();
    assert!(sets.len() >= 40, "{} capture sets", sets.len());
    // Two at a time: most of the time is tshark starting.
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let halves: Vec<_> = [0, 1]
            .into_iter()
            .map(|half| {
                let (sets, tmp) = (&sets, tmp.path());
                scope.spawn(move || {
                    sets.iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == half)
                        .map(|(i, (name, files, rules))| {
                            check_set(name, files, rules.as_deref(), &tmp.join(i.to_string()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let checked: usize = results.iter().map(|r| r.0).sum();
    let commented: usize = results.iter().map(|r| r.1).sum();
    assert!(checked >= 50, "{checked} evidence frames");
    assert!(commented >= 5000, "{commented} frames commented");
}

/// (client address, client port) -> connection id, from `flows --json`'s connection records,
/// numbered in order of start as the tables number them (docs/flows.md).
fn connections(files: &[&str]) -> BTreeMap<(String, u16), u64> {
    let mut args = vec!["flows", "--json"];
    args.extend(files);
    let run = lvscheck(&args);
    let mut starts: Vec<(i64, String, u16)> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["record"] == "connection")
        .map(|r| {
            let client: std::net::SocketAddr = r["client"].as_str().unwrap().parse().unwrap();
            (
                r["first_ts_ns"].as_i64().unwrap(),
                client.ip().to_string(),
                client.port(),
            )
        })
        .collect();
    starts.sort();
    starts
        .into_iter()
        .enumerate()
        .map(|(i, (_, ip, port))| ((ip, port), i as u64 + 1))
        .collect()
}

/// Per frame of `file`: its number, every IP address and TCP port in it (outer and inner, and
/// those an ICMP error quotes), and its comments; one tshark call.
fn addresses_and_comments(file: &Path) -> Vec<(u64, Vec<String>, Vec<u16>, String)> {
    let fields = ["frame.number", "ip.addr", "tcp.port", "frame.comment"];
    tshark_fields(file, false, ";", &fields)
        .into_iter()
        .map(|f| {
            let list = |s: &str| -> Vec<String> {
                s.split(';')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            (
                f[0].parse().unwrap(),
                list(&f[1]),
                list(&f[2]).iter().map(|p| p.parse().unwrap()).collect(),
                f.get(3).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// Annotates `inputs` (with the rules) and checks, in every copy, that the frames tshark
/// matches with `ip.addr == C && tcp.port == P` for each connection are exactly those whose
/// comment names that connection, one connection a frame; returns every copy's comments, by
/// file stem.
fn frames_of_each_connection_carry_its_comment(
    inputs: &[&str],
    rules: &str,
    connections_expected: usize,
    exit: i32,
) -> BTreeMap<String, String> {
    let conns = connections(inputs);
    assert_eq!(conns.len(), connections_expected, "{inputs:?}: conns.txt");
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = inputs.iter().map(|f| Path::new(root()).join(f)).collect();
    let (code, _) = annotate(&files, Some(&Path::new(root()).join(rules)), tmp.path());
    assert_eq!(code, exit);
    let mut comments = BTreeMap::new();
    for input in inputs {
        let stem = Path::new(input)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let frames = addresses_and_comments(&tmp.path().join(format!("{stem}.pcapng")));
        let mut matched_somewhere = 0;
        for ((ip, port), id) in &conns {
            // tshark's `ip.addr == C && tcp.port == P`.
            let members: BTreeSet<u64> = frames
                .iter()
                .filter(|f| f.1.contains(ip) && f.2.contains(port))
                .map(|f| f.0)
                .collect();
            let tag = format!("lvscheck: connection {id} (tcp {ip}:{port} -> ");
            let commented: BTreeSet<u64> = frames
                .iter()
                .filter(|f| f.3.contains(&tag))
                .map(|f| f.0)
                .collect();
            assert_eq!(members, commented, "{stem}: connection {id} ({ip}:{port})");
            for f in frames.iter().filter(|f| members.contains(&f.0)) {
                // One connection per frame: no other id on it.
                assert_eq!(
                    f.3.matches("lvscheck: connection ").count(),
                    1,
                    "{stem} frame {}: {}",
                    f.0,
                    f.3
                );
            }
            matched_somewhere += members.len();
        }
        assert!(matched_somewhere > 0, "{stem}: frames of connections");
        comments.insert(stem, frames.iter().map(|f| f.3.as_str()).collect());
    }
    comments
}

#[test]
fn tutorial_frames_of_a_connection_carry_its_comment_and_only_they() {
    if !tshark_available() {
        return;
    }
    let inputs = [
        "fixtures/tutorial/client.pcap",
        "fixtures/tutorial/server1.pcap",
        "fixtures/tutorial/server2.pcap",
        "fixtures/tutorial/server3.pcap",
    ];
    let comments =
        frames_of_each_connection_carry_its_comment(&inputs, "fixtures/tutorial/rules.txt", 10, 0);
    // Roles of the tutorial (its README): server1 is the director 172.25.67.1, server2 and
    // server3 the real servers .2 and .3, client the client.
    let legs: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "client",
            vec!["request leaving the client", "reply arriving at the client"],
        ),
        (
            "server1",
            vec![
                "request arriving at the director",
                "request leaving the director wrapped IPIP to 172.25.67.",
            ],
        ),
        (
            "server2",
            vec![
                "request arriving at real server 172.25.67.2 wrapped IPIP",
                "reply leaving real server 172.25.67.2",
            ],
        ),
        (
            "server3",
            vec![
                "request arriving at real server 172.25.67.3 wrapped IPIP",
                "reply leaving real server 172.25.67.3",
            ],
        ),
    ]);
    for (stem, words) in legs {
        for w in words {
            assert!(comments[stem].contains(w), "{stem}: {w}");
        }
    }
}

/// The tutorial merged into one file (`mergecap`: every packet twice, the sender's copy and the
/// receiver's): each frame of a connection, both copies, carries the connection's comment; the
/// first names both ends of the hop in one comment.
#[test]
fn a_merged_capture_comments_both_copies_and_both_ends() {
    if !tshark_available() {
        return;
    }
    let comments = frames_of_each_connection_carry_its_comment(
        &["fixtures/derived/mirror/tutorial-merged.pcapng"],
        "fixtures/tutorial/rules.txt",
        10,
        0,
    );
    let all = &comments["tutorial-merged"];
    for both in [
        "request leaving the client; request arriving at the director",
        "request leaving the director wrapped IPIP to 172.25.67.3; request arriving at real \
         server 172.25.67.3 wrapped IPIP",
        "reply leaving real server 172.25.67.2; reply arriving at the client",
        "the second copy of a packet this capture holds twice",
    ] {
        assert!(all.contains(both), "{both}");
    }
}

/// The fields of every frame that must survive the copy, with the interface name.
fn frames_with_interface(file: &Path) -> Vec<Vec<String>> {
    tshark_fields(file, true, ",", &["frame.md5_hash", "frame.interface_name"])
}

#[test]
fn a_pcapng_input_keeps_its_comments_interface_names_and_filter() {
    if !tshark_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let inputs = Path::new(root()).join("fixtures/derived/port-filter-pcapng");
    // The client's capture with two comments of its own, as editcap adds them.
    let client = tmp.path().join("in").join("client.pcapng");
    std::fs::create_dir_all(client.parent().unwrap()).unwrap();
    let status = Command::new("editcap")
        .args([
            "-a",
            "3:first comment of mine",
            "-a",
            "4:second, with a comma",
        ])
        .arg(inputs.join("client.pcapng"))
        .arg(&client)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut files = vec![client.clone()];
    files.extend(
        ["director", "rs1", "rs2"]
            .iter()
            .map(|h| inputs.join(format!("{h}.pcapng"))),
    );
    let out = tmp.path().join("out");
    let mut args: Vec<String> = vec!["verify".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--annotate".into(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = lvscheck(&args);
    assert_ne!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let copy = out.join("client.pcapng");
    let frames = tshark_frames(&copy);
    let comment = |n: usize| frames[n - 1].comment.clone();
    for (n, mine) in [(3, "first comment of mine"), (4, "second, with a comma")] {
        let c = comment(n);
        assert!(
            c.contains(mine) && c.contains("lvscheck: connection "),
            "{c}"
        );
    }
    // Same frames on the same interfaces (named eth0 in the input).
    let before = frames_with_interface(&client);
    let after = frames_with_interface(&copy);
    assert_eq!(before, after);
    assert!(after.iter().all(|f| f[1] == "eth0"));
    // The interface's capture filter survives (capinfos reads if_filter).
    let info = Command::new("capinfos").arg(&copy).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Filter string = tcp port 80"), "{info}");
}

/// A hand-made pcapng the capture layer copies: two sections of each byte order, an interface
/// with a name and a nanosecond clock, a packet with a comment already, an obsolete packet
/// block, a simple packet block, and blocks that are no packets.
#[test]
fn the_capture_layer_copies_every_block_and_comments_the_frames_asked_for() {
    use lvscheck::capture::annotate::{AnnotatedCopy, Comments};
    use lvscheck::capture::CaptureSource;
    if !tshark_available() {
        return;
    }
    let mut ng = Pcapng::new(true);
    let name = b"mon0".to_vec();
    ng.interface(1, 65535, &[(2, name), (9, vec![9])]);
    let frame = capture_common::payload(1, 60);
    // Frame 1: a comment of its own, then the end of options.
    let mut body = Vec::new();
    body.extend_from_slice(&ng.u32(0));
    body.extend_from_slice(&ng.u32(0x1234));
    body.extend_from_slice(&ng.u32(0x5678_9abc));
    body.extend_from_slice(&ng.u32(60));
    body.extend_from_slice(&ng.u32(60));
    body.extend_from_slice(&frame);
    body.extend_from_slice(&ng.options(&[(1, b"mine".to_vec())]));
    ng.block(6, &body);
    ng.epb(0, 0x1234_5678_9abd, &frame, 60); // 2
    ng.block(4, &[0, 0, 0, 0]); // a name resolution block with nothing in it
    ng.section(false);
    ng.interface(1, 65535, &[]);
    ng.packet_block(0, 1_795_629_504_000_000, &frame, 60); // 3
    ng.simple_packet(&frame, 60); // 4
    ng.block(0x0000_0BAD, &[1, 2, 3, 4]); // a custom block: frame 5 to Wireshark
    ng.epb(0, 1_795_629_505_000_000, &frame, 60); // 6
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.pcapng");
    std::fs::write(&input, &ng.bytes).unwrap();
    let source = CaptureSource::File(input.clone());
    let mut copy = AnnotatedCopy::new(&source, Vec::new()).unwrap();
    let mut c = Comments::default();
    for n in [1u64, 3, 4, 6] {
        c.clear();
        c.add(format_args!("lvscheck: frame {n}"));
        c.add(format_args!("lvscheck: second line of {n}"));
        copy.comment(n, &c).unwrap();
    }
    let (report, bytes) = copy.finish().unwrap();
    assert_eq!(report.frames, 6);
    assert_eq!(report.commented, 4);
    assert_eq!(report.simple_converted, 1);
    assert_eq!(report.stopped, None);
    let output = tmp.path().join("out.pcapng");
    std::fs::write(&output, &bytes).unwrap();
    let frames = tshark_frames(&output);
    let original = tshark_frames(&input);
    // tshark lists the custom block as frame 5.
    assert_eq!(frames.len(), 6);
    let comments: Vec<&str> = frames.iter().map(|f| f.comment.as_str()).collect();
    assert_eq!(
        comments,
        [
            "mine,lvscheck: frame 1,lvscheck: second line of 1",
            "",
            "lvscheck: frame 3,lvscheck: second line of 3",
            "lvscheck: frame 4,lvscheck: second line of 4",
            "",
            "lvscheck: frame 6,lvscheck: second line of 6",
        ]
    );
    for (a, b) in original.iter().zip(&frames) {
        assert_eq!((&a.len, &a.cap_len, &a.md5), (&b.len, &b.cap_len, &b.md5));
        // The simple packet block had no time; its copy has the one before it.
        if a.number != 4 && a.number != 5 {
            assert_eq!(a.time, b.time, "frame {}", a.number);
        }
    }
    assert_eq!(frames[3].time, frames[2].time);
    let names = frames_with_interface(&output);
    assert_eq!(names[0][1], "mon0");
    // Blocks that are no packets are copied as they are: the custom block's bytes are there.
    let custom = [0xAD_u8, 0x0B, 0, 0, 16, 0, 0, 0, 1, 2, 3, 4, 16, 0, 0, 0];
    assert!(bytes.windows(custom.len()).any(|w| w == custom));
    // Comments asked for out of order are refused, not written in the wrong place.
    let mut again = AnnotatedCopy::new(&source, Vec::new()).unwrap();
    again.comment(3, &c).unwrap();
    assert!(again.comment(2, &c).is_err());
}

/// A section header that gives its section's length: the copy says -1 (unknown), since the
/// comments make the section longer, and tshark reads the comment.
#[test]
fn a_section_length_given_becomes_unknown() {
    use lvscheck::capture::annotate::{AnnotatedCopy, Comments};
    use lvscheck::capture::CaptureSource;
    if !tshark_available() {
        return;
    }
    let mut ng = Pcapng::new(false);
    ng.bytes.clear();
    let mut shb = Vec::new();
    shb.extend_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0]);
    let frame = capture_common::payload(3, 60);
    // The section: interface (20 bytes) and packet (32 + 60).
    shb.extend_from_slice(&(20u64 + 92).to_le_bytes());
    ng.block(0x0A0D_0D0A, &shb);
    ng.interface(1, 65535, &[]);
    ng.epb(0, 1_795_629_504_000_000, &frame, 60);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.pcapng");
    std::fs::write(&input, &ng.bytes).unwrap();
    let mut copy = AnnotatedCopy::new(&CaptureSource::File(input), Vec::new()).unwrap();
    let mut c = Comments::default();
    c.add(format_args!("lvscheck: longer now"));
    copy.comment(1, &c).unwrap();
    let (report, bytes) = copy.finish().unwrap();
    assert_eq!((report.frames, report.commented), (1, 1));
    assert_eq!(bytes[16..24], [0xff; 8]);
    assert_eq!(bytes[..16], ng.bytes[..16]);
    let output = tmp.path().join("out.pcapng");
    std::fs::write(&output, &bytes).unwrap();
    let frames = tshark_frames(&output);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].comment, "lvscheck: longer now");
}

#[test]
fn stdout_is_the_same_with_and_without_annotate() {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "verify",
        "fixtures/rp-filter/client.pcap",
        "fixtures/rp-filter/director.pcap",
        "fixtures/rp-filter/rs1.pcap",
        "fixtures/rp-filter/rs2.pcap",
        "--rules",
        "fixtures/rp-filter/rules.txt",
    ];
    for json in [false, true] {
        let mut plain: Vec<&str> = base.to_vec();
        if json {
            plain.push("--json");
        }
        let dir = tmp.path().join(format!("json-{json}"));
        let dir = dir.display().to_string();
        let mut with: Vec<&str> = plain.clone();
        with.extend(["--annotate", dir.as_str()]);
        let a = lvscheck(&plain);
        let b = lvscheck(&with);
        assert_eq!(a.status.code(), Some(1));
        assert_eq!(b.status.code(), Some(1));
        assert_eq!(a.stdout, b.stdout, "json {json}");
        let said = String::from_utf8_lossy(&b.stderr);
        assert!(said.contains("rs2.pcapng"), "{said}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
    }
}

#[test]
fn a_folder_that_cannot_take_the_copies_is_named_and_nothing_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let inside_a_file = file.join("sub");
    for dir in [&file, &inside_a_file] {
        let dir = dir.display().to_string();
        let run = lvscheck(&[
            "verify",
            "fixtures/tutorial/client.pcap",
            "--annotate",
            &dir,
        ]);
        assert_eq!(run.status.code(), Some(2));
        assert!(run.stdout.is_empty());
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(said.contains(&dir) && said.contains("--annotate"), "{said}");
    }
    // A copy that would be written over its input.
    let input = tmp.path().join("client.pcapng");
    std::fs::copy(
        Path::new(root()).join("fixtures/formats-pcapng/client.pcapng"),
        &input,
    )
    .unwrap();
    let before = std::fs::read(&input).unwrap();
    let dir = tmp.path().display().to_string();
    let run = lvscheck(&["verify", input.to_str().unwrap(), "--annotate", &dir]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stdout.is_empty());
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("written over the input"), "{said}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn standard_input_and_names_that_collide() {
    if !tshark_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // rs1.pcap twice under one name: a copy of it in another folder, as client.pcap.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        Path::new(root()).join("fixtures/rp-filter/rs1.pcap"),
        other.join("client.pcap"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let stdin = std::fs::File::open(Path::new(root()).join("fixtures/rp-filter/rs2.pcap")).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .args([
            "verify",
            "fixtures/rp-filter/client.pcap",
            "fixtures/rp-filter/director.pcap",
            other.join("client.pcap").to_str().unwrap(),
            "-",
            "--annotate",
            out.to_str().unwrap(),
        ])
        .stdin(stdin)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "client-2.pcapng",
            "client.pcapng",
            "director.pcapng",
            "stdin.pcapng"
        ]
    );
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("client-2.pcapng is the copy of"), "{said}");
    let counts = capinfos_counts(&[out.join("client-2.pcapng"), out.join("stdin.pcapng")]);
    let want = capinfos_counts(&[
        Path::new(root()).join("fixtures/rp-filter/rs1.pcap"),
        Path::new(root()).join("fixtures/rp-filter/rs2.pcap"),
    ]);
    assert_eq!(
        counts.values().collect::<Vec<_>>(),
        want.values().collect::<Vec<_>>()
    );
    // The evidence of reply.present is in what came on standard input (rs2).
    let frames = tshark_frames(&out.join("stdin.pcapng"));
    assert!(frames
        .iter()
        .any(|f| f.comment.contains("lvscheck: reply.present FAIL")));
}
