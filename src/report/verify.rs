//! The `verify` report: the checks table, the findings with their evidence, connections per real
//! server and the clock offsets; as text for a person or as one JSON document for scripts
//! (schema in docs/verify-json.md).

use std::collections::BTreeMap;
use std::net::IpAddr;

use comfy_table::{Cell, CellAlignment};
use serde::Serialize;

use super::style::{path_cell, words, Term};
use crate::checks::verdict::plural;
use crate::checks::{CheckResult, Status};
use crate::escape::terminal as esc;
use crate::flows::clock::OffsetMethod;
use crate::flows::{Analysis, Outcome};
use crate::time::time_of_day;
use crate::topology::{FrameRef, VantageId};
use crate::verify::Verification;

/// Version of the JSON document; bumped when a field changes meaning or goes away. 2: the
/// `verdict` (outcome, coverage) decides `exit_code`, and 3 (inconclusive) is an exit status.
pub const SCHEMA_VERSION: u32 = 2;

/// Connections of one service sent to one real server, by outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PerServer {
    pub service: String,
    /// None: the real server could not be identified from the captures given.
    pub real_server: Option<IpAddr>,
    pub connections: u64,
    pub outcomes: BTreeMap<String, u64>,
}

/// The rows of the per-server table, from the analysis's counts.
pub fn per_server(analysis: &Analysis) -> Vec<PerServer> {
    analysis
        .per_server
        .iter()
        .map(|((svc, rs), outcomes)| PerServer {
            service: svc.to_string(),
            real_server: *rs,
            connections: outcomes.values().sum(),
            outcomes: outcomes.iter().map(|(o, n)| (o.to_string(), *n)).collect(),
        })
        .collect()
}

/// The header of the per-server table.
pub const PER_SERVER_HEADER: [&str; 8] = [
    "service",
    "real server",
    "connections",
    "completed",
    "reset",
    "refused",
    "unanswered",
    "other",
];

/// The outcome columns of a per-server row: completed, reset, refused, unanswered, and the
/// other outcomes together.
pub fn outcome_columns(p: &PerServer) -> [u64; 5] {
    let get = |o: Outcome| p.outcomes.get(&o.to_string()).copied().unwrap_or(0);
    let named = [
        get(Outcome::Completed),
        get(Outcome::Reset),
        get(Outcome::Refused),
        get(Outcome::Unanswered),
    ];
    let [completed, reset, refused, unanswered] = named;
    let other = p.connections - named.iter().sum::<u64>();
    [completed, reset, refused, unanswered, other]
}

/// The worst status of all checks.
pub fn overall(checks: &[CheckResult]) -> Status {
    crate::checks::verdict::worst(checks)
}

/// The JSON document of `verify --json`.
#[derive(Serialize)]
pub struct VerifyDocument<'a> {
    pub schema_version: u32,
    pub tool: &'static str,
    pub version: &'static str,
    /// The worst status of the checks (what they say, before their coverage is weighed).
    pub status: Status,
    /// What the run concluded, what it required and what could not be checked.
    pub verdict: &'a crate::checks::verdict::Verdict,
    pub exit_code: i32,
    pub checks: &'a [CheckResult],
    pub captures: Vec<CaptureDoc<'a>>,
    pub topology: &'a crate::topology::Topology,
    pub per_real_server: Vec<PerServer>,
    /// Connections rebuilt.
    pub connections: u64,
    /// Per vantage point: legs, states held at once, TIME_WAIT stragglers (docs/flows.md).
    pub stats: &'a [crate::flows::pipeline::VantageStats],
    /// Connections waiting to be joined at once, at most.
    pub max_waiting: usize,
    /// Packets about the deployment the model could not place, one row per name
    /// ([`super::oddities`]).
    pub oddities: Vec<super::oddities::OddityDoc>,
    /// Health checks seen: the director's own connections to real servers' addresses.
    pub health_checks: &'a [crate::flows::probes::HealthChecks],
    pub clock_offsets: &'a [crate::flows::clock::ClockOffset],
    pub read_warnings: &'a [String],
    /// Per service: shares, fairness statistics and the scheduler replay (docs/fairness.md).
    pub fairness: &'a crate::fairness::FairnessReport,
}

#[derive(Serialize)]
pub struct CaptureDoc<'a> {
    pub capture: u32,
    pub file: &'a str,
    pub complete: bool,
    pub error: Option<&'a str>,
    /// Frames read (null when nothing could be read).
    pub frames: Option<u64>,
    /// Frames the snap length cut shorter than on the wire, headers intact or not.
    pub snaplen_truncated_frames: Option<u64>,
    /// Frames cut before the headers the checks read (the inner TCP/UDP header of a tunnelled
    /// packet): what `capture.snaplen` warns about.
    pub headers_cut_frames: u64,
    /// As the file describes them: snaplen, the longest cut frame (`cut_at`), capture filter,
    /// drop counters. Those that carried frames or drop counts, and the first few that did
    /// not ([`crate::capture::CaptureSummary::shown_interfaces`]).
    pub interfaces: Vec<&'a crate::capture::InterfaceInfo>,
    /// Interfaces without frames or drop counts left out of `interfaces`.
    pub empty_interfaces_omitted: u64,
    pub vantages: Vec<&'a crate::topology::Vantage>,
    /// Interfaces of this capture that held several hosts' packets, split into hops.
    pub mirrors: Vec<&'a crate::flows::mirror::MirrorSplit>,
}

pub fn document(v: &Verification, exit_code: i32) -> VerifyDocument<'_> {
    let (analysis, checks, fairness) = (&v.analysis, &v.checks[..], &v.fairness);
    VerifyDocument {
        schema_version: SCHEMA_VERSION,
        tool: "lvscheck",
        version: env!("CARGO_PKG_VERSION"),
        status: overall(checks),
        verdict: &v.verdict,
        exit_code,
        checks,
        captures: analysis
            .captures
            .iter()
            .map(|c| {
                let vantages: Vec<&crate::topology::Vantage> = analysis
                    .topology
                    .vantages
                    .iter()
                    .filter(|v| v.id.capture == c.capture)
                    .collect();
                let (shown, omitted) = c
                    .summary
                    .as_ref()
                    .map_or((Vec::new(), 0), |s| s.shown_interfaces());
                CaptureDoc {
                    capture: c.capture,
                    file: &c.file,
                    complete: c.complete,
                    error: c.error.as_deref(),
                    frames: c.summary.as_ref().map(|s| s.frames),
                    snaplen_truncated_frames: c
                        .summary
                        .as_ref()
                        .map(|s| s.snaplen_truncated_frames),
                    headers_cut_frames: vantages.iter().map(|v| v.packets.cut()).sum(),
                    interfaces: shown
                        .iter()
                        .filter_map(|&i| Some(&c.summary.as_ref()?.interfaces[i]))
                        .collect(),
                    empty_interfaces_omitted: omitted,
                    vantages,
                    mirrors: analysis
                        .mirrors
                        .iter()
                        .filter(|m| m.capture == c.capture)
                        .collect(),
                }
            })
            .collect(),
        topology: &analysis.topology,
        per_real_server: per_server(analysis),
        connections: analysis.connection_count,
        stats: &analysis.stats,
        max_waiting: analysis.max_waiting,
        oddities: super::oddities::docs(analysis),
        health_checks: &analysis.health_checks,
        clock_offsets: &analysis.clock_offsets,
        read_warnings: &analysis.warnings,
        fairness,
    }
}

/// The capture as people know it: the file, and the interface or hop when the file has several.
fn vantage_name(analysis: &Analysis, v: VantageId) -> String {
    super::flows::vantage_label(analysis, v)
}

/// The width `verify`'s tables fit when standard output is not a terminal and `COLUMNS` is not
/// set: what the report has always been laid out for.
pub const PIPE_WIDTH: u16 = 120;

/// The text report, laid out for `term`.
pub fn render(v: &Verification, term: &Term) -> String {
    let paint = term.painter();
    let (analysis, checks) = (&v.analysis, &v.checks[..]);
    let mut out = String::new();
    let verdict = &v.verdict;
    out.push_str(&format!(
        "lvscheck verify: {}, {}: {}\n{}\n\n",
        plural(analysis.captures.len(), "capture", "captures"),
        plural(
            analysis.connection_count as usize,
            "connection",
            "connections"
        ),
        paint.outcome(verdict.outcome),
        esc(&verdict.summary)
    ));

    let mut t = term.table();
    t.set_header(vec!["check", "status", "reason"]);
    for c in checks {
        t.add_row(vec![
            Cell::new(c.id),
            term.status_cell(c.status),
            Cell::new(esc(&c.reason)),
        ]);
    }
    term.fit(&mut t, &[], &[0, 1]);
    out.push_str(&t.to_string());
    out.push('\n');

    let findings: Vec<_> = checks
        .iter()
        .flat_map(|c| c.findings.iter())
        .filter(|f| f.severity >= Status::Warn)
        .collect();
    if !findings.is_empty() {
        out.push_str(&format!("\n{}\n", paint.bold("Findings")));
        for f in findings {
            out.push_str(&format!(
                "\n{} {}: {}\n",
                paint.status(f.severity),
                f.check,
                esc(&f.summary)
            ));
            if let Some(h) = &f.host {
                out.push_str(&format!("  host:     {}\n", esc(h)));
            }
            out.push_str(&format!("  cause:    {}\n", esc(&f.likely_cause)));
            out.push_str(&format!("  fix:      {}\n", esc(&f.fix)));
            if let Some(filter) = &f.display_filter {
                out.push_str(&format!("  filter:   {}\n", esc(filter)));
            }
            for p in &f.evidence {
                out.push_str(&format!(
                    "  evidence: {} frame {} at {}: {}\n",
                    esc(&p.file),
                    p.frame,
                    p.time,
                    esc(&p.summary)
                ));
            }
            for l in &f.snapshot {
                out.push_str(&format!(
                    "  snapshot: {}:{}: {}\n",
                    esc(&l.file),
                    l.line,
                    esc(&l.text)
                ));
            }
        }
    }

    if !verdict.not_run.is_empty() {
        out.push_str(&format!("\n{}\n", paint.bold("Not verified")));
        for n in &verdict.not_run {
            out.push_str(&format!(
                "\n{} {}: {}\n  needs:    {}\n",
                paint.status(Status::Skip),
                n.check,
                esc(&n.reason),
                esc(n.needs.as_str())
            ));
        }
    }

    let per = per_server(analysis);
    if !per.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            paint.bold("Connections per real server")
        ));
        let mut t = term.table();
        t.set_header(PER_SERVER_HEADER.to_vec());
        for p in per {
            let num = |n: u64| Cell::new(n).set_alignment(CellAlignment::Right);
            let mut row = vec![
                Cell::new(esc(&p.service)),
                Cell::new(
                    p.real_server
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "(not captured)".into()),
                ),
                num(p.connections),
            ];
            row.extend(outcome_columns(&p).into_iter().map(num));
            t.add_row(row);
        }
        term.fit(&mut t, &[], &[1, 0, 2, 3, 4, 5, 6, 7]);
        out.push_str(&t.to_string());
        out.push('\n');
    }

    out.push_str(&super::oddities::render(analysis, term));
    if let Some(table) = super::health::table(analysis, term) {
        let title = paint.bold(super::health::TITLE);
        out.push_str(&format!("\n{title}\n{table}\n"));
    }

    out.push_str(&format!("\n{}\n", paint.bold("Captures and clocks")));
    let mut t = term.table();
    t.set_header(vec!["capture", "role", "decided by", "clock offset", "why"]);
    // Each vantage point's offset found once, not by a scan of every offset per row.
    let mut offsets = std::collections::HashMap::new();
    for o in &analysis.clock_offsets {
        offsets.entry(o.vantage).or_insert(o);
    }
    let names: Vec<String> = analysis
        .topology
        .vantages
        .iter()
        .map(|v| vantage_name(analysis, v.id))
        .collect();
    let path_width = term.path_width(names.iter().map(String::as_str));
    for (v, name) in analysis.topology.vantages.iter().zip(&names) {
        let offset = offsets
            .get(&v.id)
            .map(|o| {
                if o.vantage == o.reference {
                    "reference".to_string()
                } else if o.method == OffsetMethod::SameClock {
                    format!(
                        "{:+.3} ms ± {:.3} ms ({})",
                        o.offset_ns as f64 / 1e6,
                        o.uncertainty_ns as f64 / 1e6,
                        super::flows::offset_method(o.method)
                    )
                } else {
                    format!(
                        "{:+.3} ms ± {:.3} ms ({}, {})",
                        o.offset_ns as f64 / 1e6,
                        o.uncertainty_ns as f64 / 1e6,
                        super::flows::offset_method(o.method),
                        crate::checks::verdict::plural(o.samples as usize, "packet", "packets")
                    )
                }
            })
            .unwrap_or_else(|| "-".into());
        t.add_row(vec![
            Cell::new(path_cell(name, path_width)),
            Cell::new(words(&v.role.to_string())),
            Cell::new(v.decided_by.to_string()),
            Cell::new(offset),
            Cell::new(esc(&v.reason)),
        ]);
    }
    term.fit(&mut t, &[0], &[1, 2]);
    out.push_str(&t.to_string());
    out.push('\n');
    control_section(&mut out, analysis, term, &paint);
    out
}

/// The directors' control traffic (`topology.control`): VRRP advertisements, IPVS sync
/// messages and gratuitous ARP as each capture saw them, when any capture holds them.
fn control_section(
    out: &mut String,
    analysis: &Analysis,
    term: &Term,
    paint: &super::style::Painter,
) {
    let topo = &analysis.topology;
    // The directors' own captures: what each sent and received (the same multicast is in
    // every capture of the segment).
    let shown = |vc: &&crate::topology::failover::VantageControl| {
        topo.role_of(vc.vantage) == crate::topology::Role::Director
            && (!vc.adverts.is_empty() || !vc.syncs.is_empty() || !vc.garps.is_empty())
    };
    if !topo.control.iter().any(|vc| shown(&vc)) {
        return;
    }
    out.push_str(&format!(
        "\n{}\n",
        paint.bold("Directors' VRRP, sync and gratuitous ARP")
    ));
    let mut t = term.table();
    t.set_header(vec!["capture", "seen", "from", "count", "first", "last"]);
    let time = |f: &FrameRef| format!("{} (frame {})", time_of_day(f.ts_ns), f.frame);
    let from = |a: std::net::IpAddr, m: Option<crate::topology::MacAddr>| match m {
        Some(m) => format!("{a} ({m})"),
        None => a.to_string(),
    };
    for vc in topo.control.iter().filter(shown) {
        let own = topo.vantage(vc.vantage).and_then(|v| v.local_mac);
        let way = |m: Option<crate::topology::MacAddr>| {
            if m.is_some() && m == own {
                "sent"
            } else {
                "received"
            }
        };
        let name = vantage_name(analysis, vc.vantage);
        for a in &vc.adverts {
            let what = format!(
                "{} VRRPv{} vrid {} priority {}{}",
                way(a.key.mac),
                a.key.version,
                a.key.vrid,
                a.key.priority,
                a.address.map(|x| format!(" for {x}")).unwrap_or_default()
            );
            t.add_row(vec![
                Cell::new(esc(&name)),
                Cell::new(what),
                Cell::new(from(a.key.router, a.key.mac)),
                Cell::new(a.span.count),
                Cell::new(time(&a.span.first)),
                Cell::new(time(&a.span.last)),
            ]);
        }
        for s in &vc.syncs {
            t.add_row(vec![
                Cell::new(esc(&name)),
                Cell::new(format!(
                    "{} IPVS sync syncid {} ({} carried)",
                    way(s.key.mac),
                    s.key.syncid,
                    crate::words::plural(s.conns, "entry", "entries")
                )),
                Cell::new(from(s.key.sender, s.key.mac)),
                Cell::new(s.span.count),
                Cell::new(time(&s.span.first)),
                Cell::new(time(&s.span.last)),
            ]);
        }
        for g in &vc.garps {
            t.add_row(vec![
                Cell::new(esc(&name)),
                Cell::new(format!("{} gratuitous ARP", way(Some(g.mac)))),
                Cell::new(from(g.addr, Some(g.mac))),
                Cell::new(g.span.count),
                Cell::new(time(&g.span.first)),
                Cell::new(time(&g.span.last)),
            ]);
        }
    }
    term.fit(&mut t, &[0], &[3]);
    out.push_str(&t.to_string());
    out.push('\n');
}
