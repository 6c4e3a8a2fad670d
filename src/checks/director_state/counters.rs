//! The director's counters (`ipvsadm -Ln --stats`) against the connections the captures show,
//! per service and per real server.
//!
//! Two facts of the kernel decide what a difference means. The counters are cumulative since
//! the service was created: more connections counted than captured is what traffic before the
//! captures leaves (or connections the captures missed: the table says which, when it was
//! given too). And on Linux 6.1 ipvsadm reads the estimator's copy of them, refreshed every
//! 2 s: a snapshot taken right after the traffic misses up to 2 s of it (fixtures/ipv6-healthy
//! counts 3 of 10 connections). Fewer counted than captured is therefore only a finding when
//! the shortfall is larger than the connections that began in the captures' last
//! [`LAG_NS`]: the snapshot was taken after the traffic, so its copy holds at least all
//! connections that began before the traffic's end minus the refresh interval.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::{proto_of, ID};
use crate::checks::{Context, Finding, SnapshotLine, Status, MAX_EVIDENCE};
use crate::flows::Connection;
use crate::topology::director_state::{Count, ServiceStats, TableEntry};
use crate::topology::rules::VirtualService;
use crate::topology::{Proto, Service};

/// The estimator's 2 s refresh, and half a second for its timer's slack and the clocks'.
pub const LAG_NS: i64 = 2_500_000_000;

/// Connections the captures show for one service, or one of its servers.
#[derive(Default)]
struct Cell {
    /// Shown passing through the director.
    through: u64,
    /// Perhaps through it: no director capture shows how they were forwarded.
    maybe: u64,
    /// Start times of the latest ones: those within [`LAG_NS`] of the latest start seen so far
    /// (older ones can never be within it of the traffic's end), pruned as they pile up.
    recent: Vec<i64>,
    prune_at: usize,
}

impl Cell {
    fn add(&mut self, start: i64, through: bool, latest_start: i64) {
        if through {
            self.through += 1;
        } else {
            self.maybe += 1;
        }
        self.recent.push(start);
        if self.recent.len() > self.prune_at {
            self.recent.retain(|t| *t > latest_start - LAG_NS);
            self.prune_at = (self.recent.len() * 2).max(64);
        }
    }

    /// Began within [`LAG_NS`] of `end`.
    fn recent(&self, end: i64) -> u64 {
        self.recent.iter().filter(|t| **t > end - LAG_NS).count() as u64
    }
}

#[derive(Default)]
struct Row {
    whole: Cell,
    /// By real server; `None`: the captures do not show which.
    servers: HashMap<Option<IpAddr>, Cell>,
}

/// Connections the captures show, per service and real server.
#[derive(Default)]
pub struct Tally {
    services: HashMap<(Proto, SocketAddr), Row>,
    latest_start: i64,
    /// The last packet of any connection (reference clock): the traffic's end.
    end: i64,
}

impl Tally {
    pub fn add(&mut self, conn: &Connection, rs: Option<IpAddr>, through: bool) {
        self.latest_start = self.latest_start.max(conn.first_ts_ns);
        self.end = self.end.max(conn.last_ts_ns);
        let latest = self.latest_start;
        let row = self.services.entry((conn.proto, conn.vip)).or_default();
        row.whole.add(conn.first_ts_ns, through, latest);
        row.servers
            .entry(rs)
            .or_default()
            .add(conn.first_ts_ns, through, latest);
    }
}

/// One counter compared: what the director counted, what the captures show.
struct Judged<'a> {
    label: String,
    counted: Count,
    /// Shown through the director, and at most (with those perhaps through it).
    low: u64,
    high: u64,
    recent: u64,
    /// Entries of the table the captures do not show, for this row.
    in_table: usize,
    at: &'a SnapshotLine,
}

impl Judged<'_> {
    fn numbers(&self) -> String {
        let captured = if self.high > self.low {
            format!("{} to {}", self.low, self.high)
        } else {
            self.low.to_string()
        };
        let counted = if self.counted.unit == 1 {
            self.counted.value.to_string()
        } else {
            format!("{} to {}", self.counted.value, self.counted.upper())
        };
        format!(
            "{}: {counted} counted, {captured} in the captures",
            self.label
        )
    }
}

/// Compares the counters with the tally: a few words for the pass reason, and the findings.
/// `uncaptured`: the table's entries the captures do not show, by service.
pub fn compare(
    ctx: &Context,
    host: &str,
    tally: &Tally,
    stats: &[ServiceStats],
    uncaptured: &HashMap<(Proto, SocketAddr), Vec<&TableEntry>>,
) -> (String, Vec<Finding>) {
    let empty = Row::default();
    let (mut lag, mut short, mut excess, mut missing) = (vec![], vec![], vec![], vec![]);
    let mut fwm = Vec::new();
    let mut rows = 0;
    let mut agree = 0;
    for s in stats {
        let VirtualService::Addr { proto, vip } = s.service else {
            fwm.push(&s.at);
            continue;
        };
        let Some(proto) = proto_of(proto) else {
            continue;
        };
        let svc = Service {
            vip: vip.ip(),
            port: vip.port(),
            proto,
        };
        let row = tally.services.get(&(proto, vip)).unwrap_or(&empty);
        let extra = uncaptured.get(&(proto, vip));
        let unknown = row.servers.get(&None);
        let mut judged = vec![Judged {
            label: svc.to_string(),
            counted: s.counters.conns,
            low: row.whole.through,
            high: row.whole.through + row.whole.maybe,
            recent: row.whole.recent(tally.end),
            in_table: extra.map_or(0, Vec::len),
            at: &s.at,
        }];
        for sv in &s.servers {
            let cell = row.servers.get(&Some(sv.addr.ip()));
            let (through, maybe) = cell.map_or((0, 0), |c| (c.through, c.maybe));
            // Connections whose server the captures do not show may be any server's.
            let unseen = unknown.map_or(0, |c| c.through + c.maybe);
            judged.push(Judged {
                label: format!("{} ({svc})", sv.addr),
                counted: sv.counters.conns,
                low: through,
                high: through + maybe + unseen,
                recent: cell.map_or(0, |c| c.recent(tally.end))
                    + unknown.map_or(0, |c| c.recent(tally.end)),
                in_table: extra.map_or(0, |v| {
                    v.iter().filter(|t| t.entry.rs.ip() == sv.addr.ip()).count()
                }),
                at: &sv.at,
            });
        }
        for (rs, cell) in &row.servers {
            let Some(rs) = rs else { continue };
            if cell.through > 0 && !s.servers.iter().any(|sv| sv.addr.ip() == *rs) {
                missing.push((
                    format!(
                        "no real server {} under {svc}, though the captures show {} connections \
                         going to it through the director",
                        ctx.host(*rs),
                        cell.through
                    ),
                    Some(&s.at),
                ));
            }
        }
        for j in judged {
            rows += 1;
            if j.counted.upper() < j.low {
                if j.low - j.counted.upper() <= j.recent {
                    lag.push(j);
                } else {
                    short.push(j);
                }
            } else if j.counted.value > j.high {
                excess.push(j);
            } else {
                agree += 1;
            }
        }
    }
    let listed = |s: &VirtualService| match s {
        VirtualService::Addr { proto, vip } => proto_of(*proto).map(|p| (p, *vip)),
        VirtualService::FwMark { .. } => None,
    };
    for ((proto, vip), row) in &tally.services {
        if row.whole.through > 0
            && !stats
                .iter()
                .any(|s| listed(&s.service) == Some((*proto, *vip)))
        {
            let svc = Service {
                vip: vip.ip(),
                port: vip.port(),
                proto: *proto,
            };
            missing.push((
                format!(
                    "no service {svc}, though the captures show {} connections to it through \
                     the director",
                    row.whole.through
                ),
                None,
            ));
        }
    }
    missing.sort_by(|a, b| a.0.cmp(&b.0));
    let words = if rows == agree {
        format!(
            "its counters agree for every service and real server ({})",
            crate::checks::verdict::plural(rows, "row", "rows")
        )
    } else {
        format!("its counters agree on {agree} of {rows} rows")
    };
    let mut findings = Vec::new();
    findings.extend(below_finding(host, &short, false));
    findings.extend(missing_finding(host, &missing));
    findings.extend(below_finding(host, &lag, true));
    findings.extend(excess_finding(host, &excess));
    findings.extend(fwm_finding(host, &fwm));
    (words, findings)
}

/// The rows, a few of them in full.
fn rows_text(rows: &[Judged], each: impl Fn(&Judged) -> String) -> String {
    let mut parts: Vec<String> = rows.iter().take(4).map(each).collect();
    if rows.len() > 4 {
        parts.push(format!("and {} more", rows.len() - 4));
    }
    parts.join("; ")
}

fn snapshot<'a>(lines: impl IntoIterator<Item = &'a SnapshotLine>) -> Vec<SnapshotLine> {
    lines.into_iter().take(MAX_EVIDENCE).cloned().collect()
}

fn finding(
    host: &str,
    severity: Status,
    summary: String,
    count: usize,
    lines: Vec<SnapshotLine>,
    likely_cause: &str,
    fix: String,
) -> Finding {
    Finding {
        check: ID,
        severity,
        summary,
        host: Some(host.to_string()),
        count: count as u64,
        out_of: None,
        evidence: Vec::new(),
        display_filter: None,
        snapshot: lines,
        likely_cause: likely_cause.to_string(),
        fix,
    }
}

/// Counters below the captured count: within the lag (`lagging`, a note) or beyond it.
fn below_finding(host: &str, rows: &[Judged], lagging: bool) -> Option<Finding> {
    if rows.is_empty() {
        return None;
    }
    let (severity, how, each): (_, _, fn(&Judged) -> String) = if lagging {
        (
            Status::Info,
            "no more than began in the captures' last 2.5 s, which their copy may not hold yet",
            |j| format!("{} ({} began then)", j.numbers(), j.recent),
        )
    } else {
        (
            Status::Warn,
            "more than the 2 s their copy lags explains",
            |j| {
                format!(
                    "{} (of which {} began in the captures' last 2.5 s)",
                    j.numbers(),
                    j.recent
                )
            },
        )
    };
    let (cause, fix) = if lagging {
        (
            "ipvsadm -Ln --stats reads the estimator's copy of the counters, refreshed every 2 \
             s (Linux 6.1): a snapshot taken right after the traffic misses up to 2 s of it; not \
             a fault",
            "nothing to fix; to compare exactly, take ipvsadm -Ln --stats more than 2 s after \
             the traffic ends"
                .to_string(),
        )
    } else {
        (
            "the counters were zeroed (ipvsadm -Z) or the service deleted and added again while \
             the traffic ran, the snapshot was taken before the traffic ended, or it is of \
             another director (a backup, another cluster)",
            format!(
                "take ipvsadm -Ln --stats on {host}, more than 2 s after the traffic ends, \
                 without zeroing the counters while the captures run"
            ),
        )
    };
    Some(finding(
        host,
        severity,
        format!(
            "the director's counters count fewer connections than the captures show, {how}: {}",
            rows_text(rows, each)
        ),
        rows.len(),
        snapshot(rows.iter().map(|j| j.at)),
        cause,
        fix,
    ))
}

fn missing_finding(host: &str, missing: &[(String, Option<&SnapshotLine>)]) -> Option<Finding> {
    if missing.is_empty() {
        return None;
    }
    let texts: Vec<&str> = missing.iter().map(|(t, _)| t.as_str()).collect();
    Some(finding(
        host,
        Status::Warn,
        format!("the director's counters list {}", texts.join("; ")),
        missing.len(),
        snapshot(missing.iter().filter_map(|(_, l)| *l)),
        "the snapshot is of another director (a backup, another cluster) or was taken after \
         the service or server was removed",
        format!("take ipvsadm -Ln --stats on {host}, right after the captures"),
    ))
}

fn excess_finding(host: &str, rows: &[Judged]) -> Option<Finding> {
    if rows.is_empty() {
        return None;
    }
    let explained = rows.iter().any(|j| j.in_table > 0);
    Some(finding(
        host,
        Status::Info,
        format!(
            "the director's counters count more connections than the captures show: {}",
            rows_text(rows, |j| {
                let more = j.counted.value - j.high;
                match j.in_table {
                    0 => format!("{} ({more} more)", j.numbers()),
                    k => format!(
                        "{} ({more} more; {k} of them in its table and not in the captures)",
                        j.numbers()
                    ),
                }
            })
        ),
        rows.len(),
        snapshot(rows.iter().map(|j| j.at)),
        if explained {
            "the counters are cumulative since the service was created: connections made \
             before the captures started count too; those still in the table and not in the \
             captures are named in this check's warning"
        } else {
            "the counters are cumulative since the service was created: connections made \
             before the captures started count too (or the captures missed some)"
        },
        "nothing to fix on the director; to compare exactly, zero the counters (ipvsadm -Z) \
         right before the captures start"
            .to_string(),
    ))
}

fn fwm_finding(host: &str, lines: &[&SnapshotLine]) -> Option<Finding> {
    if lines.is_empty() {
        return None;
    }
    let names: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    Some(finding(
        host,
        Status::Info,
        format!(
            "the counters of {} firewall-mark {} not compared: the captures do not show which \
             packets carried the mark ({})",
            lines.len(),
            if lines.len() == 1 {
                "service are"
            } else {
                "services are"
            },
            names.join("; ")
        ),
        lines.len(),
        snapshot(lines.iter().copied()),
        "a firewall-mark service takes whatever iptables marks, which no capture records",
        "none; list the mark's addresses and ports as services to compare their counters"
            .to_string(),
    ))
}
