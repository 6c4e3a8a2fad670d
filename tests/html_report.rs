//! `verify --html` and `fairness --html` (issue 14): the page of the tutorial (with its rules),
//! the rp-filter and the wrr fixtures, opened in headless Chromium. A screenshot is written
//! and has the page's size and ink (and the verdict's colour); the DOM after the page ran
//! shows the verdict, every check with its status and every finding of `verify --json` with
//! its cause, fix, display filter (and its copy button) and evidence, times corrected by the
//! clock offsets the JSON gives; the console stays silent; a pcapng whose interface name is
//! `<script>alert(1)</script>`, in a file named like an `<img onerror>`, shows both as text.
//! Each finding of rp-filter holds the ladder of every connection its evidence frames belong to
//! (as many as tshark finds client ports in them), each with an arrow holding the frame.
//! Standard output is the same with `--html` as without.

mod browser_common;
mod capture_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use browser_common::dom::{self, Element};
use browser_common::{chromium_available, dump_dom, scratch, screenshot};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn lvscheck(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("lvscheck runs")
}

/// The captures of a fixture, in name order, and its rules.
fn fixture(name: &str) -> (Vec<PathBuf>, PathBuf) {
    let dir = root().join("fixtures").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    (files, dir.join("rules.txt"))
}

/// Runs `COMMAND FILES... --rules RULES [--json] --html PAGE`, checks that standard output
/// and the exit status are those of the same run without `--html`, and returns the output.
fn run_with_html(command: &str, files: &[PathBuf], extra: &[&str], page: &Path) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![command.as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let plain = lvscheck(&args);
    args.push("--html".as_ref());
    args.push(page.as_os_str());
    let with = lvscheck(&args);
    assert!(page.is_file(), "{command} --html wrote no page");
    assert_eq!(with.status.code(), plain.status.code(), "exit status");
    assert!(
        with.stdout == plain.stdout,
        "{command} {extra:?}: standard output differs with --html"
    );
    with
}

/// The DOM of `page` after it ran, checked for a silent console; and a screenshot checked for
/// its size and for what it drew. Returns the DOM's root and the screenshot.
fn open(page: &Path) -> (Element, browser_common::Shot) {
    let (html, console) = dump_dom(page);
    assert!(
        console.is_empty(),
        "the console of {page:?} is not silent:\n{}",
        console.join("\n")
    );
    let shot = screenshot(page, &page.with_extension("png"));
    assert_eq!((shot.width, shot.height), (1280, 2000), "screenshot size");
    let inked = shot.inked();
    assert!(
        inked > 0.03,
        "the screenshot of {page:?} is nearly blank ({:.1} % drawn)",
        inked * 100.0
    );
    (dom::parse(&html), shot)
}

fn one<'a>(found: Vec<&'a Element>, what: &str) -> &'a Element {
    assert_eq!(found.len(), 1, "expected one {what}, found {}", found.len());
    found[0]
}

/// Collapses runs of white space, as a reader sees text.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The verdict, the checks and every finding of the JSON document are on the page.
fn assert_page_matches(doc: &Value, page: &Element) {
    let verdict = page.by_id("verdict").expect("a verdict");
    let outcome = doc["verdict"]["outcome"].as_str().unwrap();
    assert_eq!(verdict.attr("data-outcome"), Some(outcome));
    assert_eq!(
        words(&one(verdict.by_class("outcome"), "outcome").text()),
        outcome.to_uppercase()
    );
    assert_eq!(
        words(&one(verdict.by_class("summary"), "summary").text()),
        words(doc["verdict"]["summary"].as_str().unwrap())
    );

    let rows = page.find_all(|e| e.name == "tr" && e.attr("data-check").is_some());
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(rows.len(), checks.len(), "one row per check");
    for (row, check) in rows.iter().zip(checks) {
        assert_eq!(row.attr("data-check"), check["id"].as_str());
        assert_eq!(row.attr("data-status"), check["status"].as_str());
        let status = check["status"].as_str().unwrap();
        assert!(row.has_class(&format!("s-{status}")), "{row:?}");
        assert!(words(&row.text()).contains(&words(check["reason"].as_str().unwrap())));
    }

    let articles = page.by_class("finding");
    let findings: Vec<&Value> = checks
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .collect();
    assert_eq!(articles.len(), findings.len(), "one section per finding");
    let offsets = clock_offsets(doc);
    for f in findings {
        let summary = words(f["summary"].as_str().unwrap());
        let article = article_of(&articles, f);
        assert_eq!(article.attr("data-severity"), f["severity"].as_str());
        for (class, key) in [("f-cause", "likely_cause"), ("f-fix", "fix")] {
            assert_eq!(
                words(&one(article.by_class(class), class).text()),
                words(f[key].as_str().unwrap()),
                "{summary}: {key}"
            );
        }
        match f["display_filter"].as_str() {
            Some(filter) => {
                let code = one(article.by_class("filter"), "display filter");
                assert_eq!(code.text(), filter);
                let button = one(article.by_name("button"), "copy button");
                assert_eq!(button.attr("data-target"), code.attr("id"));
                // The script shows the button: a page whose script did not run keeps it hidden.
                assert!(
                    button.attr("hidden").is_none(),
                    "the copy button stays hidden"
                );
            }
            None => assert!(article.by_class("filter").is_empty()),
        }
        let evidence = f["evidence"].as_array().unwrap();
        let rows: Vec<&Element> = article
            .by_class("evidence")
            .iter()
            .flat_map(|t| t.by_name("tr"))
            .filter(|r| !r.by_name("td").is_empty())
            .collect();
        assert_eq!(rows.len(), evidence.len(), "{summary}: evidence rows");
        for (row, p) in rows.iter().zip(evidence) {
            let cells: Vec<String> = row.by_name("td").iter().map(|c| words(&c.text())).collect();
            assert_eq!(cells[0], p["file"].as_str().unwrap());
            assert_eq!(cells[1], p["frame"].to_string());
            assert_eq!(cells[4], words(p["summary"].as_str().unwrap()));
            let own = p["time"].as_str().unwrap();
            let expected = offsets.corrected(doc, p["file"].as_str().unwrap(), own);
            match expected {
                Corrected::Reference => {
                    assert_eq!(cells[2], own);
                    assert_eq!(cells[3], "the reference clock");
                }
                Corrected::Shifted(t, bound) => {
                    assert_eq!(cells[2], format!("{t} ± {bound}"), "{summary}");
                    assert_eq!(cells[3], own);
                }
                Corrected::No => {
                    assert!(cells[2].starts_with("not corrected"), "{cells:?}");
                    assert_eq!(cells[3], own);
                }
            }
        }
    }
}

enum Corrected {
    Reference,
    /// The time on the reference clock and the offset's bound, as the page writes them.
    Shifted(String, String),
    No,
}

/// The JSON's clock offsets per capture index.
struct Offsets(Vec<(u64, i64, i64, bool, String)>);

fn clock_offsets(doc: &Value) -> Offsets {
    Offsets(
        doc["clock_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["vantage"]["capture"].as_u64().unwrap(),
                    o["offset_ns"].as_i64().unwrap(),
                    o["uncertainty_ns"].as_i64().unwrap(),
                    o["vantage"] == o["reference"],
                    o["method"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

impl Offsets {
    /// What the page should show for a packet of `file` at `own` (the capture's clock).
    fn corrected(&self, doc: &Value, file: &str, own: &str) -> Corrected {
        let capture = doc["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == file)
            .map(|c| c["capture"].as_u64().unwrap());
        let mine: Vec<_> = self.0.iter().filter(|o| Some(o.0) == capture).collect();
        let Some(first) = mine.first() else {
            return Corrected::No;
        };
        if mine.iter().any(|o| o.1 != first.1) || first.4 == "unmatched" {
            return Corrected::No;
        }
        if first.3 {
            return Corrected::Reference;
        }
        let t = lvscheck::time::parse_rfc3339_ns(own).expect("an RFC 3339 time");
        Corrected::Shifted(
            lvscheck::time::rfc3339_ns(t - first.1),
            format!("{:.3} ms", first.2 as f64 / 1e6),
        )
    }
}

/// Runs verify with `--json`, its rules and `--html` on a fixture and checks the page against
/// the JSON.
fn verify_fixture(name: &str) -> (Value, Element, browser_common::Shot) {
    let dir = scratch(name);
    let (files, rules) = fixture(name);
    let page = dir.join(format!("{name}.html"));
    let rules_arg = rules.to_str().unwrap().to_string();
    let out = run_with_html("verify", &files, &["--json", "--rules", &rules_arg], &page);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    let (root, shot) = open(&page);
    assert_page_matches(&doc, &root);
    (doc, root, shot)
}

/// The status colours of the style sheet: the verdict banner's.
const PASS_GREEN: [u8; 3] = [0x1a, 0x7f, 0x37];
const FAIL_RED: [u8; 3] = [0xc6, 0x28, 0x28];

#[test]
fn the_tutorial_page_shows_the_verdict_every_check_and_the_deployment() {
    if !chromium_available() {
        return;
    }
    let (doc, page, shot) = verify_fixture("tutorial");
    assert_eq!(doc["verdict"]["outcome"], "verified");
    assert!(shot.count_near(PASS_GREEN, 12) > 200, "no verified green");
    assert_eq!(shot.count_near(FAIL_RED, 12), 0, "red on a verified page");
    // The deployment: the director and both real servers with their MACs, the tunnel's kind,
    // and the capture taken on each.
    let svg = one(page.by_class("topology"), "topology diagram");
    let text = svg.text();
    for host in &doc["topology"]["real_servers"].as_array().unwrap()[..] {
        assert!(text.contains(host["addr"].as_str().unwrap()), "{text}");
        for mac in host["macs"].as_array().unwrap() {
            assert!(text.contains(mac.as_str().unwrap()), "{text}");
        }
    }
    for expected in [
        "172.25.67.1",
        "VIP 172.25.67.100",
        "IP-in-IP",
        "captured: client.pcap",
        "captured: server1.pcap",
        "captured: server2.pcap",
        "captured: server3.pcap",
    ] {
        assert!(
            text.contains(expected),
            "{expected} not in the diagram: {text}"
        );
    }
    assert!(
        svg.by_class("flag").is_empty(),
        "a host flagged on a verified page"
    );
    // Connections per real server, as the JSON counts them.
    let table = one(page.by_class("per-server"), "per-server table");
    let rows: Vec<&Element> = table
        .by_name("tr")
        .into_iter()
        .filter(|r| !r.by_name("td").is_empty())
        .collect();
    let per = doc["per_real_server"].as_array().unwrap();
    assert_eq!(rows.len(), per.len());
    for (row, p) in rows.iter().zip(per) {
        let cells: Vec<String> = row.by_name("td").iter().map(|c| c.text()).collect();
        assert_eq!(cells[0], p["service"].as_str().unwrap());
        assert_eq!(cells[1], p["real_server"].as_str().unwrap());
        assert_eq!(cells[2], p["connections"].to_string());
    }
    // Every clock offset with its bound.
    let captures = one(page.by_class("captures"), "captures table").text();
    for o in doc["clock_offsets"].as_array().unwrap() {
        if o["vantage"] != o["reference"] {
            let shown = format!(
                "{:+.3} ms ± {:.3} ms",
                o["offset_ns"].as_i64().unwrap() as f64 / 1e6,
                o["uncertainty_ns"].as_i64().unwrap() as f64 / 1e6
            );
            assert!(words(&captures).contains(&shown), "{shown} in {captures}");
        }
    }
    // --rules runs the scheduler check: its charts are inline.
    assert_eq!(page.by_class("chart").len(), 4, "four fairness charts");
}

#[test]
fn the_rp_filter_page_shows_each_finding_with_its_evidence_and_filter() {
    if !chromium_available() {
        return;
    }
    let (doc, page, shot) = verify_fixture("rp-filter");
    assert_eq!(doc["verdict"]["outcome"], "failed");
    assert!(shot.count_near(FAIL_RED, 12) > 200, "no failure red");
    let failed: Vec<&Element> = page
        .by_class("finding")
        .into_iter()
        .filter(|a| a.attr("data-severity") == Some("fail"))
        .collect();
    assert!(!failed.is_empty(), "a failing finding");
    // The diagram outlines the real server the failure is about, naming the check.
    let flagged: Vec<&Element> = one(page.by_class("topology"), "topology")
        .by_class("host")
        .into_iter()
        .filter(|g| !g.by_class("flag").is_empty())
        .collect();
    let flagged = one(flagged, "flagged host");
    assert!(flagged.text().contains("10.7.0.12"), "{}", flagged.text());
    let flag = one(flagged.by_class("flag"), "flag").text();
    assert!(flag.contains("FAIL reply.present"), "{flag}");
    // The check's row links to its first finding.
    let row = one(
        page.find_all(|e| e.name == "tr" && e.attr("data-check") == Some("reply.present")),
        "reply.present row",
    );
    let link = one(row.by_name("a"), "link to the finding");
    let target = link.attr("href").unwrap().trim_start_matches('#');
    assert_eq!(
        page.by_id(target).and_then(|a| a.attr("data-check")),
        Some("reply.present")
    );
    // Each finding shows the ladder of every connection its evidence packets belong to: as
    // many ladders as tshark finds client ports in those frames, each drawn with its columns
    // and an arrow holding the evidence frame.
    let articles = page.by_class("finding");
    for f in doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
    {
        let article = article_of(&articles, f);
        let figures = article.by_name("figure");
        // Informational findings (the mtu prediction) draw no ladder: nothing went wrong.
        if f["severity"] == "info" {
            assert!(figures.is_empty(), "{}", f["summary"]);
            continue;
        }
        let mut ports = std::collections::BTreeSet::new();
        for e in f["evidence"].as_array().unwrap() {
            let frame = e["frame"].as_u64().unwrap();
            let fields = tshark_fields(
                &root().join(e["file"].as_str().unwrap()),
                &format!("frame.number == {frame}"),
                &["tcp.srcport"],
            );
            ports.extend(fields.into_iter().filter(|p| !p.is_empty()));
            let drawn = figures.iter().any(|fig| {
                fig.by_class("arrow").iter().any(|a| {
                    a.attr("data-frames").is_some_and(|fs| {
                        fs.split(' ')
                            .any(|x| x.rsplit(':').next() == Some(&frame.to_string()))
                    })
                })
            });
            assert!(
                drawn,
                "evidence frame {frame} is drawn in a ladder of its finding"
            );
        }
        assert_eq!(figures.len(), ports.len(), "{}", f["summary"]);
        for fig in figures {
            assert!(fig.attr("id").is_some_and(|id| id.starts_with("conn-")));
            assert_eq!(fig.by_class("column").len(), 3, "client, director, rs2");
        }
    }
}

/// The page's section of the JSON finding `f`: its check and summary.
fn article_of<'a>(articles: &[&'a Element], f: &Value) -> &'a Element {
    let summary = words(f["summary"].as_str().unwrap());
    one(
        articles
            .iter()
            .copied()
            .filter(|a| {
                a.attr("data-check") == f["check"].as_str()
                    && words(&one(a.by_class("f-summary"), "summary").text()) == summary
            })
            .collect(),
        &format!("finding {summary}"),
    )
}

/// One field per frame tshark shows for `filter` in `file`.
fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark runs");
    assert!(out.status.success(), "tshark on {file:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_wrr_page_shows_six_captures_and_the_charts() {
    if !chromium_available() {
        return;
    }
    let (doc, page, _) = verify_fixture("wrr");
    assert_eq!(doc["verdict"]["outcome"], "verified");
    let charts = page.by_class("chart");
    assert_eq!(charts.len(), 4);
    for chart in charts {
        let svg = one(chart.by_name("svg"), "chart SVG");
        assert!(svg.text().contains("192.168.60.80:8080"), "{}", svg.text());
    }
    let text = one(page.by_class("topology"), "topology").text();
    for cap in [
        "lb.pcap",
        "rs-a.pcap",
        "rs-a-tunl0.pcap",
        "rs-b-any.pcap",
        "rs-c.pcap",
        "user.pcap",
    ] {
        assert!(text.contains(&format!("captured: {cap}")), "{cap}: {text}");
    }
}

#[test]
fn the_fairness_page_of_wrr_has_its_verdict_tables_and_charts() {
    if !chromium_available() {
        return;
    }
    let dir = scratch("fairness-wrr");
    let (files, rules) = fixture("wrr");
    let page = dir.join("fairness.html");
    let rules = rules.to_str().unwrap().to_string();
    let charts_dir = dir.join("charts");
    let charts_arg = charts_dir.to_str().unwrap().to_string();
    let out = run_with_html(
        "fairness",
        &files,
        &["--rules", &rules, "--charts", &charts_arg],
        &page,
    );
    assert_eq!(out.status.code(), Some(0));
    // The page's charts are those --charts writes, to the byte.
    let html = std::fs::read_to_string(&page).unwrap();
    for name in ["shares", "timeline", "cumulative", "response"] {
        let file = charts_dir.join(format!("tcp-192.168.60.80-8080-{name}.svg"));
        let svg = std::fs::read_to_string(&file).unwrap();
        assert!(svg.starts_with("<svg"), "{file:?}");
        assert!(
            html.contains(&svg),
            "the page's {name} chart is not {file:?}"
        );
    }
    let (root, shot) = open(&page);
    assert!(shot.count_near(PASS_GREEN, 12) > 200, "no conforming green");
    let verdict = root.by_id("verdict").unwrap();
    assert_eq!(verdict.attr("data-outcome"), Some("conforms"));
    // The verdict line the text report ends with.
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().last().unwrap().trim_start_matches("Verdict: ");
    assert_eq!(
        words(&one(verdict.by_class("outcome"), "outcome").text()),
        "CONFORMS"
    );
    assert_eq!(
        words(&one(verdict.by_class("summary"), "summary").text()),
        words(line)
    );
    let servers = one(root.by_class("servers"), "per-server table");
    let conns: Vec<String> = servers
        .by_name("tr")
        .iter()
        .filter_map(|r| r.by_name("td").get(2).map(|c| c.text()))
        .collect();
    assert_eq!(
        conns,
        ["15", "10", "5"],
        "connections per server as conns.txt counts"
    );
    let charts: Vec<&str> = root
        .by_class("chart")
        .iter()
        .filter_map(|c| c.attr("data-chart"))
        .collect();
    assert_eq!(charts, ["shares", "timeline", "cumulative", "response"]);
}

/// A pcapng copy of a little-endian microsecond pcap, its one interface named `if_name`.
fn pcapng_from_pcap(pcap: &[u8], if_name: &str) -> Vec<u8> {
    let u32_at = |i: usize| u32::from_le_bytes(pcap[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let mut ng = capture_common::Pcapng::new(false);
    // No if_tsresol: microseconds, as in the pcap.
    ng.interface(
        u32_at(20) as u16,
        u32_at(16),
        &[(capture_common::IF_NAME, if_name.as_bytes().to_vec())],
    );
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let (sec, usec, incl, orig) = (u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12));
        let data = &pcap[at + 16..at + 16 + incl as usize];
        ng.epb(0, u64::from(sec) * 1_000_000 + u64::from(usec), data, orig);
        at += 16 + incl as usize;
    }
    ng.bytes
}

const EVIL_IFNAME: &str = "<script>alert(1)</script>";
const EVIL_FILE: &str = "<img src=x onerror=alert(2)>\"'&amp;.pcapng";

#[test]
fn a_hostile_interface_and_file_name_render_as_text() {
    if !chromium_available() {
        return;
    }
    let dir = scratch("hostile");
    let tutorial = root().join("fixtures/tutorial");
    let evil = dir.join(EVIL_FILE);
    let pcap = std::fs::read(tutorial.join("server1.pcap")).unwrap();
    std::fs::write(&evil, pcapng_from_pcap(&pcap, EVIL_IFNAME)).unwrap();
    let mut files = vec![evil.clone()];
    files.extend(["client.pcap", "server2.pcap", "server3.pcap"].map(|f| tutorial.join(f)));
    let page = dir.join("hostile.html");
    let out = run_with_html("verify", &files, &["--json"], &page);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The copy is the director's capture, as the original is.
    let director = &doc["captures"][0]["vantages"][0];
    assert_eq!(director["role"], "director", "{director}");
    let (root, _) = open(&page);
    // Our script is the only one; nothing from the names became an element or a handler.
    assert_eq!(root.by_name("script").len(), 1, "one script element");
    assert!(root.by_name("img").is_empty(), "an <img> element was made");
    assert!(
        root.find_all(|e| e.attrs.iter().any(|(k, _)| k.starts_with("on")))
            .is_empty(),
        "an event handler attribute was made"
    );
    let names: Vec<String> = root.by_class("ifname").iter().map(|e| e.text()).collect();
    assert!(names.contains(&EVIL_IFNAME.to_string()), "{names:?}");
    let captures = one(root.by_class("captures"), "captures table").text();
    assert!(captures.contains(evil.to_str().unwrap()), "{captures}");
    // In the diagram too, where the director's capture is named: without its folder (cut to
    // fit the box), and whole in the line's tooltip.
    let diagram = one(root.by_class("topology"), "topology");
    let director = diagram
        .by_class("cap")
        .into_iter()
        .find(|t| t.text().contains("onerror"))
        .expect("the director's capture in the diagram");
    let tip = one(director.by_name("title"), "tooltip").text();
    assert_eq!(tip, format!("captured: {}", evil.display()));
    assert!(
        director
            .text()
            .contains("captured: <img src=x onerror=alert(2)"),
        "{}",
        director.text()
    );
}

#[test]
fn the_copy_button_copies_the_display_filter_or_selects_it() {
    if !chromium_available() {
        return;
    }
    let dir = scratch("copy");
    let (files, _) = fixture("rp-filter");
    let page = dir.join("copy.html");
    run_with_html("verify", &files, &[], &page);
    // A click on the first copy button, by a script the page's policy lets run (its nonce),
    // then what the button says and what is selected, written where the DOM shows them. A
    // headless browser may refuse the clipboard: the filter is then selected for the reader.
    let html = std::fs::read_to_string(&page).unwrap();
    let nonce = html
        .split("script-src 'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("the page's nonce");
    let click = format!(
        "<script nonce=\"{nonce}\">document.querySelector('button.copy').click();\
         setTimeout(function () {{ var b = document.body;\
         b.setAttribute('data-button', document.querySelector('button.copy').textContent);\
         b.setAttribute('data-selection', String(window.getSelection())); }}, 300);</script>"
    );
    std::fs::write(&page, html.replace("</body>", &format!("{click}</body>"))).unwrap();
    let (dom_text, console) = dump_dom(&page);
    assert!(console.is_empty(), "{console:?}");
    let root = dom::parse(&dom_text);
    let body = one(root.by_name("body"), "body");
    let filter = root.by_class("filter")[0].text();
    match body.attr("data-button") {
        Some("Copied") => {}
        Some("Selected: press Ctrl+C") => {
            assert_eq!(body.attr("data-selection"), Some(filter.as_str()))
        }
        other => panic!("the button says {other:?} after a click"),
    }
}

#[test]
fn the_console_and_blank_checks_catch_a_broken_page() {
    if !chromium_available() {
        return;
    }
    let dir = scratch("broken");
    let page = dir.join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>",
    )
    .unwrap();
    let (_, console) = dump_dom(&page);
    assert!(
        console.iter().any(|l| l.contains("undefinedFunction")),
        "the uncaught error is not seen: {console:?}"
    );
    let shot = screenshot(&page, &dir.join("broken.png"));
    assert!(shot.inked() < 0.001, "a blank page counts as drawn");
}

#[test]
fn the_dom_reader_reads_what_chromium_writes() {
    let root = dom::parse(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>p > b { x: '<' }</style>\
         </head><body><p class=\"a b\" id=\"x\" data-v=\"&quot;q&amp;\">1 &lt; 2<br>\
         <b>&amp;</b></p><svg><path d=\"M0\"></path><g/></svg><script>if (a < b) {}</script>\
         </body></html>",
    );
    let p = root.by_id("x").unwrap();
    assert!(p.has_class("b") && !p.has_class("ab"));
    assert_eq!(p.attr("data-v"), Some("\"q&"));
    assert_eq!(p.text(), "1 < 2&");
    assert_eq!(root.by_name("script")[0].text(), "if (a < b) {}");
    assert_eq!(root.by_name("svg")[0].descendants().len(), 2);
    assert_eq!(root.by_name("br").len(), 1);
}

/// A fixture verified through the library, without its rules.
fn verified(name: &str) -> lvscheck::verify::Verification {
    let (files, _) = fixture(name);
    let sources: Vec<lvscheck::capture::CaptureSource> = files
        .into_iter()
        .map(lvscheck::capture::CaptureSource::File)
        .collect();
    lvscheck::verify::verify(
        &sources,
        lvscheck::decode::DecodeOptions::default(),
        &lvscheck::flows::FlowOptions::default(),
        None,
    )
}

#[test]
fn ladders_given_to_the_page_are_shown_in_their_finding_with_an_anchor() {
    use lvscheck::report::html::{verify_page, FindingKey, Ladder, VerifyExtras};
    let v = verified("rp-filter");
    assert!(!v.check("reply.present").unwrap().findings.is_empty());
    let plain = verify_page(&v, 1, &VerifyExtras::default());
    assert!(
        dom::parse(&plain).by_class("ladders").is_empty(),
        "a ladder section without ladders"
    );
    let mut extras = VerifyExtras::default();
    extras.ladders.insert(
        FindingKey {
            check: "reply.present",
            index: 0,
        },
        vec![
            Ladder {
                connection: 3,
                svg: "<svg class=\"ladder-test\"><text>3</text></svg>".into(),
            },
            Ladder {
                connection: 4,
                svg: "<svg class=\"ladder-test\"><text>4</text></svg>".into(),
            },
        ],
    );
    let root = dom::parse(&verify_page(&v, 1, &extras));
    let ladders = root.by_class("ladders");
    assert_eq!(ladders.len(), 1, "one finding has ladders");
    let finding = root.by_id("finding-reply.present-1").expect("the finding");
    for conn in ["3", "4"] {
        let figure = finding
            .by_id(&format!("conn-{conn}"))
            .expect("the connection's anchor inside its finding");
        assert_eq!(one(figure.by_class("ladder-test"), "ladder").text(), conn);
    }
}

#[test]
fn a_large_deployment_is_drawn_with_the_hosts_past_eight_counted() {
    let mut analysis = verified("tutorial").analysis;
    let topo = &mut analysis.topology;
    for i in 10..28u8 {
        topo.real_servers.push(lvscheck::topology::Host {
            addr: std::net::IpAddr::from([172, 25, 67, i]),
            macs: Vec::new(),
            evidence: None,
        });
    }
    for i in 0..30u8 {
        topo.clients.push(std::net::IpAddr::from([198, 51, 100, i]));
    }
    let (servers, clients) = (topo.real_servers.len(), topo.clients.len());
    let svg = lvscheck::report::html::topology::diagram(&analysis, &[]);
    let root = dom::parse(&svg);
    let boxes = root.by_class("host-rs");
    assert_eq!(
        boxes.len(),
        9,
        "eight servers and one box that counts the rest"
    );
    assert!(
        boxes[8]
            .text()
            .contains(&format!("and {} more real servers", servers - 8)),
        "{}",
        boxes[8].text()
    );
    let clients_box = one(root.by_class("host-client"), "clients").text();
    assert!(
        clients_box.contains(&format!("{clients} clients")),
        "{clients_box}"
    );
    assert!(
        clients_box.contains(&format!("and {} more", clients - 8)),
        "{clients_box}"
    );
    // One tunnel arrow per server box drawn.
    let tunnels = root
        .by_name("path")
        .iter()
        .filter(|p| p.attr("stroke") == Some("#0b5cad"))
        .count();
    assert_eq!(tunnels, 9);
}

#[test]
fn the_stale_host_page_lists_its_oddities_as_the_json_does() {
    if !chromium_available() {
        return;
    }
    let (doc, page, _) = verify_fixture("stale-vip-host");
    let section = page.by_id("oddities").expect("an Oddities section");
    let rows: Vec<&Element> = section
        .find_all(|e| e.name == "tr")
        .into_iter()
        .skip(1)
        .collect();
    let odd = doc["oddities"].as_array().unwrap();
    assert_eq!(rows.len(), odd.len());
    for (row, o) in rows.iter().zip(odd) {
        let cells: Vec<String> = row.by_name("td").iter().map(|c| c.text()).collect();
        assert_eq!(cells[0], o["name"].as_str().unwrap());
        assert_eq!(cells[1], o["count"].to_string());
        let first = format!(
            "{} frame {}",
            o["first"]["file"].as_str().unwrap(),
            o["first"]["frame"]
        );
        assert!(cells[2].starts_with(&first), "{cells:?}");
    }
    // The fixture's README: 24 packets from the VIP by old's MAC, all at client2.pcap.
    assert_eq!(odd[0]["name"], "vip_from_unknown_mac");
    assert_eq!(odd[0]["count"], 24);
}
