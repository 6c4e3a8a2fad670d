//! The answer `lvscheck fairness` gives, per service and for all of them: the load conforms to
//! the configuration, deviates from it (at a stated p-value where the evidence is statistical),
//! or the captures cannot tell.
//!
//! A service **deviates** when any of these holds, checked in this order:
//! 1. connections went to a real server the configuration does not list (p = 0: no scheduler
//!    sends load to a server it does not have, so this is not chance);
//! 2. the replay of the configured scheduler disagrees with assignments the director made;
//! 3. the chi-square test rejects the promised shares (and no replay reproduced every
//!    assignment, which would clear the director): p < [`P_VALUE_ALARM`] with every expected
//!    count at least [`MIN_EXPECTED`] (not for sh, mh or persistence, which assign clients
//!    rather than connections: their replay checks every assignment instead).
//!
//! It **conforms** when none holds and something was actually tested: the chi-square test ran
//! on enough connections and did not reject, or the replay reproduced every assignment it
//! checked. Otherwise it is **inconclusive**: no configuration, no connection, too few
//! connections for the test and nothing the replay could check, or a scheduler that promises
//! no share and cannot be replayed. All services together take the worst of their verdicts
//! (deviates, then inconclusive, then conforms); no service at all is inconclusive.

use serde::Serialize;

use super::input::Scheduler;
use super::outcome::ServiceReport;
use super::stats::{MIN_EXPECTED, P_VALUE_ALARM};

/// What was concluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Conforms,
    #[default]
    Inconclusive,
    Deviates,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Conforms => "conforms",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Deviates => "deviates",
        }
    }
}

/// A verdict and what it rests on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FairnessVerdict {
    pub outcome: Outcome,
    /// The p-value the verdict rests on, when it rests on one: the chi-square test's, or 0 for
    /// load on a server outside the configuration. None for a verdict from the replay alone.
    pub p_value: Option<f64>,
    /// Why, in words, with the numbers.
    pub reason: String,
}

impl FairnessVerdict {
    /// One line: `deviates at p = 0.0012: ...`.
    pub fn line(&self) -> String {
        format!("{}: {}", self.short(), self.reason)
    }

    /// The outcome and the p-value it rests on, without the reason: `deviates at p = 0.0012`.
    pub fn short(&self) -> String {
        match self.p_value {
            Some(p) if self.outcome != Outcome::Inconclusive => {
                format!("{} at {}", self.outcome.name(), show_p(p))
            }
            _ => self.outcome.name().to_string(),
        }
    }
}

fn show_p(p: f64) -> String {
    if p == 0.0 {
        "p = 0".into()
    } else if p < 0.0001 {
        format!("p = {p:.1e}")
    } else {
        format!("p = {p:.4}")
    }
}

fn verdict(outcome: Outcome, p_value: Option<f64>, reason: String) -> FairnessVerdict {
    FairnessVerdict {
        outcome,
        p_value,
        reason,
    }
}

/// The verdict on one service.
pub fn judge(svc: &ServiceReport) -> FairnessVerdict {
    use Outcome::*;
    let Some(scheduler) = svc.scheduler else {
        return verdict(
            Inconclusive,
            None,
            "no configuration to compare with: give --rules (the output of ipvsadm -Sn) or \
             --scheduler and --weights"
                .into(),
        );
    };
    let attributed: u64 = svc.servers.iter().map(|s| s.connections).sum();
    if attributed == 0 {
        return verdict(
            Inconclusive,
            None,
            format!(
                "no connection whose real server was seen (of {}): capture the director or \
                 the real servers",
                svc.connections
            ),
        );
    }
    let strays: Vec<_> = svc
        .servers
        .iter()
        .filter(|s| s.weight.is_none() && s.connections > 0)
        .collect();
    if !strays.is_empty() {
        let n: u64 = strays.iter().map(|s| s.connections).sum();
        let names: Vec<String> = strays.iter().map(|s| s.addr.ip().to_string()).collect();
        return verdict(
            Deviates,
            Some(0.0),
            format!(
                "{n} of {attributed} connections went to {}, which the configuration does not \
                 list",
                names.join(", ")
            ),
        );
    }
    let conformance = svc.conformance.as_ref();
    let replay = conformance.filter(|c| c.replayed).map(|c| {
        let n = c.decisions + c.persistent;
        (c.matched + c.persistent_matched, n, c.mismatches)
    });
    if let (Some(false), Some((ok, n, bad))) = (svc.conforms(), replay) {
        return verdict(
            Deviates,
            None,
            format!(
                "{bad} of {n} assignments differ from a replay of the configured {scheduler} \
                 ({ok} reproduced)"
            ),
        );
    }
    let per_client =
        matches!(scheduler, Scheduler::Sh | Scheduler::Mh) || svc.persistence_s.is_some();
    let chi = svc
        .fairness
        .chi_square
        .as_ref()
        .filter(|_| !per_client && svc.servers.iter().any(|s| s.expected_share.is_some()));
    let replayed_all = matches!((svc.conforms(), replay), (Some(true), Some(_)));
    let replay_words = match replay {
        Some((ok, n, _)) if replayed_all => format!("; {ok} of {n} assignments reproduced"),
        _ => String::new(),
    };
    if let Some(c) = chi.filter(|c| !c.too_few) {
        let test = format!(
            "chi-square {:.2}, df {}, over {attributed} connections",
            c.statistic, c.df
        );
        // A replay that reproduces every assignment is the stronger evidence: the director
        // did what the configured scheduler does, and shares that differ from the weights then
        // come from the load itself (least-connection schedulers follow how long connections
        // last), not from the director.
        return if c.p_value < P_VALUE_ALARM && !replayed_all {
            verdict(
                Deviates,
                Some(c.p_value),
                format!(
                    "the connection shares differ from what the weights promise ({test}; \
                     p < {P_VALUE_ALARM}){replay_words}"
                ),
            )
        } else if c.p_value < P_VALUE_ALARM {
            verdict(
                Conforms,
                Some(c.p_value),
                format!(
                    "a replay of the configured {scheduler} reproduces every assignment{replay_words}, \
                     though the shares differ from the weights ({test}; p < {P_VALUE_ALARM}): \
                     the load, not the director, made them differ"
                ),
            )
        } else {
            verdict(
                Conforms,
                Some(c.p_value),
                format!(
                    "the connection shares are as the weights promise ({test}; p >= \
                     {P_VALUE_ALARM}){replay_words}"
                ),
            )
        };
    }
    if let (true, Some((_, n, _))) = (replayed_all, replay) {
        return verdict(
            Conforms,
            None,
            format!(
                "a replay of the configured {scheduler} reproduces all {n} assignments{}",
                match chi {
                    Some(c) => format!(
                        "; too few connections for the chi-square test (smallest expected \
                         count {:.1} < {MIN_EXPECTED})",
                        c.min_expected
                    ),
                    None => String::new(),
                }
            ),
        );
    }
    // Nothing decided: say what each test lacked.
    let mut lacked = Vec::new();
    match (chi, per_client) {
        (Some(c), _) => lacked.push(format!(
            "too few connections for the chi-square test ({attributed}: smallest expected count \
             {:.1} < {MIN_EXPECTED})",
            c.min_expected
        )),
        (None, true) => lacked.push(format!(
            "{} shares clients, not connections: the chi-square test does not apply",
            if svc.persistence_s.is_some() {
                "persistence".to_string()
            } else {
                scheduler.to_string()
            }
        )),
        (None, false) => lacked.push(if svc.servers.iter().any(|s| s.expected_share.is_some()) {
            "fewer than two servers with a promised share: nothing to compare".to_string()
        } else {
            format!("{scheduler} promises no share of the load")
        }),
    }
    lacked.push(match conformance {
        Some(c) if !c.replayed => format!("{scheduler} cannot be replayed from captures"),
        _ => "the replay checked no assignment".to_string(),
    });
    verdict(Inconclusive, None, lacked.join("; "))
}

/// The verdict on all services: the worst of theirs, each named.
pub fn overall(services: &[ServiceReport]) -> FairnessVerdict {
    if services.is_empty() {
        return verdict(
            Outcome::Inconclusive,
            None,
            "no virtual service with connections was found in these captures".into(),
        );
    }
    let worst = services
        .iter()
        .map(|s| s.verdict.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive);
    let named: Vec<&ServiceReport> = services
        .iter()
        .filter(|s| s.verdict.outcome == worst)
        .collect();
    if let ([s], true) = (named.as_slice(), services.len() == 1) {
        return s.verdict.clone();
    }
    let reason = named
        .iter()
        .map(|s| {
            let proto = format!("{:?}", s.proto).to_lowercase();
            let name = super::input::service_label(s.vip, s.mark);
            format!("{proto} {name}: {}", s.verdict.reason)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let p_value = named
        .iter()
        .filter_map(|s| s.verdict.p_value)
        .min_by(f64::total_cmp);
    verdict(worst, p_value, reason)
}
