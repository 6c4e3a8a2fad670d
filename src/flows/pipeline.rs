//! The whole analysis: pass 1 (facts -> topology), pass 2 (legs), clock offsets, join.
//!
//! Each pass reads every capture once, captures in parallel, one state per capture; nothing
//! holds packets, so reading twice is cheaper than remembering.

use super::clock::{self, ClockOffset};
use super::join;
use super::legs::{FlowContext, LegTracker, Timeouts};
use super::{Connection, Leg};
use crate::capture::frame::CaptureId;
use crate::decode::packet::DecodedFrame;
use crate::topology::config::{self, ConfigFinding, ExpectedService, Observed};
use crate::topology::facts::VantageFacts;
use crate::topology::{self, Hints, Service, Topology, VantageId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the frames come from: files through capture + decode, or frames built by a test.
pub trait FrameSource: Sync {
    /// The captures, by id.
    fn captures(&self) -> Vec<CaptureId>;
    /// Calls `each` with every decoded frame of one capture, in file order, with the link type
    /// of its interface. Returns what could not be read, as messages naming file and place.
    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<Vec<String>, String>;
}

/// Options of the analysis.
#[derive(Debug, Clone, Default)]
pub struct FlowOptions {
    pub timeouts: Timeouts,
    pub hints: Hints,
    /// The expected configuration (`--rules`), when given.
    pub expected: Option<Vec<ExpectedService>>,
}

/// Per vantage point: how many connection states it held at most at once.
#[derive(Debug, Clone, Serialize)]
pub struct VantageStats {
    pub vantage: VantageId,
    pub legs: usize,
    pub max_in_flight: usize,
}

/// Everything `flows` found.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub topology: Topology,
    pub clock_offsets: Vec<ClockOffset>,
    pub connections: Vec<Connection>,
    /// Disagreements between `--rules` and the traffic (empty without rules).
    pub config: Vec<ConfigFinding>,
    pub stats: Vec<VantageStats>,
    /// What could not be read, and other problems with the input.
    pub warnings: Vec<String>,
}

/// Runs the analysis over any frame source.
pub fn analyse_source(source: &dyn FrameSource, opts: &FlowOptions) -> Analysis {
    let captures = source.captures();
    let mut warnings = Vec::new();

    // Pass 1: facts per vantage point.
    let pass1: Vec<(Vec<VantageFacts>, Vec<String>)> = captures
        .par_iter()
        .map(|&c| {
            let mut by_if: BTreeMap<u32, VantageFacts> = BTreeMap::new();
            let res = source.read(c, &mut |f, link_type| {
                by_if
                    .entry(f.interface)
                    .or_insert_with(|| {
                        VantageFacts::new(
                            VantageId {
                                capture: f.capture,
                                interface: f.interface,
                            },
                            link_type,
                        )
                    })
                    .push(f);
            });
            let w = match res {
                Ok(w) => w,
                Err(e) => vec![e],
            };
            (by_if.into_values().collect(), w)
        })
        .collect();
    let mut facts = Vec::new();
    for (f, w) in pass1 {
        facts.extend(f);
        warnings.extend(w);
    }
    let topology = topology::discover(&facts, &opts.hints);
    drop(facts);

    // Pass 2: legs per vantage point.
    let ctx = FlowContext::new(&topology, opts.expected.as_deref());
    let pass2: Vec<(Vec<Leg>, Vec<VantageStats>)> = captures
        .par_iter()
        .map(|&c| {
            let mut trackers: BTreeMap<u32, (LegTracker, usize)> = BTreeMap::new();
            // Errors were reported by pass 1 already.
            let _ = source.read(c, &mut |f, _| {
                let v = VantageId {
                    capture: f.capture,
                    interface: f.interface,
                };
                let (t, max) = trackers.entry(f.interface).or_insert_with(|| {
                    (
                        LegTracker::new(v, topology.role_of(v), &ctx, opts.timeouts),
                        0,
                    )
                });
                t.push(f);
                *max = (*max).max(t.in_flight());
            });
            let mut legs = Vec::new();
            let mut stats = Vec::new();
            for (i, (t, max)) in trackers {
                let l = t.finish();
                stats.push(VantageStats {
                    vantage: VantageId {
                        capture: c,
                        interface: i,
                    },
                    legs: l.len(),
                    max_in_flight: max,
                });
                legs.extend(l);
            }
            (legs, stats)
        })
        .collect();
    let mut legs = Vec::new();
    let mut stats = Vec::new();
    for (l, s) in pass2 {
        legs.extend(l);
        stats.extend(s);
    }

    let roles: Vec<_> = topology.vantages.iter().map(|v| (v.id, v.role)).collect();
    let clock_offsets = clock::estimate(&legs, &roles);
    let connections = join::join(legs, &topology, &clock_offsets);
    let config = match &opts.expected {
        Some(e) => config::compare(e, &observed(&connections)),
        None => Vec::new(),
    };
    Analysis {
        topology,
        clock_offsets,
        connections,
        config,
        stats,
        warnings,
    }
}

/// Connections per service and real server, for the comparison with the rules.
pub fn observed(connections: &[Connection]) -> Observed {
    let mut o = Observed::new();
    for c in connections {
        let svc = Service {
            vip: c.vip.ip(),
            port: c.vip.port(),
            proto: c.proto,
        };
        *o.entry(svc).or_default().entry(c.real_server).or_default() += 1;
    }
    o
}
