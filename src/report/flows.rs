//! Output of `flows`: the topology and the connection table for people (comfy-table), and JSON
//! Lines for programs (documented in docs/flows.md).

use crate::escape::{printable, terminal as esc};
use std::io::{self, Write};

use comfy_table::{Cell, CellAlignment, Table};
use serde::Serialize;

use super::style::{path_cell, words, Term};
use crate::checks::verdict::plural;
use crate::flows::clock::{ClockOffset, OffsetMethod};
use crate::flows::{Analysis, Connection, Leg};
use crate::time::rfc3339_ns;
use crate::topology::{Role, Service, VantageId};
use std::collections::HashMap;
use std::net::IpAddr;

/// Version of the JSON Lines records; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// A capture interface as people know it: the file name, and the interface when the file has
/// several; escaped for a terminal (both come from outside: the command line, the file).
pub fn vantage_label(a: &Analysis, v: VantageId) -> String {
    vantage_text(a, v, true)
}

/// [`vantage_label`] as the file and the capture give it, unescaped: for formats that escape
/// in their own way (a Zeek-style log) or need none (Parquet).
pub fn vantage_name(a: &Analysis, v: VantageId) -> String {
    vantage_text(a, v, false)
}

fn vantage_text(a: &Analysis, v: VantageId, terminal: bool) -> String {
    let Some(c) = a.captures.iter().find(|c| c.capture == v.capture) else {
        return v.to_string();
    };
    // The vantage points are sorted by id: a capture's are one run, found by bisection
    // rather than a count over all of them for every label.
    let vantages = &a.topology.vantages;
    let from = vantages.partition_point(|x| x.id.capture < v.capture);
    let several = vantages[from..]
        .iter()
        .take(2)
        .filter(|x| x.id.capture == v.capture)
        .count()
        > 1;
    let name = c
        .interfaces
        .iter()
        .find(|(i, _)| *i == v.interface)
        .map(|(_, n)| {
            if terminal {
                printable(n, 64)
            } else {
                n.clone()
            }
        });
    let file = if terminal {
        esc(&c.file)
    } else {
        std::borrow::Cow::Borrowed(c.file.as_str())
    };
    match (several, name) {
        (_, Some(n)) if several => format!("{file} ({n})"),
        (true, None) => format!("{file} (if {})", v.interface),
        _ => file.into_owned(),
    }
}

fn ms(ns: i64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

fn opt_ms(ns: Option<i64>) -> String {
    ns.map(ms).unwrap_or_else(|| "-".into())
}

fn role_letter(r: Role) -> char {
    match r {
        Role::Client => 'C',
        Role::Director => 'D',
        Role::RealServer => 'R',
        Role::Other => 'O',
    }
}

/// The whole report: topology, clocks, configuration, then the given connections.
/// The tables: captures, topology, ARP, clocks, configuration, then `connections` (those
/// selected, in order of start); the counts are of all connections.
///
/// `selected` counts every connection the filters selected: more than `connections` when the
/// table was cut to the earliest (`flows --limit`).
pub fn render(a: &Analysis, connections: &[&Connection], selected: u64, term: &Term) -> String {
    let mut out = String::new();
    out.push_str("Captures\n");
    let labels = Labels::new(a, term);
    let mut t = term.table();
    t.set_header(vec![
        "capture",
        "role",
        "decided by",
        "address",
        "MAC",
        "why",
    ]);
    for v in &a.topology.vantages {
        t.add_row(vec![
            labels.cell(v.id),
            Cell::new(words(&v.role.to_string())),
            Cell::new(v.decided_by),
            Cell::new(v.address.map_or("-".into(), |x| x.to_string())),
            Cell::new(v.local_mac.map_or("-".into(), |x| x.to_string())),
            Cell::new(esc(&v.reason)),
        ]);
    }
    term.fit(&mut t, &[0], &[1, 3, 4, 2]);
    out.push_str(&format!("{t}\n\n"));

    out.push_str("Topology\n");
    let mut t = term.table();
    t.set_header(vec!["what", "address", "detail"]);
    for v in &a.topology.vips {
        t.add_row(vec![
            Cell::new("VIP"),
            Cell::new(v.addr),
            Cell::new(format!("{}: {}", v.decided_by, esc(&v.reason))),
        ]);
    }
    // Totals per service and per real server in one pass over the counts: a pass per service
    // is quadratic with tens of thousands of services.
    let mut per_service: HashMap<&Service, u64> = HashMap::new();
    let mut per_rs: HashMap<IpAddr, u64> = HashMap::new();
    for ((svc, rs), outcomes) in &a.per_server {
        let n: u64 = outcomes.values().sum();
        *per_service.entry(svc).or_default() += n;
        if let Some(rs) = rs {
            *per_rs.entry(*rs).or_default() += n;
        }
    }
    for s in &a.topology.services {
        let n = per_service.get(s).copied().unwrap_or(0);
        t.add_row(vec![
            Cell::new("service"),
            Cell::new(s),
            Cell::new(plural(n as usize, "connection", "connections")),
        ]);
    }
    for d in &a.topology.directors {
        let macs: Vec<String> = d.macs.iter().map(|m| m.to_string()).collect();
        t.add_row(vec![
            Cell::new("director"),
            Cell::new(d.addr),
            Cell::new(format!("MAC {}", macs.join(", "))),
        ]);
    }
    for r in &a.topology.real_servers {
        let macs: Vec<String> = r.macs.iter().map(|m| m.to_string()).collect();
        let n = per_rs.get(&r.addr).copied().unwrap_or(0);
        t.add_row(vec![
            Cell::new("real server"),
            Cell::new(r.addr),
            Cell::new(format!(
                "MAC {}; {}",
                macs.join(", "),
                plural(n as usize, "connection", "connections")
            )),
        ]);
    }
    const SHOWN_CLIENTS: usize = 10;
    let n = a.topology.clients.len();
    if n > 0 {
        let mut list: Vec<String> = a
            .topology
            .clients
            .iter()
            .take(SHOWN_CLIENTS)
            .map(|c| c.to_string())
            .collect();
        if n > SHOWN_CLIENTS {
            list.push(format!("and {} more", n - SHOWN_CLIENTS));
        }
        t.add_row(vec![
            Cell::new("clients"),
            Cell::new(n),
            Cell::new(list.join(", ")),
        ]);
    }
    term.fit(&mut t, &[], &[0, 1]);
    out.push_str(&format!("{t}\n\n"));

    let vip_arp: Vec<_> = a.topology.arp.iter().filter(|o| o.about_vip).collect();
    if !vip_arp.is_empty() {
        out.push_str("ARP about the VIP\n");
        let mut t = term.table();
        t.set_header(vec!["capture", "what", "VIP is at", "count", "first frame"]);
        for o in vip_arp {
            t.add_row(vec![
                labels.cell(o.vantage),
                Cell::new(o.operation),
                Cell::new(format!("{} {}", o.sender_ip, o.sender_mac)),
                Cell::new(o.count).set_alignment(CellAlignment::Right),
                Cell::new(o.first.frame).set_alignment(CellAlignment::Right),
            ]);
        }
        term.fit(&mut t, &[0], &[2, 1, 3, 4]);
        out.push_str(&format!("{t}\n\n"));
    }

    out.push_str(&clocks(a, &labels, term));

    if let Some(table) = super::health::table(a, term) {
        out.push_str(&format!("{}\n{table}\n\n", super::health::TITLE));
    }

    if !a.config.is_empty() {
        out.push_str("Configuration against traffic\n");
        let mut t = term.table();
        t.set_header(vec!["finding", "detail"]);
        for f in &a.config {
            t.add_row(vec![Cell::new(words(f.kind)), Cell::new(esc(&f.message))]);
        }
        term.fit(&mut t, &[], &[0]);
        out.push_str(&format!("{t}\n\n"));
    }

    if selected > connections.len() as u64 {
        out.push_str(&format!(
            "Connections (the first {} by start of the {selected} selected, of {}; --limit N \
             shows more, --limit 0 all)\n",
            connections.len(),
            a.connection_count
        ));
    } else {
        out.push_str(&format!(
            "Connections ({} of {})\n",
            connections.len(),
            a.connection_count
        ));
    }
    if !connections.is_empty() {
        out.push_str(&format!(
            "{}\n",
            connection_table(a.first_ts_ns.unwrap_or(0), connections, term)
        ));
        out.push_str(
            "seen at: C client, D director, R real server, O other; times by the reference \
             clock\n\n",
        );
    }
    for l in &a.topology.limits {
        out.push_str(&format!("limit: {}\n", esc(l)));
    }
    for w in &a.warnings {
        out.push_str(&format!("warning: {}\n", esc(w)));
    }
    out
}

fn clocks(a: &Analysis, labels: &Labels, term: &Term) -> String {
    if a.clock_offsets.len() < 2 {
        return String::new();
    }
    let mut t = term.table();
    t.set_header(vec![
        "capture",
        "offset",
        "uncertainty",
        "how",
        "against",
        "packets",
    ]);
    for o in &a.clock_offsets {
        t.add_row(offset_row(labels, o));
    }
    term.fit(&mut t, &[0, 4], &[1, 2, 5]);
    let reference = a
        .clock_offsets
        .first()
        .map(|o| vantage_label(a, o.reference))
        .unwrap_or_default();
    format!("Clocks (offset = this capture's clock minus {reference}'s)\n{t}\n\n")
}

/// How an offset was measured, in words.
pub fn offset_method(m: OffsetMethod) -> &'static str {
    match m {
        OffsetMethod::Reference => "reference",
        OffsetMethod::TwoWay => "both directions",
        OffsetMethod::OneWay => "one direction (includes the one-way delay)",
        OffsetMethod::Unordered => "order on the path unknown",
        OffsetMethod::Unmatched => "no packet in common: unknown",
        OffsetMethod::SameClock => "same capture, same clock",
    }
}

fn offset_row(labels: &Labels, o: &ClockOffset) -> Vec<Cell> {
    let how = offset_method(o.method);
    vec![
        labels.cell(o.vantage),
        Cell::new(ms(o.offset_ns)).set_alignment(CellAlignment::Right),
        Cell::new(format!("± {}", ms(o.uncertainty_ns))).set_alignment(CellAlignment::Right),
        Cell::new(how),
        o.via.map_or(Cell::new("-"), |v| labels.cell(v)),
        Cell::new(o.samples).set_alignment(CellAlignment::Right),
    ]
}

/// The evidence kind in words: the name the JSON output gives it, its underscores spaces.
fn evidence_name(k: crate::flows::EvidenceKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(words))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// The colour of an outcome: a connection that failed as a failed check, one still open or
/// that no capture could judge as a skipped one.
fn outcome_status(o: crate::flows::Outcome) -> crate::checks::Status {
    use crate::checks::Status;
    use crate::flows::Outcome;
    match o {
        Outcome::Completed => Status::Pass,
        Outcome::Reset | Outcome::Refused | Outcome::Unanswered => Status::Fail,
        Outcome::InProgress | Outcome::Unknown => Status::Skip,
    }
}

/// The roles of the vantage points that saw a connection, one letter each (C, D, R, O).
pub(crate) fn seen_at(legs: &[Leg]) -> String {
    legs.iter().map(|l| role_letter(l.role)).collect()
}

/// `start`: when the first connection of all began (reference clock).
fn connection_table(start: i64, connections: &[&Connection], term: &Term) -> Table {
    let mut t = term.table();
    t.set_header(vec![
        "#",
        "start",
        "client",
        "VIP",
        "real server",
        "outcome",
        "history",
        "handshake",
        "1st response",
        "retr",
        "seen at",
        "notes",
    ]);
    for c in connections {
        let mut kinds: Vec<String> = c
            .evidence()
            .map(|e| evidence_name(e.kind))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if kinds.is_empty() && !c.unseen.is_empty() {
            kinds.push(format!("unseen: {}", esc(&c.unseen.join("; "))));
        }
        t.add_row(vec![
            Cell::new(c.id).set_alignment(CellAlignment::Right),
            Cell::new(format!("+{:.6} s", (c.first_ts_ns - start) as f64 / 1e9)),
            Cell::new(format!("{} {}", c.proto, c.client)),
            Cell::new(c.vip),
            Cell::new(match (c.real_server, c.reply_mac) {
                (Some(r), _) => r.to_string(),
                (None, Some(m)) => format!("? (replies from {m})"),
                (None, None) => "?".into(),
            }),
            term.cell_as(words(&c.outcome.to_string()), outcome_status(c.outcome)),
            Cell::new(&c.history),
            Cell::new(opt_ms(c.handshake_ns)).set_alignment(CellAlignment::Right),
            Cell::new(opt_ms(c.first_response_ns)).set_alignment(CellAlignment::Right),
            Cell::new(c.retransmissions).set_alignment(CellAlignment::Right),
            Cell::new(seen_at(&c.legs)),
            Cell::new(kinds.join(", ")),
        ]);
    }
    // What wraps: the history and the notes.
    term.fit(&mut t, &[], &[0, 2, 3, 4, 5, 1, 7, 8, 9, 10]);
    t
}

/// The capture names of an analysis's tables, each made once, and the width past which one is
/// broken after a `/` ([`Term::path_width`]).
struct Labels {
    names: HashMap<VantageId, String>,
    width: usize,
}

impl Labels {
    fn new(a: &Analysis, term: &Term) -> Labels {
        let names: HashMap<VantageId, String> = a
            .topology
            .vantages
            .iter()
            .map(|v| (v.id, vantage_label(a, v.id)))
            .collect();
        let width = term.path_width(names.values().map(String::as_str));
        Labels { names, width }
    }

    fn cell(&self, v: VantageId) -> Cell {
        match self.names.get(&v) {
            Some(name) => Cell::new(path_cell(name, self.width)),
            None => Cell::new(v.to_string()),
        }
    }
}

/// The first line: what is known before the first connection.
#[derive(Serialize)]
struct TopologyRecord<'a> {
    record: &'static str,
    schema_version: u32,
    captures: &'a [crate::flows::pipeline::CaptureName],
    topology: &'a crate::topology::Topology,
    clock_offsets: &'a [ClockOffset],
    /// Interfaces that held several hosts' packets, split into hops.
    mirrors: &'a [crate::flows::mirror::MirrorSplit],
    warnings: &'a [String],
}

/// The last line: what is known only once every connection has been seen.
#[derive(Serialize)]
struct SummaryRecord<'a> {
    record: &'static str,
    /// Connection records written (after the filters).
    connections: u64,
    /// Connections rebuilt, filtered or not.
    connections_total: u64,
    /// Connections waiting to be joined at once, at most.
    max_waiting: usize,
    /// The topology as it stands at the end: a tunl0 capture named after its real server.
    topology: &'a crate::topology::Topology,
    config: &'a [crate::topology::config::ConfigFinding],
    stats: &'a [crate::flows::pipeline::VantageStats],
    /// Packets about the deployment the model could not place ([`super::oddities`]).
    oddities: Vec<super::oddities::OddityDoc>,
    /// Health checks seen: the director's own connections to real servers' addresses.
    health_checks: &'a [crate::flows::probes::HealthChecks],
    warnings: &'a [String],
}

#[derive(Serialize)]
struct ConnectionRecord<'a> {
    record: &'static str,
    /// Start time as RFC 3339, by the reference clock.
    start: String,
    #[serde(flatten)]
    connection: &'a Connection,
}

/// JSON Lines written as the connections come: a `topology` record, one `connection` record
/// per connection, a `summary` record (docs/flows.md).
pub struct JsonLines<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out, written: 0 }
    }

    fn line(&mut self, record: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    /// The `topology` record, from what the analysis knows before the first connection.
    pub fn head(&mut self, a: &Analysis) -> io::Result<()> {
        self.line(&TopologyRecord {
            record: "topology",
            schema_version: SCHEMA_VERSION,
            captures: &a.captures,
            topology: &a.topology,
            clock_offsets: &a.clock_offsets,
            mirrors: &a.mirrors,
            warnings: &a.warnings,
        })
    }

    pub fn connection(&mut self, c: &Connection) -> io::Result<()> {
        self.written += 1;
        self.line(&ConnectionRecord {
            record: "connection",
            start: rfc3339_ns(c.first_ts_ns),
            connection: c,
        })
    }

    /// The `summary` record, from the finished analysis.
    pub fn tail(&mut self, a: &Analysis) -> io::Result<()> {
        self.line(&SummaryRecord {
            record: "summary",
            connections: self.written,
            connections_total: a.connection_count,
            max_waiting: a.max_waiting,
            topology: &a.topology,
            config: &a.config,
            stats: &a.stats,
            oddities: super::oddities::docs(a),
            health_checks: &a.health_checks,
            warnings: &a.warnings,
        })?;
        self.out.flush()
    }
}

/// A format that writes the connections as they come (`flows --format json|tsv|parquet`):
/// what is known before the first, each connection, what is known after the last.
pub trait ConnectionWriter {
    fn head(&mut self, a: &Analysis) -> io::Result<()>;
    fn connection(&mut self, c: &Connection) -> io::Result<()>;
    /// Finishes the output and flushes it.
    fn tail(&mut self, a: &Analysis) -> io::Result<()>;
}

impl<W: Write> ConnectionWriter for JsonLines<W> {
    fn head(&mut self, a: &Analysis) -> io::Result<()> {
        JsonLines::head(self, a)
    }
    fn connection(&mut self, c: &Connection) -> io::Result<()> {
        JsonLines::connection(self, c)
    }
    fn tail(&mut self, a: &Analysis) -> io::Result<()> {
        JsonLines::tail(self, a)
    }
}

/// JSON Lines of an analysis that kept its connections: these connections, in this order.
pub fn write_json_lines(
    a: &Analysis,
    connections: &[&Connection],
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut w = JsonLines::new(out);
    w.head(a)?;
    for c in connections {
        w.connection(c)?;
    }
    w.tail(a)
}
