//! Conformance: replay the configured scheduler over the observed arrivals.
//!
//! The replay walks new connections in the order the director saw their first packet and,
//! for each, works out what the kernel did before asking the scheduler (`ip_vs_in` and
//! `ip_vs_sched_persist` in ip_vs_core.c):
//! - a SYN whose client address and port match a live entry reuses it unless that entry is
//!   in TIME_WAIT and not controlled by a template (`is_new_conn_expected`, conn_reuse_mode 1);
//! - on a persistent service a live template for the client (masked) decides, and the
//!   scheduler is not called; a template lives `-p` seconds after its last use and, while
//!   connections it controls are alive, is pushed back 60 s at a time (`ip_vs_conn_expire`);
//! - otherwise the scheduler runs, with counters rebuilt from every earlier entry (see
//!   `entry`) and attributed to the server each connection was really sent to.
//!
//! Everything that does not depend on the list order (counters, templates, reuse) is worked
//! out once; then each candidate list order runs the scheduler model over the decisions. A
//! stateful model (rr, wrr) is re-aligned on the director's choice after a mismatch, so one
//! disagreement counts once instead of shifting every later prediction.

use super::entry::{EntryLife, TcpState};
use super::input::{ConnObs, Proto, Scheduler, ServiceConfig, Timeouts};
use super::outcome::{Conformance, Mismatch, Unpredicted, Verdict};
use super::sched::{self, dh_bucket, sh_bucket, Ctx, Load};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

const NS: i64 = 1_000_000_000;
/// How many mismatches are kept as evidence.
pub const EVIDENCE: usize = 10;
/// Largest server count for which every list order is tried (5! = 120 runs).
const MAX_PERMUTED: usize = 5;

pub struct ReplayInput<'a> {
    pub cfg: &'a ServiceConfig,
    pub proto: Proto,
    pub vip: SocketAddr,
    pub conns: &'a [ConnObs],
    /// Server index (into `server_addrs`) of each connection; indices below
    /// `cfg.servers.len()` are the configured servers, in the configuration's order.
    pub server_of: &'a [Option<usize>],
    pub server_addrs: &'a [SocketAddr],
    pub timeouts: &'a Timeouts,
    pub capture_span: Option<(i64, i64)>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Started before the capture: no decision seen.
    BeforeCapture,
    /// Same client address and port as a live entry: the kernel reused that entry.
    Reused {
        server: Option<usize>,
        state: TcpState,
    },
    /// A persistence template chose the server.
    Persisted {
        server: Option<usize>,
        since_ns: i64,
    },
    /// The scheduler ran, with these counters per configured server.
    Scheduled { loads: Vec<Load> },
}

struct Decision {
    conn: usize,
    time_ns: i64,
    kind: Kind,
}

struct Template {
    server: Option<usize>,
    created_ns: i64,
    timeout_ns: i64,
    expires_ns: i64,
    /// Latest expiry among the connections it controls.
    controlled_until: i64,
}

impl Template {
    /// Whether the template still exists at `t`, following `ip_vs_conn_expire`: a template
    /// that still controls connections when its timer fires is re-armed for 60 s, and that
    /// 60 s becomes its timeout for later uses too.
    fn alive_at(&mut self, t: i64) -> bool {
        while self.expires_ns <= t {
            if self.controlled_until > self.expires_ns {
                self.timeout_ns = 60 * NS;
                self.expires_ns += 60 * NS;
            } else {
                return false;
            }
        }
        true
    }
}

fn masked(addr: IpAddr, prefix: Option<u8>) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let p = u32::from(prefix.unwrap_or(32).min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let p = u32::from(prefix.unwrap_or(128).min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Works out, once, what kind of decision each new connection was.
fn decisions(inp: &ReplayInput) -> Vec<Decision> {
    let n_cfg = inp.cfg.servers.len();
    let lives: Vec<EntryLife> = inp
        .conns
        .iter()
        .map(|c| EntryLife::from_conn(c, inp.proto, inp.timeouts))
        .collect();
    let mut order: Vec<usize> = (0..inp.conns.len()).collect();
    order.sort_by_key(|&i| (lives[i].created_ns, i));

    let mut changes: Vec<(i64, usize, i32, i32)> = Vec::new();
    for (i, life) in lives.iter().enumerate() {
        if let Some(s) = inp.server_of[i].filter(|&s| s < n_cfg) {
            changes.extend(
                life.counter_changes()
                    .into_iter()
                    .map(|(t, a, b)| (t, s, a, b)),
            );
        }
    }
    changes.sort_by_key(|c| c.0);

    let mut counters = vec![(0i64, 0i64); n_cfg];
    let mut next_change = 0;
    let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
    let mut controlled = vec![false; inp.conns.len()];
    let mut templates: HashMap<IpAddr, Template> = HashMap::new();
    let mut out = Vec::with_capacity(order.len());

    for &i in &order {
        let t = lives[i].created_ns;
        while next_change < changes.len() && changes[next_change].0 < t {
            let (_, s, a, b) = changes[next_change];
            counters[s].0 += i64::from(a);
            counters[s].1 += i64::from(b);
            next_change += 1;
        }
        let client = inp.conns[i].client;
        let previous = by_client.insert(client, i);
        if !lives[i].scheduled {
            out.push(Decision {
                conn: i,
                time_ns: t,
                kind: Kind::BeforeCapture,
            });
            continue;
        }
        if let Some(j) = previous {
            if let Some(state) = lives[j].state_at(t) {
                let reuse = inp.proto == Proto::Udp || state != TcpState::TimeWait || controlled[j];
                if reuse {
                    controlled[i] = controlled[j];
                    out.push(Decision {
                        conn: i,
                        time_ns: t,
                        kind: Kind::Reused {
                            server: inp.server_of[j],
                            state,
                        },
                    });
                    continue;
                }
            }
        }
        if let Some(p) = inp.cfg.persistence_s {
            let key = masked(client.ip(), inp.cfg.netmask_prefix);
            if let Some(tpl) = templates.get_mut(&key) {
                if tpl.alive_at(t) {
                    // A template whose server we never saw learns it from the first
                    // connection that shows one.
                    if tpl.server.is_none() {
                        tpl.server = inp.server_of[i];
                    }
                    let kind = Kind::Persisted {
                        server: tpl.server,
                        since_ns: tpl.created_ns,
                    };
                    tpl.expires_ns = t + tpl.timeout_ns;
                    tpl.controlled_until = tpl.controlled_until.max(lives[i].expires_ns);
                    controlled[i] = true;
                    out.push(Decision {
                        conn: i,
                        time_ns: t,
                        kind,
                    });
                    continue;
                }
            }
            let timeout_ns = i64::from(p) * NS;
            templates.insert(
                key,
                Template {
                    server: inp.server_of[i],
                    created_ns: t,
                    timeout_ns,
                    expires_ns: t + timeout_ns,
                    controlled_until: lives[i].expires_ns,
                },
            );
            controlled[i] = true;
        }
        let loads = counters
            .iter()
            .map(|&(a, b)| Load {
                active: a.max(0) as u32,
                inactive: b.max(0) as u32,
            })
            .collect();
        out.push(Decision {
            conn: i,
            time_ns: t,
            kind: Kind::Scheduled { loads },
        });
    }
    out
}

/// Result of running one list order.
struct Run {
    matched: u64,
    mismatched: u64,
    verdicts: Vec<(usize, Verdict)>,
    evidence: Vec<Mismatch>,
}

/// Decisions looked ahead when choosing how to re-align a model after a mismatch.
const LOOKAHEAD: usize = 20;
/// Re-alignments by lookahead per run; later mismatches use the model's own `resync`.
const MAX_REALIGN: usize = 1000;

/// The model's prediction (a server index) for one scheduled decision.
fn predict(
    model: &mut dyn sched::Model,
    inp: &ReplayInput,
    d: &Decision,
    perm: &[usize],
) -> Option<usize> {
    let Kind::Scheduled { loads } = &d.kind else {
        return None;
    };
    let list_loads: Vec<Load> = perm.iter().map(|&id| loads[id]).collect();
    let ctx = Ctx {
        now_ns: d.time_ns,
        client: inp.conns[d.conn].client,
        vip: inp.vip,
        loads: &list_loads,
    };
    model.schedule(&ctx).map(|p| perm[p])
}

/// How many of the next decisions a model reproduces (re-aligning plainly on mismatches).
fn lookahead(
    mut model: Box<dyn sched::Model>,
    inp: &ReplayInput,
    rest: &[&Decision],
    perm: &[usize],
    pos_of: &[usize],
) -> usize {
    let mut score = 0;
    for d in rest.iter().take(LOOKAHEAD) {
        let predicted = predict(&mut *model, inp, d, perm);
        match inp.server_of[d.conn] {
            Some(o) if predicted == Some(o) => score += 1,
            Some(o) if o < pos_of.len() => model.resync(pos_of[o]),
            _ => {}
        }
    }
    score
}

/// After a mismatch, picks the model state to continue from: the model's own `resync`, or
/// any starting state that would have made the director's choice, whichever reproduces
/// more of the next decisions (the plain resync wins ties). A missed or extra decision
/// then costs one mismatch instead of a run of them.
#[allow(clippy::too_many_arguments)]
fn realign(
    model: &mut Box<dyn sched::Model>,
    base: &dyn sched::Model,
    inp: &ReplayInput,
    d: &Decision,
    rest: &[&Decision],
    perm: &[usize],
    pos_of: &[usize],
    observed: usize,
) {
    let mut best = model.box_clone();
    best.resync(pos_of[observed]);
    let mut best_score = lookahead(best.box_clone(), inp, rest, perm, pos_of);
    for k in 0..base.start_states() {
        let mut m = base.box_clone();
        m.set_start_state(k);
        if predict(&mut *m, inp, d, perm) != Some(observed) {
            continue;
        }
        let score = lookahead(m.box_clone(), inp, rest, perm, pos_of);
        if score > best_score {
            best = m;
            best_score = score;
        }
    }
    *model = best;
}

fn run_order(
    inp: &ReplayInput,
    decisions: &[Decision],
    perm: &[usize],
    start: usize,
    record: bool,
) -> Result<Run, String> {
    let base = model_for(inp, perm)?;
    let mut model = base.box_clone();
    model.set_start_state(start);
    let cfg = inp.cfg;
    let mut pos_of = vec![usize::MAX; cfg.servers.len()];
    for (pos, &id) in perm.iter().enumerate() {
        pos_of[id] = pos;
    }
    let mut run = Run {
        matched: 0,
        mismatched: 0,
        verdicts: Vec::new(),
        evidence: Vec::new(),
    };
    let scheduled: Vec<&Decision> = decisions
        .iter()
        .filter(|d| matches!(d.kind, Kind::Scheduled { .. }))
        .collect();
    let mut previous: Option<usize> = None;
    let mut realigned = 0;
    for (i, d) in scheduled.iter().enumerate() {
        let Kind::Scheduled { loads } = &d.kind else {
            continue;
        };
        let conn = &inp.conns[d.conn];
        let predicted = predict(&mut *model, inp, d, perm);
        let observed = inp.server_of[d.conn];
        let verdict = match observed {
            None => Verdict::Unchecked,
            Some(o) if predicted == Some(o) => Verdict::Matched,
            Some(o) => {
                if o < cfg.servers.len() {
                    // The costly search only for the reported run: the order search ranks
                    // candidates with the plain resync.
                    if record && realigned < MAX_REALIGN && base.start_states() > 1 {
                        realigned += 1;
                        realign(
                            &mut model,
                            &*base,
                            inp,
                            d,
                            &scheduled[i + 1..],
                            perm,
                            &pos_of,
                            o,
                        );
                    } else {
                        model.resync(pos_of[o]);
                    }
                }
                Verdict::Mismatched
            }
        };
        match verdict {
            Verdict::Matched => run.matched += 1,
            Verdict::Mismatched => {
                run.mismatched += 1;
                if record && run.evidence.len() < EVIDENCE {
                    let list_loads: Vec<Load> = perm.iter().map(|&id| loads[id]).collect();
                    let ctx = Ctx {
                        now_ns: d.time_ns,
                        client: conn.client,
                        vip: inp.vip,
                        loads: &list_loads,
                    };
                    run.evidence.push(Mismatch {
                        time_ns: d.time_ns,
                        client: conn.client,
                        expected: predicted.map(|p| inp.server_addrs[p]),
                        observed: observed.map(|o| inp.server_addrs[o]),
                        evidence: evidence(inp, loads, &ctx, previous, observed),
                    });
                }
            }
            Verdict::Unchecked => {}
        }
        if record {
            run.verdicts.push((d.conn, verdict));
        }
        if observed.is_some() {
            previous = observed;
        }
    }
    Ok(run)
}

fn model_for(inp: &ReplayInput, perm: &[usize]) -> Result<Box<dyn sched::Model>, String> {
    let cfg = inp.cfg;
    let dests: Vec<(SocketAddr, u32)> = perm
        .iter()
        .map(|&id| (cfg.servers[id].addr, cfg.servers[id].weight))
        .collect();
    sched::build(cfg.scheduler, &dests, cfg.sh_port, false)
}

/// Upper bound on model steps spent searching orders and starting states.
const SEARCH_BUDGET: usize = 20_000_000;

/// The best (list order, starting state) by matched decisions, preferring the fresh
/// state, then earlier candidates; with the number of other pairs that score the same.
struct Best {
    perm: usize,
    start: usize,
    matched: u64,
    ties: usize,
}

fn search(
    inp: &ReplayInput,
    decisions: &[Decision],
    candidates: &[Vec<usize>],
) -> Result<Option<Best>, String> {
    let steps = decisions
        .iter()
        .filter(|d| matches!(d.kind, Kind::Scheduled { .. }))
        .count()
        .max(1);
    let states = model_for(inp, &candidates[0])?.start_states();
    let full = candidates.len() * states * steps <= SEARCH_BUDGET;
    let mut best: Option<Best> = None;
    let consider = |best: &mut Option<Best>, perm: usize, start: usize, matched: u64| {
        let key = (matched, start == 0);
        match best {
            Some(b) if key < (b.matched, b.start == 0) => {}
            Some(b) if key == (b.matched, b.start == 0) => b.ties += 1,
            _ => {
                *best = Some(Best {
                    perm,
                    start,
                    matched,
                    ties: 0,
                })
            }
        }
    };
    for (k, perm) in candidates.iter().enumerate() {
        let range = if full { 0..states } else { 0..1 };
        for start in range {
            let run = run_order(inp, decisions, perm, start, false)?;
            consider(&mut best, k, start, run.matched);
        }
    }
    // Too many pairs to try them all: look for a starting state on the best order only.
    if !full && states * steps <= SEARCH_BUDGET {
        if let Some(k) = best.as_ref().map(|b| b.perm) {
            for start in 1..states {
                let run = run_order(inp, decisions, &candidates[k], start, false)?;
                consider(&mut best, k, start, run.matched);
            }
        }
    }
    Ok(best)
}

/// What the model based its choice on, in words.
fn evidence(
    inp: &ReplayInput,
    loads: &[Load],
    ctx: &Ctx,
    previous: Option<usize>,
    observed: Option<usize>,
) -> String {
    let n_cfg = inp.cfg.servers.len();
    let mut parts = Vec::new();
    if observed.is_some_and(|o| o >= n_cfg) {
        parts.push("the director chose a server that is not in the configuration".to_string());
    }
    match inp.cfg.scheduler {
        Scheduler::Rr | Scheduler::Wrr => parts.push(match previous {
            Some(p) => format!("previous connection went to {}", inp.server_addrs[p].ip()),
            None => "first decision in the capture".to_string(),
        }),
        Scheduler::Sh => {
            let port = if inp.cfg.sh_port {
                ctx.client.port()
            } else {
                0
            };
            parts.push(format!(
                "client hashes to bucket {} of 256",
                sh_bucket(ctx.client.ip(), port, 0)
            ));
        }
        Scheduler::Dh => parts.push(format!(
            "VIP hashes to bucket {} of 256",
            dh_bucket(ctx.vip.ip())
        )),
        _ => {
            let list: Vec<String> = loads
                .iter()
                .enumerate()
                .map(|(id, l)| format!("{} {}/{}", inp.server_addrs[id].ip(), l.active, l.inactive))
                .collect();
            parts.push(format!("active/inactive entries: {}", list.join(", ")));
        }
    }
    parts.join("; ")
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn rec(prefix: &mut Vec<usize>, left: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left.is_empty() {
            out.push(prefix.clone());
            return;
        }
        for k in 0..left.len() {
            let x = left.remove(k);
            prefix.push(x);
            rec(prefix, left, out);
            prefix.pop();
            left.insert(k, x);
        }
    }
    let mut out = Vec::new();
    rec(&mut Vec::new(), &mut (0..n).collect(), &mut out);
    out
}

/// Servers in the order their first scheduled connection appeared, then the rest.
fn first_appearance(inp: &ReplayInput, decisions: &[Decision]) -> Vec<usize> {
    let n = inp.cfg.servers.len();
    let mut seen = Vec::new();
    for d in decisions {
        if let (Kind::Scheduled { .. }, Some(s)) = (&d.kind, inp.server_of[d.conn]) {
            if s < n && !seen.contains(&s) {
                seen.push(s);
            }
        }
    }
    seen.extend((0..n).filter(|s| !seen.contains(s)).collect::<Vec<_>>());
    seen
}

fn scheduler_notes(s: Scheduler, fresh: bool) -> Option<String> {
    match s {
        Scheduler::Rr | Scheduler::Wrr if fresh => Some(format!(
            "{s} keeps a pointer the captures cannot show: the replay starts as if the service \
             had just been built (ipvsadm -A, then -a per server, or -R) and, after any \
             mismatch, continues from the server the director really chose"
        )),
        Scheduler::Lc | Scheduler::Wlc | Scheduler::Sed | Scheduler::Nq | Scheduler::Ovf => {
            Some(format!(
                "{s} reads the active/inactive counters; they are rebuilt from the captured \
                 client packets (INPUT-ONLY state table, entry timers), so entries for clients \
                 that were not captured, or that were idle for the whole capture, are not \
                 counted"
            ))
        }
        _ => None,
    }
}

/// Replays the configured scheduler; returns the conformance summary and a verdict per
/// connection (Unchecked for those that were not scheduling decisions).
pub fn replay(inp: &ReplayInput) -> (Conformance, Vec<Verdict>) {
    let cfg = inp.cfg;
    let n = cfg.servers.len();
    let decisions = decisions(inp);
    let mut verdicts = vec![Verdict::Unchecked; inp.conns.len()];
    let mut limitations = Vec::new();

    // Candidate list orders.
    let given: Vec<usize> = (0..n).collect();
    let (candidates, how) = if cfg.order_known || n <= 1 {
        (vec![given.clone()], None)
    } else if n <= MAX_PERMUTED {
        (
            permutations(n),
            Some(format!("all {} possible orders", permutations(n).len())),
        )
    } else {
        (
            vec![given.clone(), first_appearance(inp, &decisions)],
            Some("the given order and the order of first assignments".to_string()),
        )
    };
    let searched = search(inp, &decisions, &candidates);

    let mut conformance = Conformance {
        scheduler: cfg.scheduler,
        replayed: false,
        order: given.iter().map(|&i| cfg.servers[i].addr).collect(),
        order_source: String::new(),
        decisions: 0,
        matched: 0,
        persistent: 0,
        persistent_matched: 0,
        not_predicted: Vec::new(),
        first_mismatches: Vec::new(),
        mismatches: 0,
        limitations: Vec::new(),
    };

    match searched {
        Err(why) => {
            conformance.order_source = "not replayed".into();
            limitations.push(why);
        }
        Ok(None) => {}
        Ok(Some(b)) => {
            conformance.replayed = true;
            let perm = &candidates[b.perm];
            conformance.order = perm.iter().map(|&i| cfg.servers[i].addr).collect();
            let tie_note = if b.ties > 0 {
                format!(
                    "; {} other candidate(s) matched as many, so this capture does not pin the \
                     order down",
                    b.ties
                )
            } else {
                String::new()
            };
            // The search already built this model, so it cannot fail here.
            if let Ok(run) = run_order(inp, &decisions, perm, b.start, true) {
                conformance.matched = run.matched;
                conformance.mismatches = run.mismatched;
                conformance.first_mismatches = run.evidence;
                for (conn, v) in run.verdicts {
                    verdicts[conn] = v;
                }
            }
            conformance.order_source = match &how {
                None if cfg.order_known => format!("kernel order given{tie_note}"),
                None => format!("single server{tie_note}"),
                Some(how) => format!(
                    "kernel order unknown (rules list servers sorted); tried {how} and kept \
                     the best, which matched {} decisions{tie_note}",
                    conformance.matched
                ),
            };
            if let Some(note) = scheduler_notes(cfg.scheduler, true) {
                limitations.push(note);
            }
            if b.start != 0 {
                let names: Vec<String> = perm
                    .iter()
                    .map(|&i| cfg.servers[i].addr.ip().to_string())
                    .collect();
                if let Ok(model) = model_for(inp, perm) {
                    limitations.push(format!(
                        "the capture does not begin with a freshly built service: the closest \
                         agreement starts from {}",
                        model.describe_start_state(b.start, &names)
                    ));
                }
            }
        }
    }

    let mut not_predicted: Vec<(String, u64)> = Vec::new();
    let mut bump = |reason: String| match not_predicted.iter_mut().find(|(r, _)| *r == reason) {
        Some(e) => e.1 += 1,
        None => not_predicted.push((reason, 1)),
    };

    for d in &decisions {
        let observed = inp.server_of[d.conn];
        match &d.kind {
            Kind::Scheduled { .. } => {
                if observed.is_some() {
                    conformance.decisions += 1;
                } else {
                    bump("scheduled, but no tunnelled packet shows which server got it".into());
                }
            }
            Kind::BeforeCapture => bump(
                "started before the capture (no SYN seen), so the decision is not in it".into(),
            ),
            Kind::Reused { server, state } => {
                let reason = format!(
                    "same client address and port as a live entry ({state:?}): the kernel \
                     reused it instead of scheduling"
                );
                match (server, observed) {
                    (Some(s), Some(o)) if s != &o => {
                        conformance.mismatches += 1;
                        verdicts[d.conn] = Verdict::Mismatched;
                        if conformance.first_mismatches.len() < EVIDENCE {
                            conformance.first_mismatches.push(Mismatch {
                                time_ns: d.time_ns,
                                client: inp.conns[d.conn].client,
                                expected: Some(inp.server_addrs[*s]),
                                observed: Some(inp.server_addrs[o]),
                                evidence: reason.clone(),
                            });
                        }
                    }
                    _ => {}
                }
                bump(reason);
            }
            Kind::Persisted { server, since_ns } => match (server, observed) {
                (Some(s), Some(o)) => {
                    conformance.persistent += 1;
                    if *s == o {
                        conformance.persistent_matched += 1;
                        verdicts[d.conn] = Verdict::Matched;
                    } else {
                        conformance.mismatches += 1;
                        verdicts[d.conn] = Verdict::Mismatched;
                        if conformance.first_mismatches.len() < EVIDENCE {
                            conformance.first_mismatches.push(Mismatch {
                                time_ns: d.time_ns,
                                client: inp.conns[d.conn].client,
                                expected: Some(inp.server_addrs[*s]),
                                observed: Some(inp.server_addrs[o]),
                                evidence: format!(
                                    "persistence template for {} created {:.3} s earlier \
                                     still alive",
                                    masked(inp.conns[d.conn].client.ip(), cfg.netmask_prefix),
                                    (d.time_ns - since_ns) as f64 / 1e9
                                ),
                            });
                        }
                    }
                }
                _ => bump("sent by a persistence template whose server was never seen".into()),
            },
        }
    }
    conformance.first_mismatches.sort_by_key(|m| m.time_ns);
    conformance.first_mismatches.truncate(EVIDENCE);
    conformance.not_predicted = not_predicted
        .into_iter()
        .map(|(reason, count)| Unpredicted { reason, count })
        .collect();

    // What the captures cannot show.
    if cfg.persistence_s.is_some() {
        limitations.push(
            "persistence templates made before the capture are not known: a client's first \
             connection in the capture is treated as a scheduling decision"
                .into(),
        );
    }
    if let Some((start, _)) = inp.capture_span {
        if matches!(
            cfg.scheduler,
            Scheduler::Lc | Scheduler::Wlc | Scheduler::Sed | Scheduler::Nq | Scheduler::Ovf
        ) {
            let window = i64::from(inp.timeouts.tcp_established_s) * NS;
            let early = verdicts
                .iter()
                .zip(inp.conns)
                .filter(|(v, c)| **v == Verdict::Mismatched && c.start_ns < start + window)
                .count();
            if early > 0 {
                limitations.push(format!(
                    "{early} mismatch(es) fall in the first {} s of the capture, when entries \
                     from before it (ESTABLISHED up to {} s, FIN_WAIT up to {} s after their \
                     last packet) still counted in the kernel but are invisible here",
                    window / NS,
                    inp.timeouts.tcp_established_s,
                    inp.timeouts.tcp_fin_wait_s
                ));
            }
        }
    }
    let unseen = inp.server_of.iter().filter(|s| s.is_none()).count();
    if unseen > 0
        && matches!(
            cfg.scheduler,
            Scheduler::Lc | Scheduler::Wlc | Scheduler::Sed | Scheduler::Nq | Scheduler::Ovf
        )
    {
        limitations.push(format!(
            "{unseen} connection(s) with no observed server are missing from the rebuilt \
             counters, which can tip close decisions"
        ));
    }
    limitations.push(
        "weights, the server set and overload thresholds are assumed constant for the whole \
         capture"
            .into(),
    );
    if let Some(note) = change_point(&decisions, &verdicts) {
        limitations.push(note);
    }
    conformance.limitations = limitations;
    (conformance, verdicts)
}

/// Looks for a moment after which the replay stops agreeing with the director, which is
/// what a weight edit or a server added or removed mid-capture looks like.
fn change_point(decisions: &[Decision], verdicts: &[Verdict]) -> Option<String> {
    let checked: Vec<(i64, bool)> = decisions
        .iter()
        .filter_map(|d| match verdicts[d.conn] {
            Verdict::Matched => Some((d.time_ns, true)),
            Verdict::Mismatched => Some((d.time_ns, false)),
            Verdict::Unchecked => None,
        })
        .collect();
    const SIDE: usize = 10;
    if checked.len() < 2 * SIDE {
        return None;
    }
    let total_ok = checked.iter().filter(|c| c.1).count();
    let mut ok_before = 0;
    let mut best: Option<(usize, f64, f64)> = None;
    for k in 0..checked.len() {
        if k >= SIDE && checked.len() - k >= SIDE {
            let before = ok_before as f64 / k as f64;
            let after = (total_ok - ok_before) as f64 / (checked.len() - k) as f64;
            if before >= 0.9 && after <= 0.5 && best.is_none_or(|b| before - after > b.1 - b.2) {
                best = Some((k, before, after));
            }
        }
        if checked[k].1 {
            ok_before += 1;
        }
    }
    best.map(|(k, before, after)| {
        format!(
            "from {:.3} s on, the replay agrees with {:.0}% of decisions against {:.0}% before: \
             consistent with a configuration change at about that time (weight edit, server \
             added or removed, threshold reached), which the captures cannot show",
            checked[k].0 as f64 / 1e9,
            after * 100.0,
            before * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_client_addresses() {
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), Some(24)),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), None),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("2001:db8::1".parse().unwrap(), Some(64)),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn permutations_cover_every_order_once() {
        let p = permutations(4);
        assert_eq!(p.len(), 24);
        let mut q = p.clone();
        q.sort();
        q.dedup();
        assert_eq!(q.len(), 24);
        assert_eq!(p[0], vec![0, 1, 2, 3]);
    }

    #[test]
    fn template_is_pushed_back_while_it_controls_connections() {
        let mut t = Template {
            server: Some(0),
            created_ns: 0,
            timeout_ns: 10 * NS,
            expires_ns: 10 * NS,
            controlled_until: 75 * NS,
        };
        // Fires at 10 s with a live connection: 70 s, then 130 s (the connection is gone at 75).
        assert!(t.alive_at(100 * NS));
        assert_eq!(t.expires_ns, 130 * NS);
        assert_eq!(t.timeout_ns, 60 * NS);
        assert!(!t.alive_at(130 * NS));
    }
}
