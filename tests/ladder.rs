//! `flows --conn ID --ladder`: the ladder of one connection, checked against tshark's reading
//! of the same captures. The SVG is parsed (one column per vantage point that saw the
//! connection, one arrow per distinct packet, every frame in exactly one arrow), the Mermaid
//! output read as a sequence diagram, the text counted line by line; the rp-filter connection's
//! requests are marked as never answered.

mod verify_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn captures(fixture: &str) -> Vec<PathBuf> {
    verify_common::fixture_captures(fixture)
}

/// tshark's fields for `filter`, one row per frame.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(out.status.success(), "tshark {filter}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn lvscheck(files: &[PathBuf], extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("flows")
        .args(files)
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What tshark says about one connection (the client's address and port).
struct Expected {
    /// The table's number: 1 + the connections whose first SYN left the client before.
    id: usize,
    /// (capture index, interface) of every vantage point that saw a frame of it.
    vantages: BTreeSet<(usize, String)>,
    /// Distinct packets: the inner header's source, IP id, sequence and acknowledgement
    /// numbers, flags and TCP timestamp (a wrapped copy carries the packet it wraps unchanged;
    /// a retransmitted SYN-ACK differs from the first only in its timestamp).
    packets: BTreeSet<(String, String, String, String, String, String)>,
    /// Every frame of it: capture index and frame number.
    frames: BTreeSet<(usize, u64)>,
}

fn expected(files: &[PathBuf], client: &str, port: u16) -> Expected {
    let client_file = files
        .iter()
        .find(|f| f.file_name().unwrap() == "client.pcap")
        .unwrap();
    let mut order: Vec<String> = Vec::new();
    for row in tshark(
        client_file,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["tcp.srcport"],
    ) {
        if !order.contains(&row[0]) {
            order.push(row[0].clone());
        }
    }
    let id = 1 + order.iter().position(|p| *p == port.to_string()).unwrap();
    let filter = format!("ip.addr == {client} && tcp.port == {port}");
    let mut e = Expected {
        id,
        vantages: BTreeSet::new(),
        packets: BTreeSet::new(),
        frames: BTreeSet::new(),
    };
    let last = |s: &str| s.rsplit(',').next().unwrap().to_string();
    for (i, file) in files.iter().enumerate() {
        let fields = [
            "frame.number",
            "frame.interface_id",
            "ip.src",
            "ip.id",
            "tcp.seq_raw",
            "tcp.ack_raw",
            "tcp.flags",
            "tcp.options.timestamp.tsval",
        ];
        for r in tshark(file, &filter, &fields) {
            e.vantages.insert((i, r[1].clone()));
            e.frames.insert((i, r[0].parse().unwrap()));
            e.packets.insert((
                last(&r[2]),
                last(&r[3]),
                r[4].clone(),
                r[5].clone(),
                r[6].clone(),
                r[7].clone(),
            ));
        }
    }
    e
}

struct Drawn {
    columns: usize,
    /// Per arrow: its frames (capture, frame) and whether it is marked lost or unanswered.
    arrows: Vec<(Vec<(usize, u64)>, bool)>,
    /// Per arrow: its kind and the capture of the column where it was lost.
    fates: Vec<(String, Option<usize>)>,
}

fn parse_svg(svg: &str) -> Drawn {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let class = |n: &roxmltree::Node, c: &str| n.attribute("class") == Some(c);
    let columns = doc.descendants().filter(|n| class(n, "column")).count();
    let fates = doc
        .descendants()
        .filter(|n| class(n, "arrow"))
        .map(|n| {
            let at = n.attribute("data-lost-at");
            (
                n.attribute("data-kind").unwrap().to_string(),
                at.map(|v| v.split('/').next().unwrap().parse().unwrap()),
            )
        })
        .collect();
    let arrows = doc
        .descendants()
        .filter(|n| class(n, "arrow"))
        .map(|n| {
            let frames = n
                .attribute("data-frames")
                .unwrap()
                .split(' ')
                .map(|f| {
                    let parts: Vec<&str> = f.split(':').collect();
                    (parts[0].parse().unwrap(), parts[2].parse().unwrap())
                })
                .collect();
            (frames, n.attribute("data-lost") == Some("true"))
        })
        .collect();
    Drawn {
        columns,
        arrows,
        fates,
    }
}

/// The SVG of the connection has a column per vantage point tshark sees it at and an arrow per
/// distinct packet, each frame in one arrow; the text and the Mermaid have a line per arrow.
fn ladder_matches_tshark(fixture: &str, client: &str, port: u16) -> Drawn {
    let files = captures(fixture);
    let e = expected(&files, client, port);
    let id = e.id.to_string();
    let (code, svg, err) = lvscheck(&files, &["--conn", &id, "--ladder", "--format", "svg"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        svg.contains(&format!("{client}:{port}")),
        "{fixture}: the connection asked for"
    );
    let drawn = parse_svg(&svg);
    assert_eq!(drawn.columns, e.vantages.len(), "{fixture}: columns");
    assert_eq!(drawn.arrows.len(), e.packets.len(), "{fixture}: arrows");
    let mut frames: Vec<(usize, u64)> = drawn.arrows.iter().flat_map(|a| a.0.clone()).collect();
    frames.sort_unstable();
    assert_eq!(
        frames,
        e.frames.iter().copied().collect::<Vec<_>>(),
        "{fixture}: every frame in one arrow"
    );

    let (code, text, _) = lvscheck(&files, &["--conn", &id, "--ladder"]);
    assert_eq!(code, 0);
    let time_row = |l: &&str| {
        let first = l.split_whitespace().next().unwrap_or("");
        first.contains('.') && first.parse::<f64>().is_ok()
    };
    assert_eq!(
        text.lines().filter(time_row).count(),
        e.packets.len(),
        "{text}"
    );

    let (code, mermaid, _) = lvscheck(&files, &["--conn", &id, "--ladder", "--format", "mermaid"]);
    assert_eq!(code, 0);
    let messages = sequence_diagram_messages(&mermaid);
    assert_eq!(messages.len(), e.packets.len(), "{mermaid}");
    drawn
}

/// Reads a Mermaid sequence diagram as its grammar has it: `sequenceDiagram`, then `title`,
/// `participant ID as TEXT` and `FROM ARROW TO: TEXT` lines; the texts hold no character that
/// Mermaid would read as syntax (`;`, `#` outside an entity, `%`, `<`, `>`; in an alias also
/// `:`, `-` and `,`). Returns the
/// messages (from, arrow, to).
fn sequence_diagram_messages(text: &str) -> Vec<(String, String, String)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("sequenceDiagram"));
    let safe = |s: &str| {
        let mut rest = s;
        while let Some(i) = rest.find('#') {
            let after = &rest[i + 1..];
            let end = after.find(';').expect("an entity ends with ;");
            assert!(after[..end].chars().all(|c| c.is_ascii_digit()), "{s}");
            rest = &after[end + 1..];
        }
        !rest.contains([';', '%', '<', '>', '"'])
    };
    // An alias is stricter: `:`, `-` and `,` take part in the syntax there.
    let strict = |s: &str| safe(s) && !s.contains([':', '-', ',']);
    let mut participants = BTreeSet::new();
    let mut messages = Vec::new();
    for line in lines {
        let line = line.trim();
        if let Some(t) = line.strip_prefix("title ") {
            assert!(safe(t), "{line}");
        } else if let Some(p) = line.strip_prefix("participant ") {
            let (id, alias) = p.split_once(" as ").expect("participant ID as TEXT");
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{line}");
            assert!(strict(alias), "{line}");
            participants.insert(id.to_string());
        } else {
            let (head, label) = line.split_once(": ").expect("FROM ARROW TO: TEXT");
            assert!(safe(label), "{line}");
            let arrow = ["-->>", "->>", "--x", "-x", "--)"]
                .iter()
                .find(|a| head.contains(**a))
                .unwrap_or_else(|| panic!("an arrow in {line}"));
            let (from, to) = head.split_once(arrow).unwrap();
            assert!(participants.contains(from), "{line}");
            assert!(participants.contains(to), "{line}");
            messages.push((from.to_string(), arrow.to_string(), to.to_string()));
        }
    }
    messages
}

#[test]
fn tutorial_connection_ladder_has_a_column_per_vantage_point_and_an_arrow_per_packet() {
    if !verify_common::tshark_available() {
        return;
    }
    // The second connection in conns.txt's list of the tutorial, to 172.25.67.2.
    let drawn = ladder_matches_tshark("tutorial", "172.25.254.67", 34746);
    assert!(
        drawn.arrows.iter().all(|a| !a.1),
        "nothing lost in the tutorial"
    );
}

#[test]
fn rp_filter_ladder_marks_the_requests_that_reached_the_server_unanswered() {
    if !verify_common::tshark_available() {
        return;
    }
    // conns.txt: SYN_RECV on 10.7.0.12, the server that drops them (rp_filter=1).
    let drawn = ladder_matches_tshark("rp-filter", "10.7.0.200", 54682);
    let files = captures("rp-filter");
    let rs2 = files
        .iter()
        .position(|f| f.file_name().unwrap() == "rs2.pcap")
        .unwrap();
    for (frames, lost) in &drawn.arrows {
        assert!(frames.iter().any(|f| f.0 == rs2), "every SYN reached rs2");
        assert!(lost, "and got no answer: {frames:?}");
    }
    let e = expected(&files, "10.7.0.200", 54682);
    let (_, text, _) = lvscheck(&files, &["--conn", &e.id.to_string(), "--ladder"]);
    let marked = text.lines().filter(|l| l.contains("✗ no answer")).count();
    assert_eq!(marked, e.packets.len(), "{text}");
}

#[test]
fn replies_that_never_reached_the_client_are_lost_at_the_client() {
    if !verify_common::tshark_available() {
        return;
    }
    // conns.txt: 10.7.0.200:50744 SYN_RECV on 10.7.0.12, the server that routes its replies
    // through the director, which drops them.
    let files = captures("reply-via-director");
    let drawn = ladder_matches_tshark("reply-via-director", "10.7.0.200", 50744);
    let client = files
        .iter()
        .position(|f| f.file_name().unwrap() == "client.pcap")
        .unwrap();
    let rs2 = files
        .iter()
        .position(|f| f.file_name().unwrap() == "rs2.pcap")
        .unwrap();
    let filter = "ip.src == 10.7.0.100 && tcp.dstport == 50744";
    let left = tshark(&files[rs2], filter, &["frame.number"]).len();
    assert!(left > 0);
    assert!(tshark(&files[client], filter, &["frame.number"]).is_empty());
    let replies: Vec<_> = drawn.fates.iter().filter(|f| f.0 == "reply").collect();
    assert_eq!(replies.len(), left, "{:?}", drawn.fates);
    assert!(
        replies.iter().all(|f| f.1 == Some(client)),
        "{:?}",
        drawn.fates
    );
}

#[test]
fn a_packet_the_director_forwards_without_a_tunnel_is_one_arrow() {
    if !verify_common::tshark_available() {
        return;
    }
    // rules.txt: 10.7.0.12 is added with -g (direct routing); conns.txt: 10.7.0.200:39504
    // went to it. The director's capture holds each request twice, in and out, unwrapped:
    // still one packet each, and nothing lost on the way.
    let drawn = ladder_matches_tshark("dr-server", "10.7.0.200", 39504);
    assert!(drawn.arrows.iter().all(|a| !a.1), "{:?}", drawn.fates);
}

#[test]
fn the_html_report_draws_the_ladders_of_each_findings_connections() {
    if !verify_common::tshark_available() {
        return;
    }
    // rp-filter's reply.present finding cites the requests rs2 never answered: conns.txt's two
    // SYN_RECV entries on 10.7.0.12, each drawn beside the finding under its number.
    let files = captures("rp-filter");
    let page = std::env::temp_dir().join(format!("lvscheck-ladder-{}.html", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .arg("verify")
        .args(&files)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    std::fs::remove_file(&page).unwrap();
    for port in [54682, 54696] {
        let e = expected(&files, "10.7.0.200", port);
        let anchor = format!("<figure id=\"conn-{}\"", e.id);
        let at = html.find(&anchor).unwrap_or_else(|| panic!("{anchor}"));
        let from = at + html[at..].find("<svg").unwrap();
        let to = from + html[from..].find("</svg>").unwrap() + "</svg>".len();
        let drawn = parse_svg(&html[from..to]);
        assert_eq!(drawn.columns, e.vantages.len());
        assert_eq!(drawn.arrows.len(), e.packets.len());
        assert!(drawn.arrows.iter().all(|a| a.1), "unanswered");
    }
    assert_eq!(html.matches("<figure id=\"conn-").count(), 2);
}

#[test]
fn an_unknown_connection_is_refused() {
    let files = captures("tutorial");
    let (code, out, err) = lvscheck(&files, &["--conn", "11", "--ladder"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    // conns.txt lists 10 connections.
    assert!(
        err.contains("--conn 11") && err.contains("1 to 10"),
        "{err}"
    );
    let (code, _, err) = lvscheck(&files, &["--conn", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn capture_names_are_escaped_in_every_format() {
    let dir = std::env::temp_dir().join(format!("lvscheck-ladder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let evil = dir.join("<script>alert(1)&\u{1b}[31m;#%%.pcap");
    let tutorial = captures("tutorial");
    std::fs::copy(&tutorial[0], &evil).unwrap();
    let mut files = vec![evil];
    files.extend(tutorial[1..].iter().cloned());
    for (format, check) in [
        (
            "svg",
            &(|s: &str| {
                let doc = roxmltree::Document::parse(s).expect("well-formed");
                assert!(!doc.descendants().any(|n| n.tag_name().name() == "script"));
                assert!(s.contains("&lt;script&gt;"));
            }) as &dyn Fn(&str),
        ),
        ("mermaid", &|s: &str| {
            sequence_diagram_messages(s);
            assert!(!s.contains("<script"));
        }),
        ("text", &|s: &str| {
            assert!(!s.contains('\u{1b}'));
            assert!(s.contains("\\u{1b}"));
        }),
    ] {
        let (code, out, err) = lvscheck(&files, &["--conn", "1", "--ladder", "--format", format]);
        assert_eq!(code, 0, "{err}");
        check(&out);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The findings' ladders come from the connections `verify` kept for the page; without them
/// (a finding citing a connection the run did not keep) the captures are analysed again for
/// the cited frames. Both ways draw the same connections under the same numbers.
#[test]
fn findings_ladders_are_the_same_from_kept_connections_and_from_a_second_analysis() {
    use lvscheck::capture::CaptureSource;
    use lvscheck::checks::verdict::Policy;
    use lvscheck::decode::DecodeOptions;
    use lvscheck::flows::FlowOptions;
    use lvscheck::report::ladder::findings::for_findings;
    use lvscheck::verify::{verify_with, Keep};
    for fixture in ["rp-filter", "reply-via-director", "mtu"] {
        let sources: Vec<CaptureSource> = captures(fixture)
            .into_iter()
            .map(CaptureSource::File)
            .collect();
        let opts = FlowOptions::default();
        let keep = Keep {
            remarkable: true,
            ..Keep::NOTHING
        };
        let decode = DecodeOptions::default();
        let mut v = verify_with(
            &sources,
            decode.clone(),
            &opts,
            None,
            None,
            &Policy::default(),
            keep,
        );
        assert!(!v.remarkable.is_empty(), "{fixture}: connections kept");
        let (kept, unread) = for_findings(&sources, decode.clone(), &opts, &v);
        assert!(unread.is_empty());
        assert!(!kept.is_empty(), "{fixture}: ladders");
        v.remarkable.clear();
        let (again, _) = for_findings(&sources, decode, &opts, &v);
        assert_eq!(kept, again, "{fixture}");
    }
}
