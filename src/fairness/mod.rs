//! Scheduler fairness and conformance.
//!
//! Input is plain data (`FairnessInput`: services, their configuration if known, and the
//! connections the director saw); output is a `FairnessReport` with, per service: the share
//! of connections each real server got against the share its weight promises, Jain's index,
//! the max/min ratio and a chi-square test; a replay of the configured scheduler (ported
//! from the kernel's ip_vs_*.c) that counts how many assignments it reproduces and names the
//! first that it does not; and shares over time windows. Nothing here reads files or
//! prints; `report::fairness` and `report::charts` present the result.

mod byte_chunks;
pub mod check;
pub mod entry;
pub mod input;
pub mod observe;
pub mod outcome;
pub mod replay;
pub mod sched;
mod spill;
pub mod stats;
pub mod table;
pub mod verdict;

pub use input::{
    ConnObs, FairnessInput, Proto, Scheduler, Server, ServiceConfig, ServiceObs, TcpMarks, Timeouts,
};
pub use outcome::{
    Assignment, Conformance, Drift, DriftPeak, FairnessReport, FairnessStats, Mismatch,
    Percentiles, ServerStats, ServiceReport, Unpredicted, Verdict, Window,
};
pub use table::ConnTable;
pub use verdict::{FairnessVerdict, Outcome as FairnessOutcome};

use std::net::{IpAddr, SocketAddr};

/// Number of windows the drift table splits the capture into.
pub const DRIFT_WINDOWS: i64 = 10;
/// Windows with fewer connections are too noisy to name as the largest drift.
pub const MIN_WINDOW_CONNS: u64 = 10;

/// The connections of a service in a form the analysis reads: a table, built from a list of
/// [`ConnObs`] when that is what was given.
trait Connections {
    fn table(&self) -> TableRef<'_>;
}

/// A table built for the analysis, or the one given.
enum TableRef<'a> {
    Built(Box<ConnTable>),
    Given(&'a ConnTable),
}

impl std::ops::Deref for TableRef<'_> {
    type Target = ConnTable;
    fn deref(&self) -> &ConnTable {
        match self {
            TableRef::Built(t) => t,
            TableRef::Given(t) => t,
        }
    }
}

impl Connections for Vec<ConnObs> {
    fn table(&self) -> TableRef<'_> {
        TableRef::Built(Box::new(self.iter().collect()))
    }
}

impl Connections for ConnTable {
    fn table(&self) -> TableRef<'_> {
        TableRef::Given(self)
    }
}

/// Whether the report keeps [`ServiceReport::timeline`], one entry per connection, which only
/// the charts read (16 bytes a connection, 16 MB at a million): `verify` and `fairness`
/// without `--charts` do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    Keep,
    Skip,
}

/// Analyses every service.
pub fn analyse(input: &FairnessInput) -> FairnessReport {
    analyse_any(input, Timeline::Keep)
}

/// Analyses every service of the connections gathered from captures, with the timeline kept
/// or not.
pub fn analyse_observed(input: &FairnessInput<ConnTable>, timeline: Timeline) -> FairnessReport {
    analyse_any(input, timeline)
}

fn analyse_any<C: Connections>(input: &FairnessInput<C>, timeline: Timeline) -> FairnessReport {
    let services: Vec<ServiceReport> = input
        .services
        .iter()
        .map(|s| analyse_service(s, &s.connections.table(), input, timeline))
        .collect();
    FairnessReport {
        verdict: verdict::overall(&services),
        services,
    }
}

fn analyse_service<C>(
    svc: &ServiceObs<C>,
    conns: &ConnTable,
    input: &FairnessInput<C>,
    keep: Timeline,
) -> ServiceReport {
    let cfg = svc.config.as_ref();
    let mut notes = Vec::new();
    if let Some(why) = conns.spill_trouble() {
        notes.push(format!(
            "the connection table was to go to disk past {} connections, but {why}: it was \
             kept in memory instead (results are the same; set TMPDIR to a writable file system \
             to bound memory)",
            table::spill_rows()
        ));
    }

    let (addrs, server_of_rs) = server_index(cfg, conns, svc.vip.port());
    let n_cfg = cfg.map_or(0, |c| c.servers.len());
    let extra = &addrs[n_cfg..];
    if cfg.is_some() && !extra.is_empty() {
        notes.push(format!(
            "{} received connections but {} not in the configuration: {}",
            crate::words::plural(extra.len() as u64, "server", "servers"),
            crate::words::noun(extra.len(), "is", "are"),
            extra
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let server_of = |i: usize| conns.rs(i).and_then(|k| server_of_rs[k]);

    let mut servers: Vec<ServerStats> = addrs
        .iter()
        .enumerate()
        .map(|(i, &addr)| ServerStats {
            addr,
            weight: cfg.and_then(|c| c.servers.get(i)).map(|s| s.weight),
            connections: 0,
            share: 0.0,
            expected_share: None,
            packets_to_server: 0,
            bytes_to_server: 0,
            packets_to_client: 0,
            bytes_to_client: 0,
            response_ms: None,
            response_samples_ms: Vec::new(),
        })
        .collect();
    let response_ms = conns.response_ms();
    for ((totals, s), samples) in conns.servers().iter().zip(&server_of_rs).zip(response_ms) {
        let Some(s) = *s else { continue };
        let st = &mut servers[s];
        st.connections += totals.connections;
        st.packets_to_server += totals.packets_to_server;
        st.bytes_to_server += totals.bytes_to_server;
        st.packets_to_client += totals.packets_to_client;
        st.bytes_to_client += totals.bytes_to_client;
        if st.response_samples_ms.is_empty() {
            st.response_samples_ms = samples;
        } else {
            st.response_samples_ms.extend(samples);
        }
    }
    let unattributed = (0..conns.len()).filter(|&i| server_of(i).is_none()).count() as u64;
    let attributed: u64 = servers.iter().map(|s| s.connections).sum();
    for st in &mut servers {
        st.share = if attributed > 0 {
            st.connections as f64 / attributed as f64
        } else {
            0.0
        };
        st.response_samples_ms.sort_by(f64::total_cmp);
        let v = &st.response_samples_ms;
        st.response_ms = stats::percentile(v, 50.0).map(|p50| Percentiles {
            count: v.len(),
            p50,
            p90: stats::percentile(v, 90.0).unwrap_or(p50),
            p99: stats::percentile(v, 99.0).unwrap_or(p50),
            max: v[v.len() - 1],
        });
    }
    if unattributed > 0 {
        notes.push(format!(
            "{} no observed real server and {} left out of the shares",
            crate::words::plural(unattributed, "connection has", "connections have"),
            crate::words::noun(unattributed as usize, "is", "are")
        ));
    }

    let promised = cfg.and_then(|c| promised_shares(c, &mut notes));
    if let Some(p) = &promised {
        for (st, share) in servers.iter_mut().zip(p) {
            st.expected_share = Some(*share);
        }
        // Servers outside the configuration are promised nothing.
        for st in servers.iter_mut().skip(n_cfg) {
            st.expected_share = Some(0.0);
        }
    }
    let fairness = fairness_stats(&servers, cfg, promised.as_deref(), n_cfg);

    let (conformance, verdicts) = match cfg {
        Some(c) => {
            let (conf, v) =
                replay::replay(&replay_input(c, svc, conns, (&addrs, &server_of_rs), input));
            (Some(conf), v)
        }
        None => {
            notes.push(
                "no configuration for this service (no rules file, no --scheduler/--weights): \
                 shares are shown without a promise and nothing is replayed"
                    .into(),
            );
            (None, vec![Verdict::Unchecked; conns.len()])
        }
    };

    let promised_all: Option<Vec<f64>> = servers.iter().map(|s| s.expected_share).collect();
    let assigned =
        || (0..conns.len()).filter_map(|i| server_of(i).map(|server| (conns.start_ns(i), server)));
    let drift = drift(
        assigned,
        servers.len(),
        input.capture_span,
        promised_all.as_deref(),
    );
    let timeline = match keep {
        Timeline::Skip => Vec::new(),
        Timeline::Keep => {
            // One per attributed connection: allocated at its size, not grown by doubling.
            let mut timeline: Vec<Assignment> = Vec::with_capacity(attributed as usize);
            timeline.extend((0..conns.len()).filter_map(|i| {
                server_of(i).map(|server| Assignment {
                    time_ns: conns.start_ns(i),
                    server: server as u32,
                    verdict: verdicts[i],
                })
            }));
            timeline.sort_by_key(|a| a.time_ns);
            timeline
        }
    };

    let mut report = ServiceReport {
        proto: svc.proto,
        vip: svc.vip,
        mark: svc.mark,
        scheduler: cfg.map(|c| c.scheduler),
        persistence_s: cfg.and_then(|c| c.persistence_s),
        servers,
        connections: conns.len() as u64,
        unattributed,
        fairness,
        conformance,
        drift,
        verdict: FairnessVerdict::default(),
        notes,
        timeline,
    };
    report.verdict = verdict::judge(&report);
    report
}

/// For the `drain` check: how the director placed each new connection of every service whose
/// rules give a server weight 0, or that sent connections to a server its rules do not list.
pub fn drain_placements(
    input: &FairnessInput<ConnTable>,
) -> Vec<crate::checks::drain::ServicePlacements> {
    input
        .services
        .iter()
        .filter_map(|svc| {
            let cfg = svc.config.as_ref()?;
            let conns = &svc.connections;
            let (addrs, server_of_rs) = server_index(Some(cfg), conns, svc.vip.port());
            let out = cfg.servers.iter().any(|s| s.weight == 0) || addrs.len() > cfg.servers.len();
            if !out {
                return None;
            }
            let inp = replay_input(cfg, svc, conns, (&addrs, &server_of_rs), input);
            Some(crate::checks::drain::ServicePlacements {
                name: input::service_label(svc.vip, svc.mark),
                udp: svc.proto == Proto::Udp,
                scheduler: cfg.scheduler.name(),
                persistence_s: cfg.persistence_s,
                servers: cfg.servers.iter().map(|s| (s.addr, s.weight)).collect(),
                placements: replay::placements::placements(&inp),
            })
        })
        .collect()
}

/// What the replay reads of a service: its configuration and connections, the servers
/// ([`server_index`]), and the capture's timeouts and span.
fn replay_input<'a, C>(
    cfg: &'a ServiceConfig,
    svc: &ServiceObs<C>,
    conns: &'a ConnTable,
    (addrs, server_of_rs): (&'a [SocketAddr], &'a [Option<usize>]),
    input: &'a FairnessInput<C>,
) -> replay::ReplayInput<'a> {
    replay::ReplayInput {
        cfg,
        proto: svc.proto,
        vip: svc.vip,
        conns,
        server_of_rs,
        server_addrs: addrs,
        timeouts: &input.timeouts,
        capture_span: input.capture_span,
    }
}

/// The servers of a service: the configured ones first, in the configuration's order, then
/// any other server that got traffic (by address, on the service's port); and where each real
/// server of `conns` ([`ConnTable::servers`]) is among them.
fn server_index(
    cfg: Option<&ServiceConfig>,
    conns: &ConnTable,
    port: u16,
) -> (Vec<SocketAddr>, Vec<Option<usize>>) {
    let mut addrs: Vec<SocketAddr> = cfg
        .map(|c| c.servers.iter().map(|s| s.addr).collect())
        .unwrap_or_default();
    let mut extra: Vec<IpAddr> = conns
        .servers()
        .iter()
        .map(|s| s.addr)
        .filter(|ip| !addrs.iter().any(|a| a.ip() == *ip))
        .collect();
    extra.sort();
    extra.dedup();
    addrs.extend(extra.iter().map(|&ip| SocketAddr::new(ip, port)));
    let server_of_rs = conns
        .servers()
        .iter()
        .map(|s| addrs.iter().position(|a| a.ip() == s.addr))
        .collect();
    (addrs, server_of_rs)
}

/// The share of connections each configured server should get, when the scheduler
/// promises one. Over many connections every spreading scheduler converges to the weights
/// (or to equal shares for the unweighted ones); sh promises the share of hash buckets.
fn promised_shares(cfg: &ServiceConfig, notes: &mut Vec<String>) -> Option<Vec<f64>> {
    let w: Vec<f64> = cfg.servers.iter().map(|s| f64::from(s.weight)).collect();
    let live = w.iter().filter(|&&x| x > 0.0).count();
    if live == 0 {
        notes.push("every configured weight is 0: the service accepts no new connection".into());
        return None;
    }
    let shares: Vec<f64> = match cfg.scheduler {
        Scheduler::Rr | Scheduler::Lc => w
            .iter()
            .map(|&x| if x > 0.0 { 1.0 / live as f64 } else { 0.0 })
            .collect(),
        Scheduler::Sh | Scheduler::Mh => {
            // Table slots: sh gives a server with weight w that many consecutive buckets per
            // round, mh `turns` slots per round; the list order does not change the totals.
            let table: Vec<Option<usize>> = if cfg.scheduler == Scheduler::Sh {
                let weights: Vec<u32> = cfg.servers.iter().map(|s| s.weight).collect();
                sched::Sh::new(&weights, false, false).table().to_vec()
            } else {
                let dests: Vec<(IpAddr, u16, u32)> = cfg
                    .servers
                    .iter()
                    .map(|s| (s.addr.ip(), s.addr.port(), s.weight))
                    .collect();
                sched::Mh::new(&dests, false, false).table().to_vec()
            };
            let mut slots = vec![0f64; w.len()];
            for d in table.iter().flatten() {
                slots[*d] += 1.0;
            }
            for (b, &x) in slots.iter_mut().zip(&w) {
                if x == 0.0 {
                    *b = 0.0;
                }
            }
            let total: f64 = slots.iter().sum();
            notes.push(format!(
                "{} assigns clients, not connections: the promised shares hold over many \
                 distinct clients, and the chi-square test treats connections as independent, \
                 which they are not",
                cfg.scheduler
            ));
            slots.iter().map(|b| b / total).collect()
        }
        Scheduler::Dh | Scheduler::Fo => {
            notes.push(format!(
                "{} sends all new connections to one server by design: no share is promised",
                cfg.scheduler
            ));
            return None;
        }
        Scheduler::Lblc | Scheduler::Lblcr => {
            notes.push(format!(
                "{} keeps each destination address (in tunnel mode, the VIP) on one server \
                 (lblcr: a set that grows) until it is overloaded: no share is promised",
                cfg.scheduler
            ));
            return None;
        }
        Scheduler::Ovf => {
            notes.push("ovf fills the heaviest server first: no share is promised".into());
            return None;
        }
        _ => {
            let total: f64 = w.iter().sum();
            w.iter().map(|x| x / total).collect()
        }
    };
    if cfg.persistence_s.is_some() {
        notes.push(
            "persistence sends each client's connections to one server: shares of connections \
             follow the weights only over many clients, and the chi-square test is indicative"
                .into(),
        );
    }
    Some(shares)
}

fn fairness_stats(
    servers: &[ServerStats],
    cfg: Option<&ServiceConfig>,
    promised: Option<&[f64]>,
    n_cfg: usize,
) -> FairnessStats {
    let mut out = FairnessStats::default();
    // Connections per unit of weight, over the servers meant to take load.
    let normalised: Vec<f64> = match (cfg, promised) {
        (Some(_), Some(p)) => servers
            .iter()
            .take(n_cfg)
            .zip(p)
            .filter(|(_, &share)| share > 0.0)
            .map(|(s, &share)| s.connections as f64 / share)
            .collect(),
        _ => {
            if !servers.is_empty() {
                out.notes.push(
                    "no promised shares: Jain's index and the max/min ratio compare raw \
                     connection counts as if all weights were equal"
                        .into(),
                );
            }
            servers.iter().map(|s| s.connections as f64).collect()
        }
    };
    out.jain = stats::jain(&normalised);
    // Load where none was promised (a server outside the configuration, or of weight 0) is
    // load the promised servers did not get: among the promised servers alone it would not
    // show, so the index is scaled by the share of connections that went to them.
    if let (Some(_), Some(p)) = (cfg, promised) {
        let total: u64 = servers.iter().map(|s| s.connections).sum();
        let promised_load: u64 = servers
            .iter()
            .take(n_cfg)
            .zip(p)
            .filter(|(_, &share)| share > 0.0)
            .map(|(s, _)| s.connections)
            .sum();
        if total > promised_load {
            let fraction = promised_load as f64 / total as f64;
            out.jain = Some(out.jain.map_or(0.0, |j| j * fraction));
            out.notes.push(format!(
                "{} of {total} connections went to servers promised no load: Jain's index is \
                 scaled by the {:.1}% that went where load was promised",
                total - promised_load,
                fraction * 100.0
            ));
        }
    }
    out.max_min_ratio = stats::max_min_ratio(&normalised);
    if out.max_min_ratio.is_none() && !normalised.is_empty() {
        out.notes
            .push("a server meant to take load got no connection: max/min is infinite".into());
    }
    if let Some(p) = promised {
        let observed: Vec<u64> = servers.iter().map(|s| s.connections).collect();
        let mut shares = p.to_vec();
        shares.resize(servers.len(), 0.0);
        out.chi_square = stats::chi_square(&observed, &shares);
        match &out.chi_square {
            Some(c) if c.too_few => out.notes.push(format!(
                "too few connections for the chi-square test to mean much (smallest expected \
                 count {:.1} < {})",
                c.min_expected,
                stats::MIN_EXPECTED
            )),
            None => out
                .notes
                .push("chi-square test not applicable (fewer than two servers with a share, or no connection)".into()),
            _ => {}
        }
    }
    out
}

/// Connections per server in [`DRIFT_WINDOWS`] windows of the capture; `assigned` gives each
/// attributed connection's (first packet time, server), in any order.
fn drift<I: Iterator<Item = (i64, usize)>>(
    assigned: impl Fn() -> I,
    n: usize,
    span: Option<(i64, i64)>,
    promised: Option<&[f64]>,
) -> Drift {
    let (start, end) = match span {
        Some(s) => s,
        None => assigned()
            .map(|(t, _)| (t, t))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            .unwrap_or((0, 0)),
    };
    let window_ns = ((end - start) / DRIFT_WINDOWS).max(1_000_000_000);
    let count = ((end - start + window_ns - 1) / window_ns).max(1) as usize;
    let mut windows: Vec<Window> = (0..count)
        .map(|k| Window {
            start_ns: start + k as i64 * window_ns,
            counts: vec![0; n],
        })
        .collect();
    for (time_ns, server) in assigned() {
        let k = ((time_ns - start).max(0) / window_ns) as usize;
        windows[k.min(count - 1)].counts[server] += 1;
    }
    let mut largest: Option<DriftPeak> = None;
    if let Some(promised) = promised {
        for (w, win) in windows.iter().enumerate() {
            let total: u64 = win.counts.iter().sum();
            if total < MIN_WINDOW_CONNS {
                continue;
            }
            for (server, (&c, &p)) in win.counts.iter().zip(promised).enumerate() {
                let share = c as f64 / total as f64;
                if largest
                    .as_ref()
                    .is_none_or(|l| (share - p).abs() > (l.share - l.promised).abs())
                {
                    largest = Some(DriftPeak {
                        window: w,
                        server,
                        share,
                        promised: p,
                        connections: total,
                    });
                }
            }
        }
    }
    Drift {
        window_ns,
        windows,
        largest,
    }
}
