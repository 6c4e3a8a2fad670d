//! Terminal output of the fairness stage: one block per service with the per-server table,
//! the fairness numbers, the conformance verdict with its evidence, and the drift table.
//! Times are seconds from the start of the capture (or of the service's first connection).

use super::style::Term;
use crate::checks::verdict::plural;
use crate::fairness::{FairnessReport, ServiceReport};
use comfy_table::{CellAlignment, Table};
use std::fmt::Write;

/// Prints the report to standard output, laid out for `term`.
pub fn print(report: &FairnessReport, term: &Term) {
    super::emit(&render_for(report, term));
}

/// The report as text for a file or a pipe (no colour, tables not wrapped); its last line is
/// the verdict (`Verdict: conforms at p = ...: ...`).
pub fn render(report: &FairnessReport) -> String {
    render_for(report, &Term::PLAIN)
}

/// The report as text laid out for `term`; its last line is the verdict.
pub fn render_for(report: &FairnessReport, term: &Term) -> String {
    let mut out = String::new();
    if report.services.is_empty() {
        out.push_str("No virtual service with connections was found.\n");
    }
    for (k, svc) in report.services.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        render_service(&mut out, svc, term);
        if report.services.len() > 1 {
            let _ = writeln!(out, "Verdict for this service: {}", svc.verdict.line());
        }
    }
    if !report.services.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} {}",
        term.painter().bold("Verdict:"),
        report.verdict.line()
    );
    out
}

fn right_align(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn origin(svc: &ServiceReport) -> i64 {
    svc.drift.windows.first().map_or(0, |w| w.start_ns)
}

fn secs(t: i64, origin: i64) -> String {
    format!("{:.3}", (t - origin) as f64 / 1e9)
}

/// The service's first line: `Service TCP 10.0.0.100:80 (scheduler wrr): 30 connections`.
pub fn service_heading(svc: &ServiceReport) -> String {
    let proto = format!("{:?}", svc.proto).to_uppercase();
    let sched = svc
        .scheduler
        .map_or("no configuration".to_string(), |s| format!("scheduler {s}"));
    let persist = svc
        .persistence_s
        .map_or(String::new(), |p| format!(", persistence {p} s"));
    format!(
        "Service {proto} {} ({sched}{persist}): {}",
        crate::fairness::input::service_label(svc.vip, svc.mark),
        plural(svc.connections as usize, "connection", "connections")
    )
}

/// The header of the per-server table.
pub const SERVER_HEADER: [&str; 10] = [
    "Real server",
    "Weight",
    "Conns",
    "Share",
    "Promised",
    "Pkts→RS",
    "Bytes→RS",
    "Pkts→client",
    "Bytes→client",
    "Resp ms p50/p90/p99",
];

/// One row of the per-server table, in [`SERVER_HEADER`]'s order.
pub fn server_row(s: &crate::fairness::ServerStats) -> Vec<String> {
    vec![
        s.addr.ip().to_string(),
        s.weight.map_or("not configured".into(), |w| w.to_string()),
        s.connections.to_string(),
        pct(s.share),
        s.expected_share.map_or("-".into(), pct),
        s.packets_to_server.to_string(),
        s.bytes_to_server.to_string(),
        s.packets_to_client.to_string(),
        s.bytes_to_client.to_string(),
        s.response_ms.as_ref().map_or("-".into(), |r| {
            format!("{:.1}/{:.1}/{:.1} (n={})", r.p50, r.p90, r.p99, r.count)
        }),
    ]
}

/// `Fairness: Jain index 1.000 (...), max/min 1.00, chi-square 0.00 (df 1), p = 1.000`.
pub fn fairness_line(svc: &ServiceReport) -> String {
    let f = &svc.fairness;
    let mut line = String::from("Fairness:");
    match f.jain {
        Some(j) => {
            let _ = write!(line, " Jain index {j:.3} (1 = load exactly as promised)");
        }
        None => line.push_str(" Jain index n/a"),
    }
    match f.max_min_ratio {
        Some(r) => {
            let _ = write!(line, ", max/min {r:.2}");
        }
        None => line.push_str(", max/min infinite or n/a"),
    }
    if let Some(c) = &f.chi_square {
        let p = if c.p_value < 0.001 {
            "p < 0.001".to_string()
        } else {
            format!("p = {:.3}", c.p_value)
        };
        let few = if c.too_few {
            " [too few connections]"
        } else {
            ""
        };
        let _ = write!(
            line,
            ", chi-square {:.2} (df {}), {p}{few}",
            c.statistic, c.df
        );
    }
    line
}

/// `Conformance (wrr): 30 of 30 scheduled decisions reproduced; overall 100.0%`, or `not
/// replayed`.
pub fn conformance_line(svc: &ServiceReport, c: &crate::fairness::Conformance) -> String {
    let rate = c
        .match_rate()
        .map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0));
    let persist = if c.persistent > 0 || svc.persistence_s.is_some() {
        format!(
            ", {} of {} assignments by a persistence template kept",
            c.persistent_matched, c.persistent
        )
    } else {
        String::new()
    };
    if c.replayed {
        format!(
            "Conformance ({}): {} of {} scheduled decisions reproduced{persist}; overall \
             {rate}",
            c.scheduler, c.matched, c.decisions
        )
    } else {
        format!("Conformance ({}): not replayed{persist}", c.scheduler)
    }
}

/// `Server list order: ...; how it was found`.
pub fn order_line(c: &crate::fairness::Conformance) -> String {
    let order: Vec<String> = c.order.iter().map(|a| a.ip().to_string()).collect();
    format!(
        "Server list order: {}; {}",
        order.join(", "),
        c.order_source
    )
}

/// The header of the mismatch table.
pub const MISMATCH_HEADER: [&str; 5] = ["t (s)", "Client", "Expected", "Observed", "Evidence"];

/// One row of the mismatch table, times from the service's start.
pub fn mismatch_row(svc: &ServiceReport, m: &crate::fairness::Mismatch) -> Vec<String> {
    vec![
        secs(m.time_ns, origin(svc)),
        m.client.to_string(),
        m.expected.map_or("none".into(), |a| a.ip().to_string()),
        m.observed.map_or("none".into(), |a| a.ip().to_string()),
        m.evidence.clone(),
    ]
}

/// The drift table (share per window), when there is more than one window: its title, header
/// and rows.
pub fn drift_table(svc: &ServiceReport) -> Option<(String, Vec<String>, Vec<Vec<String>>)> {
    if svc.drift.windows.len() <= 1 || svc.servers.is_empty() {
        return None;
    }
    let title = format!(
        "Share per {:.1} s window (drift):",
        svc.drift.window_ns as f64 / 1e9
    );
    let mut header = vec!["from t (s)".to_string(), "conns".to_string()];
    header.extend(svc.servers.iter().map(|s| s.addr.ip().to_string()));
    let o = origin(svc);
    let rows = svc
        .drift
        .windows
        .iter()
        .map(|w| {
            let total: u64 = w.counts.iter().sum();
            let mut row = vec![secs(w.start_ns, o), total.to_string()];
            row.extend(w.counts.iter().map(|&c| {
                if total == 0 {
                    "-".to_string()
                } else {
                    pct(c as f64 / total as f64)
                }
            }));
            row
        })
        .collect();
    Some((title, header, rows))
}

/// `Largest drift: ...`, when a window strayed.
pub fn largest_drift_line(svc: &ServiceReport) -> Option<String> {
    let d = svc.drift.largest.as_ref()?;
    let o = origin(svc);
    let from = svc.drift.windows.get(d.window).map_or(o, |w| w.start_ns);
    Some(format!(
        "Largest drift: {} took {} of the {} connections from t = {} s (promised {})",
        svc.servers
            .get(d.server)
            .map_or("?".into(), |s| s.addr.ip().to_string()),
        pct(d.share),
        d.connections,
        secs(from, o),
        pct(d.promised)
    ))
}

fn render_service(out: &mut String, svc: &ServiceReport, term: &Term) {
    let _ = writeln!(out, "{}", service_heading(svc));

    let mut t = term.table();
    t.set_header(SERVER_HEADER.to_vec());
    for s in &svc.servers {
        t.add_row(server_row(s));
    }
    right_align(&mut t, 1);
    term.fit(&mut t, &[], &[0, 1, 2, 3, 4]);
    let _ = writeln!(out, "{t}");

    let _ = writeln!(out, "{}", fairness_line(svc));
    for n in &svc.fairness.notes {
        let _ = writeln!(out, "  - {n}");
    }

    if let Some(c) = &svc.conformance {
        let _ = writeln!(out, "{}", conformance_line(svc, c));
        let _ = writeln!(out, "  {}", order_line(c));
        for u in &c.not_predicted {
            let _ = writeln!(out, "  Not checked: {} x {}", u.count, u.reason);
        }
        if !c.first_mismatches.is_empty() {
            let _ = writeln!(
                out,
                "  {}; the first {}:",
                plural(c.mismatches as usize, "mismatch", "mismatches"),
                c.first_mismatches.len()
            );
            let mut t = term.table();
            t.set_header(MISMATCH_HEADER.to_vec());
            for m in &c.first_mismatches {
                t.add_row(mismatch_row(svc, m));
            }
            term.fit(&mut t, &[], &[1, 2, 3, 0]);
            let _ = writeln!(out, "{t}");
        }
        for l in &c.limitations {
            let _ = writeln!(out, "  - {l}");
        }
    }

    if let Some((title, header, rows)) = drift_table(svc) {
        let _ = writeln!(out, "{title}");
        let mut t = term.table();
        t.set_header(header);
        for row in rows {
            t.add_row(row);
        }
        right_align(&mut t, 0);
        term.fit(&mut t, &[], &[0, 1]);
        let _ = writeln!(out, "{t}");
    }
    if let Some(line) = largest_drift_line(svc) {
        let _ = writeln!(out, "{line}");
    }
    for n in &svc.notes {
        let _ = writeln!(out, "Note: {n}");
    }
}
