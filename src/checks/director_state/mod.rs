//! `director.state`: the director's own tables (`--director-state`: `ipvsadm -Lnc` and
//! `ipvsadm -Ln --stats`, taken on it right after the captures) against the connections the
//! captures show.
//!
//! The table is compared connection by connection, keyed as the kernel keys it (protocol,
//! client address and port, VIP and port): an entry whose real server differs from the one
//! the captures show the connection going to is a contradiction (fail), since IPVS never
//! re-schedules a client port while its entry exists; entries the captures do not show are a
//! gap in what was verified (warn); connections the captures show and the table lacks prove
//! nothing, since entries expire (info). The counters are compared per service and real server
//! ([`counters`]). Persistence templates (client port 0) pin clients, not connections, and
//! are not compared.
//!
//! Like the other connection checks it sees each connection once and keeps, besides the
//! snapshot itself, one small record per table entry the captures show and a few examples.

mod counters;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::affected::FilterParts;
use super::classify::{Class, Forwarding};
use super::{Affected, CheckResult, Context, Explained, Finding, SnapshotLine, Status};
use super::{PacketRef, MAX_EVIDENCE};
use crate::flows::{ConnKey, Connection};
use crate::topology::director_state::{DirectorState, TableEntry};
use crate::topology::rules::Proto as TableProto;
use crate::topology::{FrameRef, Proto, Role};

pub const ID: &str = "director.state";

/// Why the check did not run when no snapshot was given.
pub const NOT_GIVEN: &str = "no snapshot of the director's tables to compare with: give \
                             --director-state (the output of ipvsadm -Lnc and ipvsadm -Ln --stats)";

/// The protocol of a table entry as the captures number it; `IP` (fwmark templates) has none.
pub fn proto_of(p: TableProto) -> Option<Proto> {
    match p {
        TableProto::Tcp => Some(Proto::TCP),
        TableProto::Udp => Some(Proto::UDP),
        TableProto::Sctp => Some(Proto(132)),
        TableProto::Ip => None,
    }
}

/// What a packet shown as evidence of where a connection went is.
#[derive(Debug, Clone, Copy)]
enum Via {
    LeftDirector,
    ArrivedAtServer,
}

/// The latest connection of a key the table holds, as the captures show it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first_ts_ns: i64,
    rs: Option<IpAddr>,
    went: Option<(FrameRef, Via)>,
    /// Some captured connection of this key went where an entry of the key says.
    agreed: bool,
}

/// `director.state`, fed one connection at a time.
pub struct DirectorCheck<'s> {
    state: &'s DirectorState,
    /// Indexes of the table's entries (templates left out) by connection key.
    by_key: HashMap<ConnKey, Vec<usize>>,
    seen: HashMap<ConnKey, Seen>,
    /// Connections the captures show passing through the director that the table lacks.
    lacking: Affected,
    /// Connections that passed (or may have passed) through the director: compared.
    compared: usize,
    /// Of those, the ones the captures show passing through it.
    through: usize,
    tally: counters::Tally,
}

impl<'s> DirectorCheck<'s> {
    pub fn new(state: &'s DirectorState) -> DirectorCheck<'s> {
        let mut by_key: HashMap<ConnKey, Vec<usize>> = HashMap::new();
        for (i, t) in state.table.iter().flatten().enumerate() {
            if let Some(key) = entry_key(t) {
                by_key.entry(key).or_default().push(i);
            }
        }
        DirectorCheck {
            state,
            by_key,
            seen: HashMap::new(),
            lacking: Affected::default(),
            compared: 0,
            through: 0,
            tally: counters::Tally::default(),
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        // A connection that bypassed the director never was in its table (`bypass` says so).
        if class.bypassed() {
            return;
        }
        let through = matches!(
            class.forwarding,
            Forwarding::Tunnel | Forwarding::Direct { .. } | Forwarding::LeftUnseen
        );
        self.compared += 1;
        self.through += usize::from(through);
        // Never forwarded: IPVS did not take it (no service matched), or its transmission
        // failed; counted as possibly the director's, like one no director capture shows.
        self.tally.add(conn, class.real_server, through);
        let key = conn.key();
        let Some(group) = self.by_key.get(&key) else {
            if through {
                self.lacking.add(conn, || {
                    arrival(ctx, conn).map(|f| {
                        ctx.packet(
                            &f,
                            "request arriving at the director, of a connection its table lacks",
                        )
                    })
                });
            }
            return;
        };
        let table = self.state.table.as_deref().unwrap_or_default();
        let agrees = class
            .real_server
            .is_some_and(|rs| group.iter().any(|&i| table[i].entry.rs.ip() == rs));
        let now = Seen {
            first_ts_ns: conn.first_ts_ns,
            rs: class.real_server,
            went: went(ctx, conn),
            agreed: agrees,
        };
        self.seen
            .entry(key)
            .and_modify(|s| {
                let agreed = s.agreed || agrees;
                if now.first_ts_ns >= s.first_ts_ns {
                    *s = now;
                }
                s.agreed = agreed;
            })
            .or_insert(now);
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let host = director_host(ctx, self.state);
        let mut findings = Vec::new();
        let mut said = Vec::new();
        let mut uncaptured: HashMap<(Proto, SocketAddr), Vec<&TableEntry>> = HashMap::new();
        if let Some(table) = &self.state.table {
            let sorted = sort_entries(table, &self.by_key, &self.seen);
            for e in &sorted.not_captured {
                if let Some(key) = entry_key(e) {
                    uncaptured.entry((key.proto, key.vip)).or_default().push(e);
                }
            }
            said.push(table_words(table.len(), &sorted));
            findings.extend(mismatch_finding(ctx, &host, &sorted.mismatched));
            findings.extend(not_captured_finding(ctx, &host, table, &sorted));
            findings.extend(lacking_finding(&host, self.lacking, self.through));
        }
        if let Some(stats) = &self.state.stats {
            let (words, found) = counters::compare(ctx, &host, &self.tally, stats, &uncaptured);
            said.push(words);
            findings.extend(found);
        }
        let pass = match self.compared {
            0 => format!(
                "the captures show no connection through the director, nor does its snapshot: \
                 {}",
                said.join("; ")
            ),
            n => format!(
                "the director's snapshot agrees with the {} the captures show: {}",
                super::verdict::plural(n, "connection", "connections"),
                said.join("; ")
            ),
        };
        let mut result = CheckResult::from_findings(ID, pass, findings);
        result.judged = Some(self.compared as u64);
        result
    }
}

/// The key of a table entry, for a connection (not a template) of a protocol the captures see.
fn entry_key(t: &TableEntry) -> Option<ConnKey> {
    let e = &t.entry;
    if e.is_template() {
        return None;
    }
    Some(ConnKey {
        proto: proto_of(e.proto)?,
        client: e.client,
        vip: e.vip,
    })
}

/// The table's entries, sorted by what the captures say about them.
struct Sorted<'t> {
    matched: usize,
    /// The captures show the connection but not where it went.
    server_unseen: usize,
    templates: usize,
    not_captured: Vec<&'t TableEntry>,
    /// Each with the latest captured connection of its key, which went elsewhere.
    mismatched: Vec<(&'t TableEntry, Seen)>,
}

fn sort_entries<'t>(
    table: &'t [TableEntry],
    by_key: &HashMap<ConnKey, Vec<usize>>,
    seen: &HashMap<ConnKey, Seen>,
) -> Sorted<'t> {
    let mut s = Sorted {
        matched: 0,
        server_unseen: 0,
        templates: 0,
        not_captured: Vec::new(),
        mismatched: Vec::new(),
    };
    for t in table {
        let Some(key) = entry_key(t) else {
            s.templates += usize::from(t.entry.is_template());
            continue;
        };
        match seen.get(&key) {
            None => s.not_captured.push(t),
            Some(c) if c.agreed => s.matched += 1,
            Some(c) => match c.rs {
                None => s.server_unseen += 1,
                // Another entry of the same key (a reused port) may be the one that agrees.
                Some(rs) if t.entry.rs.ip() == rs => s.matched += 1,
                Some(_) if by_key.get(&key).is_some_and(|g| g.len() > 1) => s.matched += 1,
                Some(_) => s.mismatched.push((t, *c)),
            },
        }
    }
    s
}

/// "its table holds 10 of them, each on the real server the captures show".
fn table_words(len: usize, s: &Sorted) -> String {
    if len == 0 {
        return "its table is empty".into();
    }
    let mut w = if s.server_unseen == 0 {
        format!(
            "its table holds {} of them, each on the real server the captures show",
            s.matched
        )
    } else {
        format!(
            "its table holds {} of them: {} on the real server the captures show, {} whose \
             real server the captures do not show",
            s.matched + s.server_unseen,
            s.matched,
            s.server_unseen
        )
    };
    if s.templates > 0 {
        w.push_str(&format!(
            " ({} not compared)",
            super::verdict::plural(s.templates, "persistence template", "persistence templates")
        ));
    }
    w
}

/// The host the findings are about: the director as the captures show it.
fn director_host(ctx: &Context, state: &DirectorState) -> String {
    match ctx.analysis.topology.directors.first() {
        Some(h) => ctx.host(h.addr),
        None => format!("the director whose snapshot is {}", state.files.join(", ")),
    }
}

/// The first packet of the connection at the director.
fn arrival(ctx: &Context, conn: &Connection) -> Option<FrameRef> {
    ctx.legs_at(conn, Role::Director)
        .find_map(|l| l.request.as_ref().map(|d| d.first))
}

/// A packet that shows where the connection went: its tunnelled copy leaving the director, or
/// the request arriving at the real server.
fn went(ctx: &Context, conn: &Connection) -> Option<(FrameRef, Via)> {
    let left = ctx
        .legs_at(conn, Role::Director)
        .find_map(|l| l.request_wrapped.as_ref())
        .map(|d| (d.first, Via::LeftDirector));
    left.or_else(|| {
        ctx.legs_at(conn, Role::RealServer)
            .find_map(|l| l.request_wrapped.as_ref().or(l.request.as_ref()))
            .map(|d| (d.first, Via::ArrivedAtServer))
    })
}

/// The snapshot lines of some entries, at most [`MAX_EVIDENCE`].
fn lines<'a>(entries: impl IntoIterator<Item = &'a TableEntry>) -> Vec<SnapshotLine> {
    entries
        .into_iter()
        .take(MAX_EVIDENCE)
        .map(|t| t.at.clone())
        .collect()
}

fn filter_of<'a>(entries: impl IntoIterator<Item = &'a TableEntry>) -> Option<String> {
    let mut f = FilterParts::default();
    for t in entries {
        if let Some(p) = proto_of(t.entry.proto) {
            f.add_client(p, t.entry.client);
        }
    }
    f.filter()
}

/// Fail: entries whose real server is not the one the captures show the connection going to.
fn mismatch_finding(
    ctx: &Context,
    host: &str,
    mismatched: &[(&TableEntry, Seen)],
) -> Option<Finding> {
    let (first, seen) = mismatched.first()?;
    let captured = seen.rs.map_or_else(String::new, |a| ctx.host(a));
    let e = &first.entry;
    let mut evidence: Vec<PacketRef> = Vec::new();
    for (t, s) in mismatched.iter().take(MAX_EVIDENCE) {
        if let (Some((frame, via)), Some(rs)) = (s.went, s.rs) {
            let what = match via {
                Via::LeftDirector => "left the director tunnelled to",
                Via::ArrivedAtServer => "arrived at",
            };
            evidence.push(ctx.packet(
                &frame,
                format!(
                    "{} -> {} {what} {rs}; the table says {}",
                    t.entry.client,
                    t.entry.vip,
                    t.entry.rs.ip()
                ),
            ));
        }
    }
    let n = mismatched.len();
    Some(Finding {
        check: ID,
        severity: Status::Fail,
        summary: format!(
            "the director's table and the captures disagree about where {} went: {} -> {} \
             went to {captured} in the captures, the table ({}:{}) says {}{}",
            super::verdict::plural(n, "connection", "connections"),
            e.client,
            e.vip,
            first.at.file,
            first.at.line,
            ctx.host(e.rs.ip()),
            if n > 1 { " (first of them)" } else { "" }
        ),
        host: Some(host.to_string()),
        count: n as u64,
        out_of: None,
        evidence,
        display_filter: filter_of(mismatched.iter().map(|(t, _)| *t)),
        snapshot: lines(mismatched.iter().map(|(t, _)| *t)),
        likely_cause: "IPVS keeps a client port on the real server its entry names for as long \
                       as the entry exists, so both cannot be right about one connection: the \
                       snapshot is of another director (a backup taking over, another cluster \
                       behind the same VIP, entries learnt from a sync daemon), of another time \
                       (the client reused its port after the entry expired, and the captures \
                       miss the newer connection), or the director sent packets elsewhere than \
                       its table says (a real server's address changed under it, or an edited \
                       table)"
            .into(),
        fix: format!(
            "on {host}: take ipvsadm -Lnc there, right after the captures end (entries expire: \
             TCP 2 min after close, UDP 5 min), and compare again; if it still disagrees, the \
             packets the captures show leaving it are not those of its own table: look for a \
             second director holding the VIP (ip addr, keepalived state) and at the real \
             servers' addresses (ipvsadm -Ln)"
        ),
    })
}

/// Warn: entries the captures do not show at all.
fn not_captured_finding(
    ctx: &Context,
    host: &str,
    table: &[TableEntry],
    s: &Sorted,
) -> Option<Finding> {
    let n = s.not_captured.len();
    if n == 0 {
        return None;
    }
    let clients = &ctx.analysis.topology.clients;
    let strangers = s
        .not_captured
        .iter()
        .filter(|t| !clients.contains(&t.entry.client.ip()))
        .count();
    let compared = table.len() - s.templates;
    let whose = match strangers {
        0 => String::new(),
        k if k == n => ", all from clients no capture shows".to_string(),
        k => format!(", {k} of them from clients no capture shows"),
    };
    Some(Finding {
        check: ID,
        severity: Status::Warn,
        summary: format!(
            "{n} of the {compared} connections in the director's table are not in the captures{whose}: \
             no check judged them"
        ),
        host: Some(host.to_string()),
        count: n as u64,
        out_of: Some(compared as u64),
        evidence: Vec::new(),
        display_filter: filter_of(s.not_captured.iter().copied()),
        snapshot: lines(s.not_captured.iter().copied()),
        likely_cause: "the captures started after these connections were made (an entry stays \
                       up to 15 min while established, 2 min after a TCP close, 5 min after a \
                       UDP packet: a snapshot holds connections from before the captures), a \
                       capture filter or an interface no capture watched kept them out, or \
                       they came from clients whose traffic no capture saw; whether they were \
                       tunnelled, delivered and answered is not verified"
            .into(),
        fix: format!(
            "start the captures on {host} (and the real servers) before the clients connect, \
             on every interface the clients' traffic arrives on and without a port filter \
             (tcpdump -i eth0 -s 0 'host VIP or proto 4 or arp'); take ipvsadm -Lnc right after \
             they stop"
        ),
    })
}

/// Info: connections the captures show through the director that its table lacks: entries
/// expire, and the snapshot carries no time, so this proves nothing.
fn lacking_finding(host: &str, lacking: Affected, through: usize) -> Option<Finding> {
    if lacking.is_empty() {
        return None;
    }
    let text = Explained {
        summary: format!(
            "{} connections the captures show passing through the director are not in its \
             table",
            super::of(lacking.len(), through)
        ),
        host: Some(host.to_string()),
        likely_cause: "their entries expired before the snapshot (10 s after a reset, 2 min \
                       after a TCP close, 5 min after a UDP packet, 1 min for an unanswered \
                       SYN), or the snapshot is of another director or time"
            .into(),
        fix: format!("take ipvsadm -Lnc on {host} right after the captures stop"),
    };
    Some(lacking.finding(ID, Status::Info, through, text))
}
