//! Running a scheduler model over the decisions: for one list order and starting state,
//! searching the candidates, re-aligning after a mismatch, and the evidence kept for each
//! mismatch.

use super::arrivals::{Decision, Kind};
use super::{ReplayInput, EVIDENCE};
use crate::fairness::input::Scheduler;
use crate::fairness::outcome::{Mismatch, Verdict};
use crate::fairness::sched::{self, dh_bucket, sh_bucket, Ctx, Load};
use std::net::SocketAddr;

/// Result of running one list order.
pub(super) struct Run {
    pub matched: u64,
    pub mismatched: u64,
    pub verdicts: Vec<(usize, Verdict)>,
    pub evidence: Vec<Mismatch>,
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

pub(super) fn run_order(
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

pub(super) fn model_for(
    inp: &ReplayInput,
    perm: &[usize],
) -> Result<Box<dyn sched::Model>, String> {
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
pub(super) struct Best {
    pub perm: usize,
    pub start: usize,
    pub matched: u64,
    pub ties: usize,
}

pub(super) fn search(
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

pub(super) fn permutations(n: usize) -> Vec<Vec<usize>> {
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
pub(super) fn first_appearance(inp: &ReplayInput, decisions: &[Decision]) -> Vec<usize> {
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
