//! Running a scheduler model over the decisions: for one list order and starting state,
//! searching the candidates, re-aligning after a mismatch, and the evidence kept for each
//! mismatch.

use super::loads::LoadCursor;
use super::plan::Plan;
use super::{ReplayInput, EVIDENCE};
use crate::fairness::input::Scheduler;
use crate::fairness::outcome::{Mismatch, Verdict};
use crate::fairness::sched::{self, dh_bucket, sh_bucket, Ctx, Load};
use rayon::prelude::*;
use std::net::SocketAddr;

/// Result of running one list order.
pub(super) struct Run {
    pub matched: u64,
    pub mismatched: u64,
    pub evidence: Vec<Mismatch>,
}

/// Decisions looked ahead when choosing how to re-align a model after a mismatch.
const LOOKAHEAD: usize = 20;
/// Re-alignments by lookahead per run; later mismatches use the model's own `resync`.
const MAX_REALIGN: usize = 1000;

/// The counters in list order, handed to the model: one buffer per run, refilled per decision.
struct ListLoads<'a> {
    perm: &'a [usize],
    loads: Vec<Load>,
    /// The plan has no load log (rr, wrr, sh, dh): every counter stays at zero, so the buffer
    /// is never refilled. Those are the schedulers whose runs are otherwise cheapest, and the
    /// refill was a third of each prediction.
    all_zero: bool,
}

impl ListLoads<'_> {
    /// The model's prediction (a server index) for the scheduled decision of connection
    /// `conn`, with the counters `counters` shows; and the server the connection went to
    /// (read from the table with what the model needs, in one look-up).
    fn predict(
        &mut self,
        model: &mut dyn sched::Model,
        inp: &ReplayInput,
        conn: usize,
        counters: &LoadCursor,
    ) -> (Option<usize>, Option<usize>) {
        if !self.all_zero {
            for (slot, &id) in self.loads.iter_mut().zip(self.perm) {
                *slot = counters.load(id);
            }
        }
        let (now_ns, client, rs) = inp.conns.decision(conn, inp.proto);
        let ctx = Ctx {
            now_ns,
            client,
            vip: inp.vip,
            loads: &self.loads,
        };
        let observed = rs.and_then(|k| inp.server_of_rs[k]);
        (model.schedule(&ctx).map(|p| self.perm[p]), observed)
    }
}

/// What a run works in, allocated once per run: the counters in list order, the position of
/// each server in the list, and a second cursor for looking ahead.
struct Scratch<'a> {
    list: ListLoads<'a>,
    pos_of: Vec<usize>,
    ahead: LoadCursor<'a>,
}

/// How many of the next decisions (`rest`, from the counters `from` shows) a model reproduces
/// (re-aligning plainly on mismatches).
fn lookahead<'a>(
    mut model: Box<dyn sched::Model>,
    inp: &ReplayInput,
    rest: &[u32],
    from: &LoadCursor<'a>,
    scratch: &mut Scratch<'a>,
) -> usize {
    scratch.ahead.copy_from(from);
    let mut score = 0;
    for &conn in rest.iter().take(LOOKAHEAD) {
        let conn = conn as usize;
        scratch.ahead.next_decision();
        let (predicted, observed) = scratch.list.predict(&mut *model, inp, conn, &scratch.ahead);
        match observed {
            Some(o) if predicted == Some(o) => score += 1,
            Some(o) if o < scratch.pos_of.len() => model.resync(scratch.pos_of[o]),
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
fn realign<'a>(
    model: &mut Box<dyn sched::Model>,
    base: &dyn sched::Model,
    inp: &ReplayInput,
    conn: usize,
    rest: &[u32],
    counters: &LoadCursor<'a>,
    scratch: &mut Scratch<'a>,
    observed: usize,
) {
    let mut best = model.box_clone();
    best.resync(scratch.pos_of[observed]);
    let mut best_score = lookahead(best.box_clone(), inp, rest, counters, scratch);
    for k in 0..base.start_states() {
        let mut m = base.box_clone();
        m.set_start_state(k);
        if scratch.list.predict(&mut *m, inp, conn, counters).0 != Some(observed) {
            continue;
        }
        let score = lookahead(m.box_clone(), inp, rest, counters, scratch);
        if score > best_score {
            best = m;
            best_score = score;
        }
    }
    *model = best;
}

/// Runs the model for list order `perm` from starting state `start` over the scheduled
/// decisions. With `record`, the run is the reported one: mismatches are re-aligned by
/// look-ahead, kept as evidence, and every decision's verdict is written there.
pub(super) fn run_order(
    inp: &ReplayInput,
    plan: &Plan,
    perm: &[usize],
    start: usize,
    mut record: Option<&mut [Verdict]>,
) -> Result<Run, String> {
    let base = model_for(inp, perm)?;
    let mut model = base.box_clone();
    model.set_start_state(start);
    let cfg = inp.cfg;
    let n_cfg = cfg.servers.len();
    let mut pos_of = vec![usize::MAX; n_cfg];
    for (pos, &id) in perm.iter().enumerate() {
        pos_of[id] = pos;
    }
    let mut scratch = Scratch {
        list: ListLoads {
            perm,
            loads: vec![Load::default(); perm.len()],
            all_zero: plan.loads.is_none(),
        },
        pos_of,
        ahead: LoadCursor::new(plan.loads.as_ref(), n_cfg),
    };
    let mut counters = LoadCursor::new(plan.loads.as_ref(), n_cfg);
    let mut run = Run {
        matched: 0,
        mismatched: 0,
        evidence: Vec::new(),
    };
    let mut previous: Option<usize> = None;
    let mut realigned = 0;
    for (i, &conn) in plan.scheduled.iter().enumerate() {
        let conn = conn as usize;
        counters.next_decision();
        let (predicted, observed) = scratch.list.predict(&mut *model, inp, conn, &counters);
        let verdict = match observed {
            None => Verdict::Unchecked,
            Some(o) if predicted == Some(o) => Verdict::Matched,
            Some(o) => {
                if o < n_cfg {
                    // The costly search only for the reported run: the order search ranks
                    // candidates with the plain resync.
                    if record.is_some() && realigned < MAX_REALIGN && base.start_states() > 1 {
                        realigned += 1;
                        realign(
                            &mut model,
                            &*base,
                            inp,
                            conn,
                            &plan.scheduled[i + 1..],
                            &counters,
                            &mut scratch,
                            o,
                        );
                    } else {
                        model.resync(scratch.pos_of[o]);
                    }
                }
                Verdict::Mismatched
            }
        };
        match verdict {
            Verdict::Matched => run.matched += 1,
            Verdict::Mismatched => {
                run.mismatched += 1;
                if record.is_some() && run.evidence.len() < EVIDENCE {
                    run.evidence.push(mismatch(
                        inp, conn, &counters, predicted, previous, observed,
                    ));
                }
            }
            Verdict::Unchecked => {}
        }
        if let Some(verdicts) = record.as_deref_mut() {
            verdicts[conn] = verdict;
        }
        if observed.is_some() {
            previous = observed;
        }
    }
    Ok(run)
}

/// The evidence kept for a mismatched scheduled decision.
fn mismatch(
    inp: &ReplayInput,
    conn: usize,
    counters: &LoadCursor,
    predicted: Option<usize>,
    previous: Option<usize>,
    observed: Option<usize>,
) -> Mismatch {
    let by_id: Vec<Load> = (0..inp.cfg.servers.len())
        .map(|id| counters.load(id))
        .collect();
    let time_ns = inp.conns.created_ns(conn, inp.proto);
    let client = inp.conns.client(conn);
    Mismatch {
        time_ns,
        client,
        expected: predicted.map(|p| inp.server_addrs[p]),
        observed: observed.map(|o| inp.server_addrs[o]),
        evidence: evidence(inp, &by_id, client, previous, observed),
    }
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
    plan: &Plan,
    candidates: &[Vec<usize>],
) -> Result<Option<Best>, String> {
    let steps = plan.scheduled.len().max(1);
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
    let starts = if full { states } else { 1 };
    let pairs: Vec<(usize, usize)> = (0..candidates.len())
        .flat_map(|k| (0..starts).map(move |start| (k, start)))
        .collect();
    for ((k, start), matched) in pairs
        .iter()
        .zip(matched_by_runs(inp, plan, candidates, &pairs)?)
    {
        consider(&mut best, *k, *start, matched);
    }
    // Too many pairs to try them all: look for a starting state on the best order only.
    if !full && states * steps <= SEARCH_BUDGET {
        if let Some(k) = best.as_ref().map(|b| b.perm) {
            let pairs: Vec<(usize, usize)> = (1..states).map(|start| (k, start)).collect();
            for ((k, start), matched) in pairs
                .iter()
                .zip(matched_by_runs(inp, plan, candidates, &pairs)?)
            {
                consider(&mut best, *k, *start, matched);
            }
        }
    }
    Ok(best)
}

/// Decisions matched by the run of each (candidate, starting state), in the order given.
///
/// The runs share nothing but what they read, so they run in parallel: the search is most of
/// the replay, which comes after every capture has been read and is the last thing `verify`
/// waits for, on one thread otherwise. The results are kept in order and weighed in order
/// afterwards, so the best pair (and the first error, if any) is the one one thread finds.
fn matched_by_runs(
    inp: &ReplayInput,
    plan: &Plan,
    candidates: &[Vec<usize>],
    pairs: &[(usize, usize)],
) -> Result<Vec<u64>, String> {
    pairs
        .par_iter()
        .map(|&(k, start)| Ok(run_order(inp, plan, &candidates[k], start, None)?.matched))
        .collect::<Vec<Result<u64, String>>>()
        .into_iter()
        .collect()
}

/// Whether [`evidence`] shows the counters: the schedulers that read them, and those whose
/// choice they do not explain otherwise. For the others the replay does not rebuild them.
pub(super) fn shows_loads(s: Scheduler) -> bool {
    !matches!(
        s,
        Scheduler::Rr | Scheduler::Wrr | Scheduler::Sh | Scheduler::Dh
    )
}

/// What the model based its choice on, in words (`loads` per server, configuration order).
fn evidence(
    inp: &ReplayInput,
    loads: &[Load],
    client: SocketAddr,
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
            let port = if inp.cfg.sh_port { client.port() } else { 0 };
            parts.push(format!(
                "client hashes to bucket {} of 256",
                sh_bucket(client.ip(), port, 0)
            ));
        }
        Scheduler::Dh => parts.push(format!(
            "VIP hashes to bucket {} of 256",
            dh_bucket(inp.vip.ip())
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
pub(super) fn first_appearance(inp: &ReplayInput, plan: &Plan) -> Vec<usize> {
    let n = inp.cfg.servers.len();
    let mut seen = Vec::new();
    for &conn in &plan.scheduled {
        if let Some(s) = inp.server_of(conn as usize) {
            if s < n && !seen.contains(&s) {
                seen.push(s);
            }
        }
    }
    seen.extend((0..n).filter(|s| !seen.contains(s)).collect::<Vec<_>>());
    seen
}
