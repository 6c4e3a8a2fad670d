//! The `verify --html` page: the verdict and its coverage, the checks, every finding with its
//! evidence on the corrected clock, the deployment drawn, connections per real server, the
//! captures and their clocks, the fairness of each service with its charts.

use std::collections::HashMap;
use std::fmt::Write;

use super::escape::{anchor, h};
use super::page::{badge, status_class, table};
use crate::checks::verdict::plural;
use crate::checks::{CheckResult, Finding, PacketRef, Status};
use crate::flows::clock::{ClockOffset, OffsetMethod};
use crate::flows::Analysis;
use crate::verify::Verification;

/// One finding of the verification: the check it belongs to and its place in that check's
/// `findings` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FindingKey {
    pub check: &'static str,
    pub index: usize,
}

/// The ladder diagram of one connection, drawn elsewhere: the connection's id (as `flows`
/// numbers it) and its SVG, trusted as it is (its maker escapes its own text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub connection: u64,
    pub svg: String,
}

/// What the page shows beside the verification itself, made by other parts of the report:
/// the ladders of each finding's connections, shown in that finding's section, one anchor
/// (`conn-ID`) per connection. Empty: no ladder section at all.
#[derive(Debug, Clone, Default)]
pub struct VerifyExtras {
    pub ladders: HashMap<FindingKey, Vec<Ladder>>,
}

/// The whole page for `verify --html`.
pub fn verify_page(v: &Verification, exit_code: i32, extras: &VerifyExtras) -> String {
    let analysis = &v.analysis;
    let mut body = String::new();
    header(&mut body, v, exit_code);
    checks_table(&mut body, &v.checks);
    findings(&mut body, v, extras);
    let all: Vec<&Finding> = v.checks.iter().flat_map(|c| &c.findings).collect();
    let _ = write!(
        body,
        "<section id=\"topology\"><h2>Deployment</h2>{}{}</section>",
        services_line(analysis),
        super::topology::diagram(analysis, &all)
    );
    per_server(&mut body, analysis);
    oddities(&mut body, analysis);
    captures(&mut body, analysis);
    if !v.fairness.services.is_empty() {
        body.push_str("<section id=\"fairness\"><h2>Scheduler and fairness</h2>");
        let _ = write!(
            body,
            "<p><strong>Verdict:</strong> {}</p>",
            h(&v.fairness.verdict.line())
        );
        body.push_str(&super::fairness::services(&v.fairness));
        body.push_str("</section>");
    }
    warnings(&mut body, analysis);
    let title = format!(
        "lvscheck verify: {}",
        v.verdict.outcome.as_str().to_uppercase()
    );
    super::page::document(&title, &body)
}

fn header(out: &mut String, v: &Verification, exit_code: i32) {
    let verdict = &v.verdict;
    let outcome = verdict.outcome.as_str();
    let _ = write!(
        out,
        "<h1>lvscheck verify</h1>\
         <p class=\"muted\">{}, {} · exit status {exit_code}</p>\
         <header class=\"verdict o-{outcome}\" id=\"verdict\" data-outcome=\"{outcome}\">\
         <div class=\"outcome\">{}</div><p class=\"summary\">{}</p></header>",
        plural(v.analysis.captures.len(), "capture", "captures"),
        plural(
            v.analysis.connection_count as usize,
            "connection",
            "connections"
        ),
        outcome.to_uppercase(),
        h(&verdict.summary)
    );
    // Coverage: the required checks, how each ended and how many connections it judged.
    let rows: Vec<Vec<String>> = verdict
        .coverage
        .iter()
        .filter(|c| c.required)
        .map(|c| {
            vec![
                format!("<code>{}</code>", h(c.check)),
                badge(c.status),
                c.judged.map_or("-".into(), |n| n.to_string()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        let _ = write!(
            out,
            "<section id=\"coverage\"><h4>Required checks ({}; {} fail the run)</h4>{}</section>",
            rows.len(),
            match verdict.fail_on {
                crate::checks::verdict::FailOn::Fail => "failures",
                crate::checks::verdict::FailOn::Warn => "failures and warnings",
            },
            table(
                "coverage",
                &["check", "status", "connections judged"],
                &[2],
                &rows
            )
        );
    }
    if !verdict.not_run.is_empty() {
        out.push_str("<section id=\"not-verified\"><h4>Not verified</h4><ul class=\"plain\">");
        for n in &verdict.not_run {
            let _ = write!(
                out,
                "<li>{} <code>{}</code>: {}<br><span class=\"muted\">needs: {}</span></li>",
                badge(Status::Skip),
                h(&n.check),
                h(&n.reason),
                h(&n.needs)
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str(
        "<nav class=\"toc\"><a href=\"#checks\">Checks</a><a href=\"#findings\">Findings</a>\
         <a href=\"#topology\">Deployment</a><a href=\"#per-server\">Per real server</a>\
         <a href=\"#captures\">Captures and clocks</a>",
    );
    if !v.fairness.services.is_empty() {
        out.push_str("<a href=\"#fairness\">Fairness</a>");
    }
    out.push_str("</nav>");
}

fn checks_table(out: &mut String, checks: &[CheckResult]) {
    out.push_str(
        "<section id=\"checks\"><h2>Checks</h2><div class=\"scroll\"><table class=\"checks\">\
         <thead><tr><th>check</th><th>status</th><th>reason</th></tr></thead><tbody>",
    );
    for c in checks {
        let id = if c.findings.is_empty() {
            format!("<code>{}</code>", h(c.id))
        } else {
            format!(
                "<a href=\"#{}\"><code>{}</code></a>",
                finding_anchor(c.id, 0),
                h(c.id)
            )
        };
        let _ = write!(
            out,
            "<tr class=\"{}\" data-check=\"{}\" data-status=\"{}\"><td>{id}</td><td>{}</td>\
             <td>{}</td></tr>",
            status_class(c.status),
            h(c.id),
            c.status.as_str(),
            badge(c.status),
            h(&c.reason)
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn finding_anchor(check: &str, index: usize) -> String {
    anchor("finding", &format!("{check}-{}", index + 1))
}

/// Every finding: the failures and warnings first, then the notes (`info`), each in check
/// order.
fn findings(out: &mut String, v: &Verification, extras: &VerifyExtras) {
    let clocks = Clocks::new(&v.analysis);
    let all: Vec<(FindingKey, &Finding)> = v
        .checks
        .iter()
        .flat_map(|c| {
            c.findings
                .iter()
                .enumerate()
                .map(|(index, f)| (FindingKey { check: c.id, index }, f))
        })
        .collect();
    out.push_str("<section id=\"findings\"><h2>Findings</h2>");
    let problems: Vec<_> = all
        .iter()
        .filter(|(_, f)| f.severity >= Status::Warn)
        .collect();
    let notes: Vec<_> = all
        .iter()
        .filter(|(_, f)| f.severity < Status::Warn)
        .collect();
    if problems.is_empty() {
        out.push_str("<p>No check failed or warned.</p>");
    }
    let mut filters = 0;
    for (key, f) in problems {
        finding(out, *key, f, &clocks, extras, &mut filters);
    }
    if !notes.is_empty() {
        out.push_str("<h3 id=\"notes\">Notes</h3>");
        for (key, f) in notes {
            finding(out, *key, f, &clocks, extras, &mut filters);
        }
    }
    out.push_str("</section>");
}

fn finding(
    out: &mut String,
    key: FindingKey,
    f: &Finding,
    clocks: &Clocks,
    extras: &VerifyExtras,
    filters: &mut usize,
) {
    let _ = write!(
        out,
        "<article class=\"finding {}\" id=\"{}\" data-check=\"{}\" data-severity=\"{}\">\
         <h3>{} <code>{}</code>: <span class=\"f-summary\">{}</span></h3><dl>",
        status_class(f.severity),
        finding_anchor(key.check, key.index),
        h(f.check),
        f.severity.as_str(),
        badge(f.severity),
        h(f.check),
        h(&f.summary)
    );
    if let Some(host) = &f.host {
        let _ = write!(out, "<dt>host</dt><dd>{}</dd>", h(host));
    }
    let _ = write!(
        out,
        "<dt>likely cause</dt><dd class=\"f-cause\">{}</dd><dt>fix</dt>\
         <dd class=\"f-fix\"><div class=\"fix\">{}</div></dd>",
        h(&f.likely_cause),
        h(&f.fix)
    );
    if let Some(filter) = &f.display_filter {
        *filters += 1;
        let id = format!("filter-{filters}");
        let _ = write!(
            out,
            "<dt>display filter</dt><dd><code class=\"filter\" id=\"{id}\">{}</code>\
             <button class=\"copy\" type=\"button\" data-target=\"{id}\" hidden>Copy</button></dd>",
            h(filter)
        );
    }
    out.push_str("</dl>");
    if !f.evidence.is_empty() {
        let rows: Vec<Vec<String>> = f.evidence.iter().map(|p| clocks.row(p)).collect();
        let _ = write!(
            out,
            "<h4>Evidence</h4>{}<p class=\"muted\">{}</p>",
            table(
                "evidence",
                &[
                    "capture",
                    "frame",
                    "time (reference clock)",
                    "time in the capture",
                    "packet"
                ],
                &[1],
                &rows
            ),
            clocks.note()
        );
    }
    if !f.snapshot.is_empty() {
        let rows: Vec<Vec<String>> = f
            .snapshot
            .iter()
            .map(|l| {
                vec![
                    h(&l.file).into_owned(),
                    l.line.to_string(),
                    format!("<code>{}</code>", h(&l.text)),
                ]
            })
            .collect();
        let _ = write!(
            out,
            "<h4>Director's snapshot</h4>{}",
            table("snapshot", &["file", "line", "text"], &[1], &rows)
        );
    }
    if let Some(ladders) = extras.ladders.get(&key).filter(|l| !l.is_empty()) {
        out.push_str("<div class=\"ladders\"><h4>Connections</h4>");
        for l in ladders {
            let _ = write!(
                out,
                "<figure id=\"{}\" class=\"ladder\"><figcaption>connection {}</figcaption>{}</figure>",
                ladder_anchor(l.connection),
                l.connection,
                l.svg
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</article>");
}

/// The anchor of a connection's ladder: `conn-ID`.
pub fn ladder_anchor(connection: u64) -> String {
    format!("conn-{connection}")
}

/// Each capture's clock offset, to show evidence times on the reference clock.
struct Clocks<'a> {
    analysis: &'a Analysis,
    by_file: HashMap<&'a str, Vec<&'a ClockOffset>>,
}

impl<'a> Clocks<'a> {
    fn new(analysis: &'a Analysis) -> Clocks<'a> {
        let mut by_file: HashMap<&str, Vec<&ClockOffset>> = HashMap::new();
        for c in &analysis.captures {
            let offsets = analysis
                .clock_offsets
                .iter()
                .filter(|o| o.vantage.capture == c.capture)
                .collect();
            by_file.insert(c.file.as_str(), offsets);
        }
        Clocks { analysis, by_file }
    }

    /// A row of the evidence table: capture, frame, time on the reference clock (with the
    /// offset's bounds), the capture's own time, what the packet is.
    fn row(&self, p: &PacketRef) -> Vec<String> {
        let own = format!("<span class=\"mono\">{}</span>", h(&p.time));
        let offsets = self
            .by_file
            .get(p.file.as_str())
            .map_or(&[][..], |o| &o[..]);
        let first = offsets.first();
        let same = first.is_some_and(|f| offsets.iter().all(|o| o.offset_ns == f.offset_ns));
        let parsed = crate::time::parse_rfc3339_ns(&p.time);
        let (reference, in_capture) = match (first, parsed) {
            (Some(o), Some(_)) if same && o.vantage == o.reference => {
                (own, "the reference clock".to_string())
            }
            (Some(o), Some(t)) if same && o.method != OffsetMethod::Unmatched => (
                format!(
                    "<span class=\"mono\">{}</span> <span class=\"muted\">± {:.3} ms</span>",
                    crate::time::rfc3339_ns(t - o.offset_ns),
                    o.uncertainty_ns as f64 / 1e6
                ),
                own,
            ),
            (Some(_), Some(_)) if !same => (
                "<span class=\"muted\">not corrected: the file holds several vantage points \
                 with different clocks</span>"
                    .to_string(),
                own,
            ),
            _ => (
                "<span class=\"muted\">not corrected: no clock offset for this capture</span>"
                    .to_string(),
                own,
            ),
        };
        vec![
            h(&p.file).into_owned(),
            p.frame.to_string(),
            reference,
            in_capture,
            h(&p.summary).into_owned(),
        ]
    }

    fn note(&self) -> String {
        let reference = self
            .analysis
            .clock_offsets
            .first()
            .map(|o| crate::report::flows::vantage_label(self.analysis, o.reference));
        match reference {
            Some(r) => format!(
                "Times on the reference clock are each capture's own time less its clock offset \
                 against {} (see <a href=\"#captures\">Captures and clocks</a>), within the \
                 offset's bounds; the capture's own time is what Wireshark shows for the frame.",
                h(&r)
            ),
            None => "No clock offsets were measured: times are each capture's own.".into(),
        }
    }
}

fn services_line(analysis: &Analysis) -> String {
    let topo = &analysis.topology;
    let services: Vec<String> = topo.services.iter().map(|s| s.to_string()).collect();
    let mut out = format!(
        "<p>{}: {}</p>",
        if services.len() == 1 {
            "Service"
        } else {
            "Services"
        },
        if services.is_empty() {
            "none seen".to_string()
        } else {
            h(&services.join(", ")).into_owned()
        }
    );
    if !topo.limits.is_empty() {
        out.push_str("<ul class=\"plain muted\">");
        for l in &topo.limits {
            let _ = write!(out, "<li>{}</li>", h(l));
        }
        out.push_str("</ul>");
    }
    out
}

fn per_server(out: &mut String, analysis: &Analysis) {
    let per = crate::report::verify::per_server(analysis);
    out.push_str("<section id=\"per-server\"><h2>Connections per real server</h2>");
    if per.is_empty() {
        out.push_str("<p>No connection to a real server was rebuilt.</p></section>");
        return;
    }
    let rows: Vec<Vec<String>> = per
        .iter()
        .map(|p| {
            let mut row = vec![
                h(&p.service).into_owned(),
                p.real_server
                    .map_or("(not captured)".into(), |a| a.to_string()),
                p.connections.to_string(),
            ];
            row.extend(
                crate::report::verify::outcome_columns(p)
                    .iter()
                    .map(u64::to_string),
            );
            row
        })
        .collect();
    out.push_str(&table(
        "per-server",
        &crate::report::verify::PER_SERVER_HEADER,
        &[2, 3, 4, 5, 6, 7],
        &rows,
    ));
    out.push_str("</section>");
}

/// The packets the model could not place, one row per name, as Zeek's weird.log lists them
/// (none: no section).
fn oddities(out: &mut String, analysis: &Analysis) {
    let docs = crate::report::oddities::docs(analysis);
    if docs.is_empty() {
        return;
    }
    out.push_str("<section id=\"oddities\"><h2>Oddities</h2>");
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let sender = d
                .first_sender
                .map_or(String::new(), |s| format!(" from {s}"));
            vec![
                format!("<code>{}</code>", h(d.name)),
                d.count.to_string(),
                format!("{} frame {}{}", h(&d.first.file), d.first.frame, h(&sender)),
                h(d.meaning).into_owned(),
            ]
        })
        .collect();
    out.push_str(&table(
        "oddities",
        &["name", "count", "first packet", "what it means"],
        &[1],
        &rows,
    ));
    out.push_str("</section>");
}

/// The captures: where each was taken, how that was decided, its interfaces, its clock against
/// the reference with the bounds, and why.
fn captures(out: &mut String, analysis: &Analysis) {
    let mut offsets = HashMap::new();
    for o in &analysis.clock_offsets {
        offsets.entry(o.vantage).or_insert(o);
    }
    let rows: Vec<Vec<String>> = analysis
        .topology
        .vantages
        .iter()
        .map(|v| {
            // The interface this vantage point is, by the name the file gives it (cut as the
            // text report cuts it: a name is whatever the file's writer put there).
            let interface = analysis
                .captures
                .iter()
                .find(|c| c.capture == v.id.capture)
                .and_then(|c| c.interfaces.iter().find(|(i, _)| *i == v.id.interface))
                .map(|(_, name)| crate::escape::printable(name, 64));
            let label = h(&crate::report::flows::vantage_label(analysis, v.id)).into_owned();
            let capture = match interface {
                Some(name) => format!(
                    "{label}<br><span class=\"muted\">interface <span class=\"ifname\">{}</span></span>",
                    h(&name)
                ),
                None => label,
            };
            let offset = offsets.get(&v.id).map_or("-".into(), |o| offset_cell(analysis, o));
            vec![
                capture,
                v.role.to_string().replace('_', " "),
                v.decided_by.to_string(),
                offset,
                h(&v.reason).into_owned(),
            ]
        })
        .collect();
    let _ = write!(
        out,
        "<section id=\"captures\"><h2>Captures and clocks</h2>{}<p class=\"muted\">A clock \
         offset is the capture's clock minus the reference capture's; the true offset lies \
         within ± the bound (for one direction, plus the one-way delay, which one direction \
         cannot separate).</p></section>",
        table(
            "captures",
            &["capture", "role", "decided by", "clock offset", "why"],
            &[],
            &rows
        )
    );
}

fn offset_cell(analysis: &Analysis, o: &ClockOffset) -> String {
    if o.vantage == o.reference {
        return "<strong>reference</strong>".into();
    }
    let method = crate::report::flows::offset_method(o.method);
    let mut cell = format!(
        "<span class=\"mono\">{:+.3} ms</span> ± <span class=\"mono\">{:.3} ms</span><br>\
         <span class=\"muted\">{method}",
        o.offset_ns as f64 / 1e6,
        o.uncertainty_ns as f64 / 1e6,
    );
    if o.method != OffsetMethod::SameClock {
        let _ = write!(
            cell,
            ", {}",
            plural(o.samples as usize, "packet", "packets")
        );
    }
    if let Some(via) = o.via.filter(|v| *v != o.reference) {
        let _ = write!(
            cell,
            ", via {}",
            h(&crate::report::flows::vantage_label(analysis, via))
        );
    }
    cell.push_str("</span>");
    cell
}

fn warnings(out: &mut String, analysis: &Analysis) {
    if analysis.warnings.is_empty() {
        return;
    }
    out.push_str("<section id=\"warnings\"><h2>Reading</h2><ul class=\"plain\">");
    for w in &analysis.warnings {
        let _ = write!(out, "<li>{}</li>", h(w));
    }
    out.push_str("</ul></section>");
}
