//! What the fairness stage produces: one record per virtual service. Field names are stable
//! (they are the JSON output); everything a chart needs is here too.

use super::input::{Proto, Scheduler};
use super::stats::ChiSquare;
use super::verdict::FairnessVerdict;
use serde::Serialize;
use std::net::SocketAddr;

#[derive(Debug, Clone, Default, Serialize)]
pub struct FairnessReport {
    pub services: Vec<ServiceReport>,
    /// All services together: the worst of their verdicts ([`super::verdict`]).
    pub verdict: FairnessVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub proto: Proto,
    pub vip: SocketAddr,
    /// The firewall mark of a firewall-mark service (its `vip` has port 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    pub scheduler: Option<Scheduler>,
    pub persistence_s: Option<u32>,
    /// Configured servers first (in the order the configuration gave), then servers that
    /// received connections but are not in the configuration.
    pub servers: Vec<ServerStats>,
    pub connections: u64,
    /// Connections for which no real server was seen (no tunnelled packet captured).
    pub unattributed: u64,
    pub fairness: FairnessStats,
    pub conformance: Option<Conformance>,
    pub drift: Drift,
    /// Conforms, deviates or inconclusive, and why ([`super::verdict::judge`]).
    pub verdict: FairnessVerdict,
    pub notes: Vec<String>,
    /// One entry per attributed connection in arrival order, for the timeline charts.
    #[serde(skip)]
    pub timeline: Vec<Assignment>,
}

impl ServiceReport {
    /// Whether the director did what its configuration says: Some(true) when every checked
    /// assignment was reproduced, Some(false) when any was not, None when nothing could be
    /// checked (no configuration, a scheduler that cannot be replayed, no decision seen).
    pub fn conforms(&self) -> Option<bool> {
        let c = self.conformance.as_ref()?;
        if !c.replayed || (c.decisions + c.persistent == 0 && c.mismatches == 0) {
            return None;
        }
        Some(c.mismatches == 0)
    }

    /// One line for a check list: scheduler, match count, fairness index.
    pub fn headline(&self) -> String {
        let mut s = format!(
            "{} {}",
            format!("{:?}", self.proto).to_uppercase(),
            super::input::service_label(self.vip, self.mark)
        );
        if let Some(c) = &self.conformance {
            let checked = c.decisions + c.persistent;
            let ok = c.matched + c.persistent_matched;
            match c.match_rate().filter(|_| c.replayed) {
                Some(r) => s.push_str(&format!(
                    ": {} reproduced {ok} of {checked} assignments ({:.1}%)",
                    c.scheduler,
                    r * 100.0
                )),
                None => s.push_str(&format!(": {} not replayed", c.scheduler)),
            }
        }
        if let Some(j) = self.fairness.jain {
            s.push_str(&format!(", Jain index {j:.3}"));
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    pub addr: SocketAddr,
    /// None for a server that is not in the configuration.
    pub weight: Option<u32>,
    pub connections: u64,
    pub share: f64,
    /// The share the configuration promises (None when it promises none: no configuration,
    /// or a scheduler such as dh/fo that does not spread load).
    pub expected_share: Option<f64>,
    pub packets_to_server: u64,
    pub bytes_to_server: u64,
    pub packets_to_client: u64,
    pub bytes_to_client: u64,
    pub response_ms: Option<Percentiles>,
    /// Response times in milliseconds, for the distribution chart.
    #[serde(skip)]
    pub response_samples_ms: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FairnessStats {
    /// Jain's index over connections per unit of promised share, servers promised a share;
    /// scaled by the fraction of connections that went to them, so that load on a server
    /// promised none (outside the configuration, or weight 0) counts against it.
    pub jain: Option<f64>,
    /// Largest over smallest connections per unit of weight; None when one got nothing.
    pub max_min_ratio: Option<f64>,
    pub chi_square: Option<ChiSquare>,
    /// Why a number is missing or should be read with care.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conformance {
    pub scheduler: Scheduler,
    /// False when the scheduler cannot be replayed from captures (mh, lblc, lblcr, twos):
    /// then only the statistics and the persistence/entry-reuse checks apply.
    pub replayed: bool,
    /// The list order the replay used (kernel order: most recently added first).
    pub order: Vec<SocketAddr>,
    /// How that order was obtained, in words.
    pub order_source: String,
    /// New connections the scheduler decided on and whose server was seen.
    pub decisions: u64,
    pub matched: u64,
    /// Connections sent by a persistence template, and how many went where the template said.
    pub persistent: u64,
    pub persistent_matched: u64,
    /// Connections that could not be checked, with the reason.
    pub not_predicted: Vec<Unpredicted>,
    /// The first disagreements, as evidence.
    pub first_mismatches: Vec<Mismatch>,
    pub mismatches: u64,
    /// What the replay assumed or could not know.
    pub limitations: Vec<String>,
}

impl Conformance {
    pub fn match_rate(&self) -> Option<f64> {
        let n = self.decisions + self.persistent;
        (n > 0).then(|| (self.matched + self.persistent_matched) as f64 / n as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Unpredicted {
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub time_ns: i64,
    pub client: SocketAddr,
    pub expected: Option<SocketAddr>,
    pub observed: Option<SocketAddr>,
    /// What the model saw: counters, template, pointer.
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub window_ns: i64,
    pub windows: Vec<Window>,
    /// The window where one server's share strayed furthest from its promise, among windows
    /// with at least `MIN_WINDOW_CONNS` connections.
    pub largest: Option<DriftPeak>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftPeak {
    pub window: usize,
    pub server: usize,
    pub share: f64,
    pub promised: f64,
    pub connections: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub start_ns: i64,
    /// Connections per server, same order as `ServiceReport::servers`.
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Matched,
    Mismatched,
    /// Not a scheduling decision or not checkable (no configuration, reused entry, ...).
    Unchecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub time_ns: i64,
    /// Index into `ServiceReport::servers` (32 bits: the timeline holds one per connection).
    pub server: u32,
    pub verdict: Verdict,
}
