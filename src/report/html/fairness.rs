//! Fairness in the HTML report: per service the per-server table, the fairness numbers, the
//! replay of the scheduler with its first mismatches, the drift, and the four charts inline
//! (SVG, drawn by [`crate::report::charts`] exactly as `--charts` writes them). Also the whole
//! `fairness --html` page.

use std::fmt::Write;

use super::escape::{anchor, h};
use super::page::table;
use crate::fairness::{FairnessOutcome, FairnessReport, ServiceReport};
use crate::flows::Analysis;
use crate::report::charts;
use crate::report::fairness as text;

/// Services whose charts are drawn; past them the page says how many were left out.
const MAX_CHARTED: usize = 8;
/// A chart larger than this (one mark per connection at hundreds of thousands) is not inlined:
/// `--charts DIR` writes it.
const MAX_CHART_BYTES: usize = 4 << 20;

/// The whole page for `fairness --html`: the verdict, each service, and the deployment the
/// captures show.
pub fn fairness_page(report: &FairnessReport, analysis: &Analysis) -> String {
    let outcome = match report.verdict.outcome {
        FairnessOutcome::Conforms => "conforms",
        FairnessOutcome::Deviates => "deviates",
        FairnessOutcome::Inconclusive => "inconclusive",
    };
    let mut body = format!(
        "<h1>lvscheck fairness</h1>\
         <header class=\"verdict o-{outcome}\" id=\"verdict\" data-outcome=\"{outcome}\">\
         <div class=\"outcome\">{}</div><p class=\"summary\">{}</p></header>\
         <nav class=\"toc\"><a href=\"#services\">Services</a><a href=\"#topology\">Deployment</a></nav>\
         <section id=\"services\"><h2>Services</h2>",
        outcome.to_uppercase(),
        h(&report.verdict.line())
    );
    if report.services.is_empty() {
        body.push_str("<p>No virtual service with connections was found.</p>");
    }
    body.push_str(&services(report));
    let _ = write!(
        body,
        "</section><section id=\"topology\"><h2>Deployment</h2>{}</section>",
        super::topology::diagram(analysis, &[])
    );
    let title = format!("lvscheck fairness: {}", outcome.to_uppercase());
    super::page::document(&title, &body)
}

/// Every service's section.
pub fn services(report: &FairnessReport) -> String {
    let mut out = String::new();
    for (k, svc) in report.services.iter().enumerate() {
        service(&mut out, svc, k < MAX_CHARTED, report.services.len() > 1);
    }
    if report.services.len() > MAX_CHARTED {
        let _ = write!(
            out,
            "<p class=\"muted\">Charts are drawn for the first {MAX_CHARTED} of {} services; \
             <code>lvscheck fairness --charts DIR</code> writes them all.</p>",
            report.services.len()
        );
    }
    out
}

fn escaped_rows(rows: impl IntoIterator<Item = Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| r.iter().map(|c| h(c).into_owned()).collect())
        .collect()
}

fn service(out: &mut String, svc: &ServiceReport, charted: bool, several: bool) {
    let id = anchor("service", &charts::stem(svc));
    let _ = write!(
        out,
        "<div class=\"service\" id=\"{id}\"><h3>{}</h3>",
        h(&text::service_heading(svc))
    );
    if several {
        let _ = write!(
            out,
            "<p><strong>Verdict for this service:</strong> {}</p>",
            h(&svc.verdict.line())
        );
    }
    out.push_str(&table(
        "servers",
        &text::SERVER_HEADER,
        &[1, 2, 3, 4, 5, 6, 7, 8, 9],
        &escaped_rows(svc.servers.iter().map(text::server_row)),
    ));
    let _ = write!(out, "<p>{}</p>", h(&text::fairness_line(svc)));
    list(out, svc.fairness.notes.iter());
    if let Some(c) = &svc.conformance {
        let _ = write!(
            out,
            "<p>{}</p><p class=\"muted\">{}</p>",
            h(&text::conformance_line(svc, c)),
            h(&text::order_line(c))
        );
        list(
            out,
            c.not_predicted
                .iter()
                .map(|u| format!("Not checked: {} x {}", u.count, u.reason)),
        );
        if !c.first_mismatches.is_empty() {
            let _ = write!(
                out,
                "<h4>{} mismatch(es); the first {}</h4>{}",
                c.mismatches,
                c.first_mismatches.len(),
                table(
                    "mismatches",
                    &text::MISMATCH_HEADER,
                    &[0],
                    &escaped_rows(
                        c.first_mismatches
                            .iter()
                            .map(|m| text::mismatch_row(svc, m))
                    )
                )
            );
        }
        list(out, c.limitations.iter());
    }
    if let Some((title, header, rows)) = text::drift_table(svc) {
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let numeric: Vec<usize> = (0..header.len()).collect();
        let _ = write!(
            out,
            "<h4>{}</h4>{}",
            h(title.trim_end_matches(':')),
            table("drift", &header, &numeric, &escaped_rows(rows))
        );
    }
    if let Some(line) = text::largest_drift_line(svc) {
        let _ = write!(out, "<p>{}</p>", h(&line));
    }
    list(out, svc.notes.iter().map(|n| format!("Note: {n}")));
    if charted {
        chart_grid(out, svc);
    }
    out.push_str("</div>");
}

fn list<S: AsRef<str>>(out: &mut String, items: impl Iterator<Item = S>) {
    let items: Vec<String> = items
        .map(|i| format!("<li>{}</li>", h(i.as_ref())))
        .collect();
    if !items.is_empty() {
        let _ = write!(out, "<ul class=\"plain\">{}</ul>", items.concat());
    }
}

/// The four charts of a service, or why one is missing.
fn chart_grid(out: &mut String, svc: &ServiceReport) {
    out.push_str("<div class=\"charts\">");
    for name in charts::CHARTS {
        match charts::svg(name, svc) {
            Ok(svg) if svg.len() <= MAX_CHART_BYTES => {
                let _ = write!(
                    out,
                    "<figure class=\"chart\" data-chart=\"{name}\">{}</figure>",
                    strip_prolog(&svg)
                );
            }
            Ok(svg) => {
                let _ = write!(
                    out,
                    "<p class=\"muted\">The {name} chart is too large to include ({:.1} MB): \
                     <code>lvscheck fairness --charts DIR</code> writes it.</p>",
                    svg.len() as f64 / 1e6
                );
            }
            Err(e) => {
                let _ = write!(
                    out,
                    "<p class=\"muted\">The {name} chart could not be drawn: {}</p>",
                    h(&e.to_string())
                );
            }
        }
    }
    out.push_str("</div>");
}

/// The SVG element itself, without an XML declaration before it (none is written today; one
/// would be text in an HTML page).
fn strip_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}
