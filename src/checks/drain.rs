//! `drain`: no new connection reaches a server the rules give weight 0 (quiesced) or no longer
//! list, other than by what draining keeps on purpose.
//!
//! What the kernel does with a new connection (`ip_vs_in` in ip_vs_core.c, 6.1): a SYN whose
//! client address and port match a live entry follows that entry unless the entry is in
//! TIME_WAIT or CLOSE (`is_new_conn_expected`, conn_reuse_mode 1; FIN_WAIT too, for a director
//! that sees no replies, with bit 2), is controlled by no template, or its server has weight 0
//! while `expire_nodest_conn` is 1. On a persistent service a live template for the client
//! sends it to the template's server without asking the scheduler, and a template to a
//! weight-0 server is only dropped with `expire_quiescent_template` (`ip_vs_check_template` in
//! ip_vs_conn.c). No scheduler ever picks a weight-0 server (ip_vs_rr.c and the others skip
//! it). So a new connection to a drained server is one of three: *persisted*, *reused* or
//! *scheduled*, and a scheduled one proves the weight was still above 0 at that moment.
//!
//! The rules are read after the captures, so the captures do not say when the weight became 0.
//! What they do say: the last connection the scheduler gave the server (its weight was not 0
//! then), and, for rr and wrr, the moment the scheduler had passed the server over for longer
//! than one round of the other servers allows. New connections that followed a template or a
//! reused entry to the server after that moment are a failure; after its last scheduled one
//! only, a warning. Connections that merely continue there are what draining is for.
//!
//! The replay of the scheduler (`fairness::replay`) already works out how the kernel placed each
//! connection; it sits above the checks, so it hands that down as plain data
//! ([`ServicePlacements`]) and this check keeps, from the connections it sees, only what the
//! evidence needs of those that went to a drained server.

use std::net::{IpAddr, SocketAddr};

use super::classify::{Class, Forwarding};
use super::{CheckResult, Context, FilterParts, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::Connection;
use crate::time::rfc3339_ns;
use crate::topology::{FrameRef, Proto, Role};

pub const ID: &str = "drain";

/// How the director placed one new connection, as the scheduler replay works it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The scheduler chose the server.
    Scheduled,
    /// A persistence template, made when the scheduler placed `by`, chose it.
    Persisted { since_ns: i64, by: Earlier },
    /// The client's address and port matched the live entry of `earlier` (in `state`, as
    /// `ipvsadm -Lnc` names it), which sent it where that one went.
    Reused {
        state: &'static str,
        earlier: Earlier,
    },
    /// Running when the capture began: no decision seen.
    BeforeCapture,
}

/// An earlier connection a placement followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earlier {
    pub client: SocketAddr,
    pub created_ns: i64,
    /// The director's first packet of it.
    pub frame: Option<FrameRef>,
}

/// One new connection of a service, as the director placed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub client: SocketAddr,
    /// When its entry was created (the director's SYN), on the reference clock.
    pub created_ns: i64,
    pub server: Option<IpAddr>,
    pub how: How,
    /// The director's first packet of it.
    pub frame: Option<FrameRef>,
}

/// A service of the rules with a server of weight 0, or with connections to a server the rules
/// do not list: its configuration and every new connection, in the order the director created
/// their entries.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlacements {
    /// How reports name the service (`10.7.0.100:80`, `fwmark 1 (10.7.0.100)`).
    pub name: String,
    pub udp: bool,
    /// `rr`, `wrr`, ...
    pub scheduler: &'static str,
    pub persistence_s: Option<u32>,
    /// The servers of the rules and their weights.
    pub servers: Vec<(SocketAddr, u32)>,
    pub placements: Vec<Placement>,
}

/// What the evidence needs of a connection to a server out of the rotation.
struct Row {
    client: SocketAddr,
    /// The director's first packet of it: how a placement finds its row.
    first: FrameRef,
    /// Its tunnelled copy, as the director sent it or the server received it.
    wrapped: Option<FrameRef>,
    tunnel: bool,
    last_ns: i64,
}

/// `drain`, fed one connection at a time: keeps a row for each connection to a server of
/// weight 0 in the rules, or one they do not list (few, on any deployment worth checking).
#[derive(Default)]
pub struct Drain {
    rows: Vec<Row>,
}

impl Drain {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let Some(rs) = class.real_server else {
            return;
        };
        if !out_of_rotation(ctx, conn, rs) {
            return;
        }
        let Some(first) = ctx
            .legs_at(conn, Role::Director)
            .find_map(|l| l.request.as_ref())
            .map(|r| r.first)
        else {
            return;
        };
        let wrapped = ctx
            .legs_at(conn, Role::Director)
            .chain(ctx.legs_at(conn, Role::RealServer))
            .find_map(|l| l.request_wrapped.as_ref())
            .map(|w| w.first);
        self.rows.push(Row {
            client: conn.client,
            first,
            wrapped,
            tunnel: class.forwarding == Forwarding::Tunnel,
            last_ns: conn.last_ts_ns,
        });
    }

    /// The result, with `services` the placements the scheduler replay worked out for the
    /// services that have a server out of the rotation.
    pub fn finish(mut self, ctx: &Context, services: &[ServicePlacements]) -> CheckResult {
        if ctx.analysis.expected.is_empty() {
            return CheckResult::skip(
                ID,
                "needs the director's rules (--rules) to know which servers are drained",
            );
        }
        self.rows
            .sort_by_key(|r| (r.client, r.first.capture, r.first.frame));
        let mut findings = Vec::new();
        let mut judged = 0;
        let mut quiet = Vec::new();
        for svc in services {
            judged += svc.placements.len();
            for out in servers_out(svc) {
                let j = judge(svc, out);
                if j.sticky.is_empty() {
                    quiet.push(self.quiet_text(ctx, svc, &j));
                    continue;
                }
                for group in [Group::Persisted, Group::Reused] {
                    if let Some(f) = self.finding(ctx, svc, &j, group) {
                        findings.push(f);
                    }
                }
            }
        }
        if findings.is_empty() && quiet.is_empty() {
            return CheckResult::skip(
                ID,
                "no server has weight 0 in the rules, and no server outside them received \
                 connections",
            );
        }
        let mut result = CheckResult::from_findings(ID, quiet.join("; "), findings);
        result.judged = Some(judged as u64);
        result
    }

    fn row(&self, client: SocketAddr, first: Option<FrameRef>) -> Option<&Row> {
        let f = first?;
        let key = (client, f.capture, f.frame);
        self.rows
            .binary_search_by_key(&key, |r| (r.client, r.first.capture, r.first.frame))
            .ok()
            .map(|i| &self.rows[i])
    }

    /// The pass text for a drained server no new connection reached after its last scheduled
    /// one: when that was, and how many connections continued there.
    /// The connections the scheduler (or a time before the captures) gave the server that
    /// were still running once the captures prove its weight 0, else after its last choice;
    /// and that moment.
    fn continuing(&self, svc: &ServicePlacements, j: &Judged) -> (usize, Option<i64>) {
        let running_since = j.passed_over.map(|p| p.0).or(j.last_scheduled_ns);
        let n = svc
            .placements
            .iter()
            .filter(|p| p.server == Some(j.server))
            .filter(|p| matches!(p.how, How::Scheduled | How::BeforeCapture))
            .filter(|p| {
                self.row(p.client, p.frame)
                    .is_some_and(|r| running_since.is_none_or(|t| r.last_ns > t))
            })
            .count();
        (n, running_since)
    }

    fn quiet_text(&self, ctx: &Context, svc: &ServicePlacements, j: &Judged) -> String {
        let (continuing, running_since) = self.continuing(svc, j);
        let last = match j.last_scheduled_ns {
            Some(t) => format!(
                "its last connection from the scheduler at {}",
                rfc3339_ns(t)
            ),
            None => "no connection from the scheduler in the captures".into(),
        };
        let released = match (j.released, j.passed_over) {
            (0, _) | (_, None) => "no new connection after it".to_string(),
            (n, Some((t, _))) => format!(
                "{} through a template or a reused entry before {} (the captures prove its \
                 weight 0 from then on), whose clients the director placed elsewhere after",
                crate::words::plural(n as u64, "new connection", "new connections"),
                rfc3339_ns(t)
            ),
        };
        let since = running_since.map_or(String::new(), |t| format!(" after {}", rfc3339_ns(t)));
        format!(
            "{}: {} ({}) got {last}, then {released}; {} continued there{since} (draining \
             lets them finish)",
            svc.name,
            ctx.host(j.server),
            j.why_out(),
            crate::words::plural(continuing as u64, "connection", "connections")
        )
    }

    fn finding(
        &self,
        ctx: &Context,
        svc: &ServicePlacements,
        j: &Judged,
        group: Group,
    ) -> Option<Finding> {
        let sticky: Vec<&Placement> = j
            .sticky
            .iter()
            .filter(|(_, g)| *g == group)
            .map(|(p, _)| p)
            .collect();
        let first = *sticky.first()?;
        let proven = |p: &Placement| j.passed_over.is_some_and(|(t, _)| p.created_ns >= t);
        let after_proof = sticky.iter().filter(|p| proven(p)).count();
        let severity = if after_proof > 0 {
            Status::Fail
        } else {
            Status::Warn
        };
        let host = ctx.host(j.server);
        let total = j.new_after;
        let when = match (j.passed_over, severity) {
            (Some((t, n)), Status::Fail) => format!(
                "after the scheduler had passed it over ({n} new connections in a row went to \
                 the other servers by {}, more than one {} round allows)",
                rfc3339_ns(t),
                svc.scheduler
            ),
            _ => format!(
                "after {}; the captures do not show when its weight became 0 (the rules were \
                 read after them){}",
                match j.last_scheduled_ns {
                    Some(t) =>
                        format!("its last connection from the scheduler ({})", rfc3339_ns(t)),
                    None => "the capture began, with no connection from the scheduler to it".into(),
                },
                if matches!(svc.scheduler, "rr" | "wrr") {
                    ", and the scheduler's later choices do not prove it was passed over"
                } else {
                    ""
                }
            ),
        };
        let counted = if severity == Status::Fail {
            format!("{after_proof} new connections")
        } else {
            crate::words::plural(sticky.len() as u64, "new connection", "new connections")
        };
        let continuing = match self.continuing(svc, j).0 {
            0 => String::new(),
            n => format!(
                "; {} that merely continued there {} not counted",
                crate::words::plural(n as u64, "connection", "connections"),
                crate::words::noun(n, "is", "are"),
            ),
        };
        let summary = format!(
            "{counted} of {svc_name} reached {host} ({why}) {by} {when}{continuing}",
            svc_name = svc.name,
            why = j.why_out(),
            by = group.by(),
        );
        let mut evidence: Vec<PacketRef> = Vec::new();
        if severity == Status::Fail {
            if let Some((_, n)) = j.passed_over {
                if let Some(f) = j.proof_frame {
                    evidence.push(ctx.packet(
                        &f,
                        format!(
                            "new connection the scheduler gave another server, the {} in a \
                             row: {} would have had its turn by then",
                            ordinal(n),
                            j.server
                        ),
                    ));
                }
            }
        }
        let shown: Vec<&&Placement> = match severity {
            Status::Fail => sticky.iter().filter(|p| proven(p)).collect(),
            _ => sticky.iter().collect(),
        };
        let mut filter = FilterParts::default();
        let proto = if svc.udp { Proto::UDP } else { Proto::TCP };
        for p in &shown {
            filter.add_client(proto, p.client);
        }
        for p in shown.iter().take(2) {
            if let Some(f) = p.frame {
                evidence.push(ctx.packet(
                    &f,
                    format!("new connection from {} to {}", p.client, svc.name),
                ));
            }
            if let Some(w) = self.row(p.client, p.frame).and_then(|r| r.wrapped) {
                evidence.push(ctx.packet(
                    &w,
                    format!("its tunnelled copy to {} ({})", j.server, j.why_out()),
                ));
            }
            let (Some(earlier), what) = (match p.how {
                How::Persisted { by, .. } => (Some(by), "made the persistence template"),
                How::Reused { earlier, .. } => (Some(earlier), "left the entry it reused"),
                _ => (None, ""),
            }) else {
                continue;
            };
            if let Some(f) = earlier.frame {
                evidence.push(ctx.packet(
                    &f,
                    format!("earlier connection from {} that {what}", earlier.client),
                ));
                filter.add_client(proto, earlier.client);
            }
        }
        evidence.truncate(MAX_EVIDENCE);
        let untunnelled = sticky
            .iter()
            .filter(|p| self.row(p.client, p.frame).is_some_and(|r| !r.tunnel))
            .count();
        let (likely_cause, fix) = group.explain(svc, j, &host, first);
        let likely_cause = if untunnelled > 0 {
            format!(
                "{likely_cause} ({untunnelled} of them left the director without a tunnel: see \
                 tunnel.encapsulation)"
            )
        } else {
            likely_cause
        };
        Some(Finding {
            check: ID,
            severity,
            summary,
            host: Some(host),
            count: if severity == Status::Fail {
                after_proof as u64
            } else {
                sticky.len() as u64
            },
            out_of: Some(total as u64),
            evidence,
            display_filter: filter.filter(),
            snapshot: Vec::new(),
            likely_cause,
            fix,
        })
    }
}

/// Whether the rules take `rs` out of the rotation of `conn`'s service: weight 0, or not
/// listed while the service is.
fn out_of_rotation(ctx: &Context, conn: &Connection, rs: IpAddr) -> bool {
    let mut listed = false;
    for e in &ctx.analysis.expected {
        let same = e.service.vip == conn.vip.ip()
            && e.service.proto == conn.proto
            && (e.service.port == conn.vip.port() || e.mark.is_some());
        if !same {
            continue;
        }
        listed = true;
        if let Some(r) = e.real_servers.iter().find(|r| r.addr == rs) {
            return r.weight == Some(0);
        }
    }
    listed
}

/// The servers of a service out of the rotation: weight 0 in the rules, then those outside
/// the rules that received connections.
fn servers_out(svc: &ServicePlacements) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = svc
        .servers
        .iter()
        .filter(|(_, w)| *w == 0)
        .map(|(a, _)| a.ip())
        .collect();
    let mut removed: Vec<IpAddr> = svc
        .placements
        .iter()
        .filter_map(|p| p.server)
        .filter(|s| !svc.servers.iter().any(|(a, _)| a.ip() == *s))
        .collect();
    removed.sort();
    removed.dedup();
    out.extend(removed);
    out.dedup();
    out
}

/// Why a server is out of the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Quiesced,
    Removed,
}

/// One drained server of a service, judged.
struct Judged {
    server: IpAddr,
    out: Out,
    /// Its last connection from the scheduler (its weight was above 0 then).
    last_scheduled_ns: Option<i64>,
    /// When the scheduler had passed it over for longer than one round allows (rr, wrr), and
    /// how many decisions in a row that took.
    passed_over: Option<(i64, usize)>,
    proof_frame: Option<FrameRef>,
    /// New connections to it after its last scheduled one, by template or reused entry.
    sticky: Vec<(Placement, Group)>,
    /// Of those, before `passed_over`: the clients (or client ports) the director placed
    /// elsewhere after it, as the kernel does once the template or entry is dropped.
    released: usize,
    /// New connections of the service after that moment.
    new_after: usize,
}

impl Judged {
    fn why_out(&self) -> &'static str {
        match self.out {
            Out::Quiesced => "weight 0 in the rules",
            Out::Removed => "not in the rules",
        }
    }
}

fn judge(svc: &ServicePlacements, server: IpAddr) -> Judged {
    let out = if svc.servers.iter().any(|(a, _)| a.ip() == server) {
        Out::Quiesced
    } else {
        Out::Removed
    };
    let round = round_of_others(svc, server);
    let persistent = svc.persistence_s.is_some();
    // Walk the decisions in order: each connection the scheduler gives `server` restarts the
    // count of choices that passed it over; once that count is more than a round allows, the
    // weight was 0. On a persistent service a "scheduled" connection to it after that is a
    // template made before the capture (the replay cannot know those), not a choice.
    let mut last_scheduled_ns = None;
    let mut run = 0;
    let mut passed: Option<(i64, usize, Option<FrameRef>)> = None;
    let mut sticky: Vec<(Placement, Group)> = Vec::new();
    let mut new_after = 0;
    for p in &svc.placements {
        new_after += 1;
        let to_server = p.server == Some(server);
        match p.how {
            How::Scheduled if to_server && persistent && passed.is_some() => {
                sticky.push((*p, Group::Persisted));
            }
            How::Scheduled if to_server => {
                last_scheduled_ns = Some(p.created_ns);
                run = 0;
                passed = None;
                sticky.clear();
                new_after = 0;
            }
            How::Scheduled if p.server.is_some() => {
                run += 1;
                if round.is_some_and(|r| run == r + 1) {
                    passed = Some((p.created_ns, run, p.frame));
                }
            }
            how if to_server => {
                if let Some(g) = Group::of(how) {
                    sticky.push((*p, g));
                }
            }
            _ => {}
        }
    }
    // Sticky connections before the proof whose client the director placed elsewhere after
    // it were let go (the template or entry dropped): the drain took effect in the captures.
    let mut released = 0;
    if let Some((proof, _, _)) = passed {
        let placed_elsewhere_after = |p: &Placement, g: Group| {
            svc.placements.iter().any(|q| {
                q.created_ns >= proof
                    && q.server.is_some_and(|s| s != server)
                    && match g {
                        Group::Persisted => q.client.ip() == p.client.ip(),
                        Group::Reused => q.client == p.client,
                    }
            })
        };
        let before = sticky.len();
        sticky.retain(|(p, g)| p.created_ns >= proof || !placed_elsewhere_after(p, *g));
        released = before - sticky.len();
    }
    Judged {
        server,
        out,
        released,
        last_scheduled_ns,
        passed_over: passed.map(|(t, n, _)| (t, n)),
        proof_frame: passed.and_then(|(_, _, f)| f),
        new_after,
        sticky,
    }
}

/// How many choices in a row the scheduler can give the other servers before `server`'s turn
/// comes, if its weight is above 0: rr gives every other server one turn, wrr each its weight
/// (an upper bound whatever the gcd and `server`'s old weight). Servers seen outside the rules
/// may have been in the rotation then, so they count too; for wrr their weight is unknown, as
/// is that of another weight-0 server: no bound. Other schedulers choose by load or hash: no
/// count of choices proves that a server was passed over.
fn round_of_others(svc: &ServicePlacements, server: IpAddr) -> Option<usize> {
    let mut removed: Vec<IpAddr> = svc
        .placements
        .iter()
        .filter_map(|p| p.server)
        .filter(|s| *s != server && !svc.servers.iter().any(|(a, _)| a.ip() == *s))
        .collect();
    removed.sort();
    removed.dedup();
    let others = || svc.servers.iter().filter(|(a, _)| a.ip() != server);
    match svc.scheduler {
        "rr" => Some(others().count() + removed.len()),
        "wrr" if removed.is_empty() && others().all(|(_, w)| *w > 0) => {
            Some(others().map(|(_, w)| *w as usize).sum())
        }
        _ => None,
    }
}

/// What sent a new connection to a drained server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Persisted,
    Reused,
}

impl Group {
    fn of(how: How) -> Option<Group> {
        match how {
            How::Persisted { .. } => Some(Group::Persisted),
            How::Reused { .. } => Some(Group::Reused),
            _ => None,
        }
    }

    fn by(self) -> &'static str {
        match self {
            Group::Persisted => "through persistence templates",
            Group::Reused => "through the entries of reused client ports",
        }
    }

    /// The likely cause and the fix, in the director's terms.
    fn explain(
        self,
        svc: &ServicePlacements,
        j: &Judged,
        host: &str,
        first: &Placement,
    ) -> (String, String) {
        let p = svc.persistence_s.unwrap_or(300);
        match (self, j.out) {
            (Group::Persisted, Out::Quiesced) => {
                let since = match first.how {
                    How::Persisted { since_ns, by } => format!(
                        " (the first: {}'s template, made by its connection from port {} at {})",
                        first.client.ip(),
                        by.client.port(),
                        rfc3339_ns(since_ns)
                    ),
                    _ => String::new(),
                };
                (
                    format!(
                        "persistence (-p {p}): each client's template (`ipvsadm -Lnc` shows it \
                         with client port 0) still points at {host}{since}, and the kernel \
                         keeps a template to a weight-0 server while \
                         net.ipv4.vs.expire_quiescent_template is 0, the default: it lives as \
                         long as the client comes back within {p} s (60 s more while \
                         connections it controls are alive)"
                    ),
                    format!(
                        "on the director: sysctl -w net.ipv4.vs.expire_quiescent_template=1 (a \
                         template to a weight-0 server is then dropped at its next use and the \
                         client is scheduled afresh); or wait out the persistence timeout ({p} \
                         s after each client's last connection) before taking the server down, \
                         or lower it (ipvsadm -E {} -s {} -p N)",
                        service_flag(svc),
                        svc.scheduler
                    ),
                )
            }
            (Group::Persisted, Out::Removed) => (
                format!(
                    "persistence (-p {p}): templates made while {host} was in the rules still \
                     sent clients there; the kernel drops a template whose server is gone at \
                     its next use, so these connections came before the removal reached this \
                     director, or the rules given are not the ones it ran"
                ),
                format!(
                    "on the director: compare `ipvsadm -Lnc` (templates show client port 0) \
                     with the rules; set the weight to 0 and wait out the persistence timeout \
                     ({p} s) before removing a server, with sysctl -w \
                     net.ipv4.vs.expire_quiescent_template=1"
                ),
            ),
            (Group::Reused, _) => {
                let state = match first.how {
                    How::Reused { state, .. } => state,
                    _ => "FIN_WAIT",
                };
                (
                    format!(
                        "port reuse: clients opened new connections from the address and port \
                         of earlier ones whose entries the director still held (the first in \
                         {state}), and a SYN on a live entry follows it to its server: IPVS \
                         reschedules it only when the entry is in TIME_WAIT or CLOSE \
                         (net.ipv4.vs.conn_reuse_mode=1, the default), in FIN_WAIT too with \
                         bit 2 (a tunnel director sees no replies, so its entries wait in \
                         FIN_WAIT for 2 min), or in any state when the server's weight is 0 and \
                         net.ipv4.vs.expire_nodest_conn=1 (kernels before 5.9 ignored that \
                         when conn_reuse_mode was 0)"
                    ),
                    "on the director: sysctl -w net.ipv4.vs.expire_nodest_conn=1 (a new \
                     connection on the entry of a weight-0 or removed server is scheduled \
                     afresh), or sysctl -w net.ipv4.vs.conn_reuse_mode=3 (entries in FIN_WAIT \
                     are rescheduled too); keep conn_reuse_mode above 0"
                        .into(),
                )
            }
        }
    }
}

/// `-t VIP:PORT` (or `-u`, `-f MARK`) for a fix's command line.
fn service_flag(svc: &ServicePlacements) -> String {
    match svc.name.strip_prefix("fwmark ") {
        Some(rest) => format!("-f {}", rest.split_whitespace().next().unwrap_or("MARK")),
        None if svc.udp => format!("-u {}", svc.name),
        None => format!("-t {}", svc.name),
    }
}

/// 1st, 2nd, 3rd, 4th... 11th, 12th, 13th, 21st.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.11";
    const B: &str = "10.0.0.12";
    const C: &str = "10.0.0.13";

    fn placed(t: i64, port: u16, server: &str, how: How) -> Placement {
        Placement {
            client: SocketAddr::new("10.0.0.200".parse().unwrap(), port),
            created_ns: t,
            server: Some(server.parse().unwrap()),
            how,
            frame: None,
        }
    }

    fn reused(t: i64, port: u16, server: &str) -> Placement {
        let earlier = Earlier {
            client: SocketAddr::new("10.0.0.200".parse().unwrap(), port),
            created_ns: 0,
            frame: None,
        };
        placed(
            t,
            port,
            server,
            How::Reused {
                state: "FIN_WAIT",
                earlier,
            },
        )
    }

    fn service(
        scheduler: &'static str,
        weights: &[(&str, u32)],
        p: Vec<Placement>,
    ) -> ServicePlacements {
        ServicePlacements {
            name: "10.0.0.100:80".into(),
            udp: false,
            scheduler,
            persistence_s: None,
            servers: weights
                .iter()
                .map(|(a, w)| (SocketAddr::new(a.parse().unwrap(), 80), *w))
                .collect(),
            placements: p,
        }
    }

    fn b() -> IpAddr {
        B.parse().unwrap()
    }

    #[test]
    fn rr_proves_the_server_passed_over_after_one_round_of_the_others() {
        // B's last turn at 1; then A at 2 (what rr does anyway between two turns of B): the
        // time of the change is unknown. A again at 4: B was passed over.
        let all = vec![
            placed(1, 1, B, How::Scheduled),
            placed(2, 2, A, How::Scheduled),
            reused(3, 9, B),
            placed(4, 3, A, How::Scheduled),
            reused(5, 9, B),
        ];
        let j = judge(&service("rr", &[(A, 1), (B, 0)], all[..3].to_vec()), b());
        assert_eq!((j.last_scheduled_ns, j.passed_over), (Some(1), None));
        assert_eq!(j.sticky.len(), 1);
        let j = judge(&service("rr", &[(A, 1), (B, 0)], all), b());
        assert_eq!(j.passed_over, Some((4, 2)));
        assert_eq!(j.sticky.len(), 2);
        assert_eq!(j.new_after, 4);
    }

    #[test]
    fn a_client_placed_elsewhere_after_the_proof_was_let_go() {
        // Port 9 followed its entry to B at 3, before the proof at 4; at 5 it went to A.
        let s = service(
            "rr",
            &[(A, 1), (B, 0)],
            vec![
                placed(1, 1, B, How::Scheduled),
                placed(2, 2, A, How::Scheduled),
                reused(3, 9, B),
                placed(4, 3, A, How::Scheduled),
                reused(5, 9, A),
            ],
        );
        let j = judge(&s, b());
        assert_eq!((j.sticky.len(), j.released), (0, 1));
    }

    #[test]
    fn wrr_allows_the_others_weights_and_lc_proves_nothing() {
        let choices = |sched| {
            service(
                sched,
                &[(A, 2), (C, 1), (B, 0)],
                vec![
                    placed(1, 1, B, How::Scheduled),
                    placed(2, 2, A, How::Scheduled),
                    placed(3, 3, A, How::Scheduled),
                    placed(4, 4, C, How::Scheduled),
                    placed(5, 5, A, How::Scheduled),
                ],
            )
        };
        // wrr: 2 + 1 choices elsewhere fit one round; the fourth proves it.
        assert_eq!(judge(&choices("wrr"), b()).passed_over, Some((5, 4)));
        // rr: two other servers, one turn each.
        assert_eq!(judge(&choices("rr"), b()).passed_over, Some((4, 3)));
        assert_eq!(judge(&choices("lc"), b()).passed_over, None);
        assert_eq!(judge(&choices("sh"), b()).passed_over, None);
    }

    #[test]
    fn wrr_with_another_server_of_unknown_weight_proves_nothing() {
        let s = service(
            "wrr",
            &[(A, 1), (C, 0), (B, 0)],
            (1..8)
                .map(|k| placed(k, k as u16, A, How::Scheduled))
                .collect(),
        );
        assert_eq!(judge(&s, b()).passed_over, None);
    }

    #[test]
    fn a_persistent_choice_of_the_server_after_the_proof_is_a_template_from_before() {
        let mut s = service(
            "rr",
            &[(A, 1), (B, 0)],
            vec![
                placed(1, 1, A, How::Scheduled),
                placed(2, 2, A, How::Scheduled),
                placed(3, 3, B, How::Scheduled),
            ],
        );
        s.persistence_s = Some(300);
        let j = judge(&s, b());
        assert_eq!(j.last_scheduled_ns, None);
        assert_eq!(j.passed_over, Some((2, 2)));
        assert_eq!(j.sticky.len(), 1);
        assert_eq!(j.sticky[0].1, Group::Persisted);
    }

    #[test]
    fn servers_out_are_the_weight_0_ones_and_those_outside_the_rules() {
        let s = service(
            "rr",
            &[(A, 1), (B, 0)],
            vec![
                placed(1, 1, C, How::Scheduled),
                placed(2, 2, A, How::Scheduled),
            ],
        );
        assert_eq!(servers_out(&s), vec![b(), C.parse::<IpAddr>().unwrap()]);
        assert_eq!(judge(&s, C.parse().unwrap()).out, Out::Removed);
        // rr counts the server outside the rules as another that may have had turns.
        assert_eq!(round_of_others(&s, b()), Some(2));
    }

    #[test]
    fn ordinals() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).to_vec();
        assert_eq!(
            words,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }
}
