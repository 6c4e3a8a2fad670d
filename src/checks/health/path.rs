//! `health.path`: a real server whose health checks succeed answers its tunnelled connections.
//!
//! keepalived's TCP_CHECK and HTTP_GET connect from the director to RIP:port directly, not
//! through the tunnel ([`crate::flows::probes`]). They pass whatever happens to the tunnelled
//! packets, so a real server that drops them (the VIP missing on its tunl0, rp_filter) keeps
//! its weight and goes on getting clients it never answers: the "DSR blackhole" (keepalived
//! #306, dpvs #870, Seesaw #98, katran #241). This check puts the two side by side per real
//! server: the checks as the director's capture (else the server's) saw them, and the
//! tunnelled connections as the shared classification ([`Class`]) judged them, so that it says
//! what `reply.present` says about the same connections. The reverse (checks failing for a
//! server that still gets connections, or that the rules give a weight) is reported too.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::checks::classify::{Answer, Class, Forwarding};
use crate::checks::{ip_field, Affected, CheckResult, Context, Explained, Finding, Status};
use crate::flows::clock::offset_of;
use crate::flows::probes::HealthChecks;
use crate::flows::Connection;
use crate::time::rfc3339_ns;
use crate::topology::{Proto, Role};

pub const PATH: &str = "health.path";

/// The tunnelled connections of one real server.
#[derive(Default)]
struct Tally {
    /// Tunnelled connections whose answer is known.
    judged: usize,
    answered: usize,
    unanswered: Affected,
    /// When the unanswered ones began (reference clock), earliest and latest.
    unanswered_span: Option<(i64, i64)>,
    /// When any of them began.
    span: Option<(i64, i64)>,
}

fn widen(span: &mut Option<(i64, i64)>, t: i64) {
    *span = Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
}

/// `health.path`, fed one connection at a time.
#[derive(Default)]
pub struct Path {
    by_server: BTreeMap<IpAddr, Tally>,
}

impl Path {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let (Forwarding::Tunnel, Some(rs)) = (class.forwarding, class.real_server) else {
            return;
        };
        if class.answer == Answer::Unknown {
            return;
        }
        let t = self.by_server.entry(rs).or_default();
        t.judged += 1;
        widen(&mut t.span, conn.first_ts_ns);
        match class.answer {
            Answer::Unanswered(at) | Answer::UnansweredAtDirector(at) => {
                widen(&mut t.unanswered_span, conn.first_ts_ns);
                t.unanswered.add(conn, || {
                    at.map(|f| ctx.packet(&f, "tunnelled request that got no reply"))
                });
            }
            a if a.answered() => t.answered += 1,
            _ => {}
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let seen = chosen_views(ctx);
        if seen.is_empty() {
            return CheckResult::skip(
                PATH,
                "no capture shows health checks: no repeated connection from a director's \
                 address to a real server's own address, outside the tunnel (keepalived's \
                 TCP_CHECK or HTTP_GET; capture on the director or the real servers while it \
                 runs)",
            );
        }
        let mut per_server: BTreeMap<IpAddr, Vec<Checks>> = BTreeMap::new();
        for c in seen {
            per_server.entry(c.h.key.server.ip()).or_default().push(c);
        }
        let mut findings = Vec::new();
        let mut judged = 0usize;
        let mut passing = 0usize;
        for (rs, checks) in &per_server {
            let tally = self.by_server.get(rs);
            judged += tally.map_or(0, |t| t.judged);
            let all_ok = checks.iter().all(|c| c.h.all_answered());
            let all_failing = checks.iter().all(|c| c.h.none_answered());
            if all_ok {
                passing += 1;
                if let Some(f) = tally.and_then(|t| blackhole(ctx, *rs, checks, t)) {
                    findings.push(f);
                }
            } else if all_failing {
                findings.extend(failing_checks(ctx, *rs, checks, tally));
            } else {
                findings.push(flapping(ctx, *rs, checks));
            }
        }
        let total: u64 = per_server.values().flatten().map(|c| c.h.started).sum();
        let mut result = CheckResult::from_findings(
            PATH,
            format!(
                "{} whose health checks succeed ({} in all) answered every tunnelled connection",
                crate::words::plural(passing as u64, "real server", "real servers"),
                crate::words::plural(total, "check", "checks")
            ),
            findings,
        );
        result.judged = Some(judged as u64);
        result
    }
}

/// The server for messages: its address with its MAC, from the topology, else the source MAC
/// of its answers to the checks (a server keepalived took out gets no tunnelled traffic to
/// name it by).
fn server_host(ctx: &Context, rs: IpAddr, checks: &[Checks]) -> String {
    let named = ctx.host(rs);
    if named != rs.to_string() {
        return named;
    }
    match checks.iter().find_map(|c| c.h.server_mac) {
        Some(mac) => format!("{rs} ({mac})"),
        None => named,
    }
}

/// One key's checks as the capture chosen for it saw them, with that capture's clock offset.
struct Checks<'a> {
    h: &'a HealthChecks,
    offset_ns: i64,
}

impl Checks<'_> {
    /// First and last check on the reference clock.
    fn span(&self) -> (i64, i64) {
        (
            self.h.first_ts_ns - self.offset_ns,
            self.h.last_ts_ns - self.offset_ns,
        )
    }
    fn interval_ns(&self) -> i64 {
        self.h.median_interval_ns.unwrap_or(0)
    }
}

/// Per key (director, server, port), the repeated checks as the director's capture saw them
/// (the prober's own view), else the real server's, else any capture's.
fn chosen_views<'a>(ctx: &Context<'a>) -> Vec<Checks<'a>> {
    let topo = &ctx.analysis.topology;
    let rank = |h: &HealthChecks| match topo.vantage(h.vantage) {
        Some(v) if v.role == Role::Director => 0,
        Some(v) if v.role == Role::RealServer && v.address == Some(h.key.server.ip()) => 1,
        _ => 2,
    };
    let mut best: BTreeMap<_, &HealthChecks> = BTreeMap::new();
    for h in ctx.analysis.health_checks.iter().filter(|h| h.repeated()) {
        best.entry(h.key)
            .and_modify(|b| {
                if (rank(h), h.vantage) < (rank(b), b.vantage) {
                    *b = h;
                }
            })
            .or_insert(h);
    }
    best.into_values()
        .map(|h| Checks {
            h,
            offset_ns: offset_of(&ctx.analysis.clock_offsets, h.vantage).map_or(0, |o| o.offset_ns),
        })
        .collect()
}

/// "tcp 10.7.0.12:80 from 10.7.0.1"
fn key_text(c: &Checks) -> String {
    format!(
        "{} {} from {}",
        c.h.key.proto, c.h.key.server, c.h.key.director
    )
}

fn counts_text(h: &HealthChecks) -> String {
    let mut parts = Vec::new();
    if h.refused > 0 {
        parts.push(format!("{} refused", h.refused));
    }
    if h.unanswered > 0 {
        parts.push(format!("{} unanswered", h.unanswered));
    }
    format!(
        "{} of {} answered: {}",
        h.answered,
        h.started,
        parts.join(", ")
    )
}

fn every_text(c: &Checks) -> String {
    match c.h.median_interval_ns {
        Some(i) => format!(", every {:.1} s", i as f64 / 1e9),
        None => String::new(),
    }
}

/// The Wireshark filter of a server's checks (both ways), and of `more` when given.
fn checks_filter(checks: &[Checks], more: Option<String>) -> String {
    let mut parts: Vec<String> = checks
        .iter()
        .map(|c| {
            let (d, s) = (c.h.key.director, c.h.key.server);
            let l4 = if c.h.key.proto == Proto::UDP {
                "udp"
            } else {
                "tcp"
            };
            format!(
                "({f} == {d} && {f} == {} && {l4}.port == {})",
                s.ip(),
                s.port(),
                f = ip_field(d)
            )
        })
        .collect();
    parts.extend(more.map(|m| format!("({m})")));
    parts.join(" || ")
}

fn overlaps(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The DSR blackhole: the server's checks all answered while tunnelled connections to it, in
/// the same period, went unanswered.
fn blackhole(ctx: &Context, rs: IpAddr, checks: &[Checks], t: &Tally) -> Option<Finding> {
    let lost = t.unanswered_span?;
    // The checks' period, widened by one interval either side: a check every 3 s vouches for
    // the server over the seconds around it.
    let during = checks.iter().any(|c| {
        let (a, b) = c.span();
        overlaps(lost, (a - c.interval_ns(), b + c.interval_ns()))
    });
    if !during {
        return None;
    }
    let host = server_host(ctx, rs, checks);
    let answered: u64 = checks.iter().map(|c| c.h.answered).sum();
    let started: u64 = checks.iter().map(|c| c.h.started).sum();
    let first = &checks[0];
    let (from, to) = checks
        .iter()
        .map(Checks::span)
        .fold((i64::MAX, i64::MIN), |(a, b), (x, y)| (a.min(x), b.max(y)));
    let keys: Vec<String> = checks.iter().map(key_text).collect();
    let vip = ctx.vip_text();
    let director = first.h.key.director;
    let port = first.h.key.server.port();
    let text = Explained {
        summary: format!(
            "{} of {} tunnelled connections to {host} were never answered, while {answered} of \
             {started} health checks to it ({}{}) were answered between {} and {}: the checks \
             do not follow the clients' path",
            t.unanswered.len(),
            t.judged,
            keys.join(", "),
            every_text(first),
            rfc3339_ns(from),
            rfc3339_ns(to),
        ),
        host: Some(host.clone()),
        likely_cause: format!(
            "the health checks connect from the director's address {director} to {rs}:{port} \
             directly, outside the tunnel, so they succeed whatever happens to tunnelled \
             packets; {rs} drops the decapsulated requests to the VIP (the VIP missing from its \
             tunl0, strict reverse-path filtering on tunl0 or all, or a firewall), and the \
             director keeps it in the rules with its weight: a blackhole for the clients it is \
             given"
        ),
        fix: format!(
            "on {host}: ip addr add {vip}/32 dev tunl0; ip link set tunl0 up; sysctl -w \
             net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.all.rp_filter=0. On the director, \
             make keepalived's check follow the data path, so that a server the tunnel cannot \
             reach fails it and is taken out: in real_server {rs} {port}, a MISC_CHECK whose \
             misc_path script connects to {vip}:{port} through an IP-in-IP tunnel to {rs}, or \
             TCP_CHECK/HTTP_GET with connect_ip {vip} and fwmark N, the marked packets routed \
             through that tunnel (ip tunnel add hc-rs mode ipip local {director} remote {rs}; \
             ip link set hc-rs up; ip rule add pref 100 fwmark N lookup N; ip route add \
             {vip}/32 dev hc-rs table N; the local table's rule moved after pref 100)"
        ),
    };
    let more = t.unanswered.clone();
    let mut f = more.finding(PATH, Status::Fail, t.judged, text);
    let tunnelled_filter = f.display_filter.take();
    f.display_filter = Some(checks_filter(checks, tunnelled_filter));
    if let Some(ok) = checks.iter().find_map(|c| c.h.succeeded) {
        let answer = ok.answer.unwrap_or(ok.request);
        f.evidence.insert(
            0,
            ctx.packet(
                &answer,
                format!("health check answered by {rs}:{port}, outside the tunnel"),
            ),
        );
        f.evidence.truncate(crate::checks::MAX_EVIDENCE);
    }
    Some(f)
}

/// The reverse: every check of the server failed, yet the director sent it connections
/// (warn: whatever runs the checks does not drive this table), or the rules give it a weight
/// (info: keepalived takes a failing server out of the live table, which is it working).
fn failing_checks(
    ctx: &Context,
    rs: IpAddr,
    checks: &[Checks],
    tally: Option<&Tally>,
) -> Option<Finding> {
    let host = server_host(ctx, rs, checks);
    let first = &checks[0];
    let (from, to) = checks
        .iter()
        .map(Checks::span)
        .fold((i64::MAX, i64::MIN), |(a, b), (x, y)| (a.min(x), b.max(y)));
    let sent = tally.filter(|t| {
        t.span.is_some_and(|s| {
            checks.iter().any(|c| {
                let (a, b) = c.span();
                overlaps(s, (a - c.interval_ns(), b + c.interval_ns()))
            })
        })
    });
    let weight = ctx
        .analysis
        .expected
        .iter()
        .flat_map(|s| s.real_servers.iter())
        .find(|r| r.addr == rs)
        .and_then(|r| r.weight);
    let counts: Vec<String> = checks
        .iter()
        .map(|c| format!("{} ({})", key_text(c), counts_text(c.h)))
        .collect();
    let refused = checks
        .iter()
        .all(|c| c.h.refused > 0 && c.h.unanswered == 0);
    let port = first.h.key.server.port();
    let server_fix = if refused {
        format!(
            "on {host}: start the service on port {port} (the checks are refused: nothing \
             listens there)"
        )
    } else {
        format!(
            "on {host}: find why it does not answer on port {port} (the checks go unanswered: \
             a firewall, the host down)"
        )
    };
    let (severity, summary, cause, fix, out_of) = match (sent, weight) {
        (Some(t), _) => (
            Status::Warn,
            format!(
                "every health check to {host} failed between {} and {} ({}), yet the director \
                 sent it {} tunnelled connections then",
                rfc3339_ns(from),
                rfc3339_ns(to),
                counts.join("; "),
                t.judged
            ),
            "whatever runs these checks does not manage this director's table: another \
             director's keepalived, keepalived without its checker (--check), \
             inhibit_on_failure leaving a weight, or checks of another port than the service's"
                .to_string(),
            format!(
                "{server_fix}; on the director, let the checker take the server out (the \
                 real_server's check in the virtual_server the clients use), or by hand: \
                 ipvsadm -e -t {}:{port} -r {rs}:{port} -w 0",
                ctx.vip_text()
            ),
            Some(t.judged as u64),
        ),
        (None, Some(w)) if w > 0 => (
            Status::Info,
            format!(
                "every health check to {host} failed between {} and {} ({}); the rules give it \
                 weight {w}, and no tunnelled connection went to it then",
                rfc3339_ns(from),
                rfc3339_ns(to),
                counts.join("; "),
            ),
            "the checker took the failing server out of the director's live table (keepalived \
             removes a real_server whose check fails), as it should; rules read from \
             keepalived.conf still list it, the live table (ipvsadm -Ln on the director) does \
             not"
            .to_string(),
            format!("{server_fix}, or take it out of keepalived.conf"),
            None,
        ),
        _ => return None,
    };
    Some(Finding {
        check: PATH,
        severity,
        summary,
        host: Some(host),
        count: checks.iter().map(|c| c.h.refused + c.h.unanswered).sum(),
        out_of: out_of.or(Some(checks.iter().map(|c| c.h.started).sum())),
        evidence: checks
            .iter()
            .filter_map(|c| c.h.failed)
            .map(|e| {
                let what = if e.answer.is_some() {
                    "health check refused"
                } else {
                    "health check that got no answer"
                };
                ctx.packet(&e.answer.unwrap_or(e.request), what)
            })
            .collect(),
        display_filter: Some(checks_filter(checks, None)),
        snapshot: Vec::new(),
        likely_cause: cause,
        fix,
    })
}

/// Some checks of the server answered, some not: a flapping server (or service).
fn flapping(ctx: &Context, rs: IpAddr, checks: &[Checks]) -> Finding {
    let host = server_host(ctx, rs, checks);
    let counts: Vec<String> = checks
        .iter()
        .map(|c| format!("{} ({})", key_text(c), counts_text(c.h)))
        .collect();
    Finding {
        check: PATH,
        severity: Status::Info,
        summary: format!(
            "health checks to {host} partly failed: {}",
            counts.join("; ")
        ),
        host: Some(host.clone()),
        count: checks.iter().map(|c| c.h.refused + c.h.unanswered).sum(),
        out_of: Some(checks.iter().map(|c| c.h.started).sum()),
        evidence: checks
            .iter()
            .flat_map(|c| [c.h.failed, c.h.succeeded])
            .flatten()
            .map(|e| ctx.packet(&e.answer.unwrap_or(e.request), "health check"))
            .collect(),
        display_filter: Some(checks_filter(checks, None)),
        snapshot: Vec::new(),
        likely_cause: "the server or its service came and went while the checks ran (a \
                       restart, an overload), and the checker changed its weight each time"
            .into(),
        fix: format!("on {host}: look at the service's logs at the times of the failed checks"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_overlap_when_they_share_a_moment() {
        assert!(overlaps((1, 5), (5, 9)));
        assert!(overlaps((3, 4), (1, 9)));
        assert!(!overlaps((1, 4), (5, 9)));
    }

    #[test]
    fn a_span_widens_to_every_time_given() {
        let mut span = None;
        widen(&mut span, 7);
        widen(&mut span, 3);
        widen(&mut span, 5);
        assert_eq!(span, Some((3, 7)));
    }
}
