//! Conformance: replay the configured scheduler over the observed arrivals.
//!
//! The replay walks new connections in the order the director saw their first packet and,
//! for each, works out what the kernel did before asking the scheduler (`ip_vs_in` and
//! `ip_vs_sched_persist` in ip_vs_core.c):
//! - a SYN whose client address and port match a live entry reuses it unless that entry is
//!   in TIME_WAIT or CLOSE and not controlled by a template (`is_new_conn_expected`,
//!   conn_reuse_mode 1);
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

mod arrivals;
mod loads;
mod plan;
mod search;
mod unscheduled;

use crate::fairness::input::{Proto, Scheduler, ServiceConfig, Timeouts};
use crate::fairness::outcome::{Conformance, Unpredicted, Verdict};
use crate::fairness::table::ConnTable;
use plan::{CreationOrder, Plan};
use search::{first_appearance, model_for, permutations, run_order, search, shows_loads};
use std::net::SocketAddr;

const NS: i64 = 1_000_000_000;
/// How many mismatches are kept as evidence.
pub const EVIDENCE: usize = 10;
/// Largest server count for which every list order is tried (5! = 120 runs).
const MAX_PERMUTED: usize = 5;

pub struct ReplayInput<'a> {
    pub cfg: &'a ServiceConfig,
    pub proto: Proto,
    pub vip: SocketAddr,
    pub conns: &'a ConnTable,
    /// Server index (into `server_addrs`) of each real server of `conns`
    /// ([`ConnTable::servers`]); indices below `cfg.servers.len()` are the configured servers,
    /// in the configuration's order.
    pub server_of_rs: &'a [Option<usize>],
    pub server_addrs: &'a [SocketAddr],
    pub timeouts: &'a Timeouts,
    pub capture_span: Option<(i64, i64)>,
}

impl ReplayInput<'_> {
    /// Server index (into `server_addrs`) of connection `i`.
    pub fn server_of(&self, i: usize) -> Option<usize> {
        self.conns.rs(i).and_then(|k| self.server_of_rs[k])
    }
}

/// What the replay of this scheduler had to assume, in words.
fn scheduler_notes(s: Scheduler) -> Option<String> {
    match s {
        Scheduler::Rr | Scheduler::Wrr => Some(format!(
            "{s} keeps a pointer the captures cannot show: the replay assumes a freshly built \
             service (ipvsadm -A, then -a per server, or -R) unless another starting pointer \
             fits the capture better, and after a mismatch continues from the state that best \
             explains the director's choice and the decisions that follow"
        )),
        s if s.reads_counters() => Some(format!(
            "{s} reads the active/inactive counters; they are rebuilt from the captured \
                 client packets (INPUT-ONLY state table, entry timers), so entries for clients \
                 that were not captured, or that were idle for the whole capture, are not \
                 counted"
        )),
        _ => None,
    }
}

/// Replays the configured scheduler; returns the conformance summary and a verdict per
/// connection (Unchecked for those that were not scheduling decisions).
pub fn replay(inp: &ReplayInput) -> (Conformance, Vec<Verdict>) {
    let cfg = inp.cfg;
    let n = cfg.servers.len();
    let (plan, walked) = Plan::new(inp, shows_loads(cfg.scheduler));
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
            vec![given.clone(), first_appearance(inp, &plan)],
            Some("the given order and the order of first assignments".to_string()),
        )
    };
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

    let searched = search(inp, &plan, &candidates);
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
                    "; {} matched as many, so this capture does not pin the order down",
                    crate::words::plural(b.ties as u64, "other candidate", "other candidates")
                )
            } else {
                String::new()
            };
            // The search already built this model, so it cannot fail here.
            if let Ok(run) = run_order(inp, &plan, perm, b.start, Some(&mut verdicts)) {
                conformance.matched = run.matched;
                conformance.mismatches = run.mismatched;
                conformance.first_mismatches = run.evidence;
            }
            conformance.order_source = match &how {
                None if cfg.order_known => format!("kernel order given{tie_note}"),
                None => format!("single server{tie_note}"),
                Some(how) => format!(
                    "kernel order unknown (rules files list servers sorted): tried \
                         {how} and kept the best, which matched {} decisions{tie_note}",
                    conformance.matched
                ),
            };
            if let Some(note) = scheduler_notes(cfg.scheduler) {
                limitations.push(note);
            }
            if b.start != 0 {
                let names: Vec<String> = perm
                    .iter()
                    .map(|&i| cfg.servers[i].addr.ip().to_string())
                    .collect();
                if let Ok(model) = model_for(inp, perm) {
                    limitations.push(format!(
                        "the capture does not begin with a freshly built service: the \
                             closest agreement starts from {}",
                        model.describe_start_state(b.start, &names)
                    ));
                }
            }
        }
    }
    conformance.decisions = walked.decisions;
    conformance.persistent = walked.persistent;
    conformance.persistent_matched = walked.persistent_matched;
    conformance.mismatches += walked.mismatches;
    let room = EVIDENCE.saturating_sub(conformance.first_mismatches.len());
    conformance
        .first_mismatches
        .extend(walked.evidence.into_iter().take(room));
    for (v, w) in verdicts.iter_mut().zip(walked.verdicts) {
        if w != Verdict::Unchecked {
            *v = w;
        }
    }
    let not_predicted = walked.not_predicted;
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
        if cfg.scheduler.reads_counters() {
            let window = i64::from(inp.timeouts.tcp_established_s) * NS;
            let early = verdicts
                .iter()
                .enumerate()
                .filter(|&(i, v)| {
                    *v == Verdict::Mismatched && inp.conns.start_ns(i) < start + window
                })
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
    let unseen = (0..inp.conns.len())
        .filter(|&i| inp.server_of(i).is_none())
        .count();
    if unseen > 0 && cfg.scheduler.reads_counters() {
        limitations.push(format!(
            "{} with no observed server {} missing from the rebuilt counters, which can tip \
             close decisions",
            crate::words::plural(unseen as u64, "connection", "connections"),
            crate::words::noun(unseen, "is", "are")
        ));
    }
    limitations.push(
        "weights, the server set and overload thresholds are assumed constant for the whole \
         capture"
            .into(),
    );
    if let Some(note) = change_point(inp, &plan.order, &verdicts) {
        limitations.push(note);
    }
    conformance.limitations = limitations;
    (conformance, verdicts)
}

/// Looks for a moment after which the replay stops agreeing with the director, which is
/// what a weight edit or a server added or removed mid-capture looks like. `order` is the
/// connections in creation order, of which the checked ones (matched or not) count.
fn change_point(inp: &ReplayInput, order: &CreationOrder, verdicts: &[Verdict]) -> Option<String> {
    let checked = || {
        (0..order.len())
            .map(|k| order.at(k))
            .filter_map(|i| match verdicts[i] {
                Verdict::Matched => Some((i, true)),
                Verdict::Mismatched => Some((i, false)),
                Verdict::Unchecked => None,
            })
    };
    let (total, total_ok) = checked().fold((0, 0), |(n, ok), (_, m)| (n + 1, ok + usize::from(m)));
    const SIDE: usize = 10;
    if total < 2 * SIDE {
        return None;
    }
    let mut ok_before = 0;
    let mut best: Option<(usize, f64, f64)> = None;
    for (k, (i, matched)) in checked().enumerate() {
        if k >= SIDE && total - k >= SIDE {
            let before = ok_before as f64 / k as f64;
            let after = (total_ok - ok_before) as f64 / (total - k) as f64;
            if before >= 0.9 && after <= 0.5 && best.is_none_or(|b| before - after > b.1 - b.2) {
                best = Some((i, before, after));
            }
        }
        if matched {
            ok_before += 1;
        }
    }
    best.map(|(i, before, after)| {
        format!(
            "from {:.3} s on, the replay agrees with {:.0}% of decisions against {:.0}% before: \
             consistent with a configuration change at about that time (weight edit, server \
             added or removed, threshold reached), which the captures cannot show",
            inp.conns.created_ns(i, inp.proto) as f64 / 1e9,
            after * 100.0,
            before * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
