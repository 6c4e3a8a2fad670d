//! The report's walk over the decisions: what the kernel did without the scheduler (entries
//! reused, persistence templates followed) checked against the server each connection went
//! to, the scheduled decisions counted, and why some could not be predicted.
//!
//! It depends on nothing the order search finds, and reads what the plan's pass over the
//! arrivals reads, so it takes each decision in that same pass ([`super::plan::Plan::new`]):
//! a second pass beside the search held a second table of live entries at the memory peak
//! of `verify` and took as long again.

use super::arrivals::{masked, Decision, Kind};
use super::{ReplayInput, EVIDENCE};
use crate::fairness::outcome::{Mismatch, Verdict};

/// What the walk found.
pub(super) struct Walked {
    /// Scheduled decisions whose server was seen.
    pub decisions: u64,
    /// Connections sent by a persistence template, and how many went where it said.
    pub persistent: u64,
    pub persistent_matched: u64,
    /// Why connections could not be checked, with how many, in the order first met.
    pub not_predicted: Vec<(String, u64)>,
    pub mismatches: u64,
    /// The first [`EVIDENCE`] mismatches, in the order met.
    pub evidence: Vec<Mismatch>,
    /// The verdict of each connection the walk decides; Unchecked for every other (the
    /// scheduled decisions are the replay runs' to judge).
    pub verdicts: Vec<Verdict>,
}

impl Walked {
    /// Counts a decision that went to `observed` where the kernel would have sent it to
    /// `expected`, keeping the first ones as evidence.
    fn mismatch(
        &mut self,
        inp: &ReplayInput,
        d: &Decision,
        expected: usize,
        observed: usize,
        evidence: impl FnOnce() -> String,
    ) {
        self.verdicts[d.conn] = Verdict::Mismatched;
        self.mismatches += 1;
        if self.evidence.len() < EVIDENCE {
            self.evidence.push(Mismatch {
                time_ns: d.time_ns,
                client: inp.conns.client(d.conn),
                expected: Some(inp.server_addrs[expected]),
                observed: Some(inp.server_addrs[observed]),
                evidence: evidence(),
            });
        }
    }
}

impl Walked {
    /// Nothing walked yet, for a table of `n` connections.
    pub fn new(n: usize) -> Walked {
        Walked {
            decisions: 0,
            persistent: 0,
            persistent_matched: 0,
            not_predicted: Vec::new(),
            mismatches: 0,
            evidence: Vec::new(),
            verdicts: vec![Verdict::Unchecked; n],
        }
    }

    /// Counts one more connection under `reason` it could not be checked for.
    fn bump(&mut self, reason: String) {
        match self.not_predicted.iter_mut().find(|(r, _)| *r == reason) {
            Some(e) => e.1 += 1,
            None => self.not_predicted.push((reason, 1)),
        }
    }

    /// The next decision, in creation order.
    pub fn step(&mut self, inp: &ReplayInput, d: &Decision) {
        let observed = inp.server_of(d.conn);
        match d.kind {
            Kind::Scheduled => {
                if observed.is_some() {
                    self.decisions += 1;
                } else {
                    self.bump(
                        "scheduled, but no tunnelled packet shows which server got it".into(),
                    );
                }
            }
            Kind::BeforeCapture => self.bump(
                "started before the capture (no SYN seen), so the decision is not in it".into(),
            ),
            Kind::Reused { server, state, .. } => {
                let reason = format!(
                    "same client address and port as a live entry ({state:?}): the kernel \
                     reused it instead of scheduling"
                );
                match (server, observed) {
                    (Some(s), Some(o)) if s != o => self.mismatch(inp, d, s, o, || reason.clone()),
                    _ => {}
                }
                self.bump(reason);
            }
            Kind::Persisted {
                server, since_ns, ..
            } => match (server, observed) {
                (Some(s), Some(o)) => {
                    self.persistent += 1;
                    if s == o {
                        self.persistent_matched += 1;
                        self.verdicts[d.conn] = Verdict::Matched;
                    } else {
                        self.mismatch(inp, d, s, o, || {
                            format!(
                                "persistence template for {} created {:.3} s earlier \
                                     still alive",
                                masked(inp.conns.client(d.conn).ip(), inp.cfg.netmask_prefix),
                                (d.time_ns - since_ns) as f64 / 1e9
                            )
                        });
                    }
                }
                _ => self.bump("sent by a persistence template whose server was never seen".into()),
            },
        }
    }
}
