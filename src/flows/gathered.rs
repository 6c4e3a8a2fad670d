//! Each capture's share of the analysis, read whole: what issue 16's records carry from one
//! machine to another ([`crate::full_state`]), gathered here with the pipeline's own passes.

use super::clock::ClockSampler;
use super::join::Joiner;
use super::legs::FlowContext;
use super::pipeline::{pass1_of, FlowOptions, FrameSource, ReadReport, VantageStats};
use super::probes::HealthChecks;
use super::stream;
use crate::capture::frame::CaptureId;
use crate::topology::facts::VantageFacts;
use crate::topology::{self, Topology};
use rayon::prelude::*;
use rustc_hash::FxHashSet;

/// One capture's share.
#[derive(Debug)]
pub struct Gathered {
    pub capture: CaptureId,
    /// Pass 1 over the whole capture: facts and the clock sample of each interface, in
    /// interface order.
    pub facts: Vec<(VantageFacts, ClockSampler)>,
    /// What reading it said (pass 1's read).
    pub read: Result<ReadReport, String>,
    /// Its frames came out of time order.
    pub disordered: bool,
    /// Pass 2 on the topology of all captures: per interface, the connection states held and
    /// the oddities; the health checks seen.
    pub stats: Vec<VantageStats>,
    pub health_checks: Vec<HealthChecks>,
}

/// Reads every capture whole twice, as the pipeline's passes do: pass 1 for the facts and
/// clock samples, the topology discovered from all of them, then pass 2 for the trackers'
/// statistics and health checks (the connections are dropped). Captures are taken as they
/// are: no GUE tunnel is looked for and no mirror interface split, and pass 2 runs on clocks
/// taken as equal (which moves when legs are joined, not what each capture's trackers count).
pub fn gather(source: &dyn FrameSource, opts: &FlowOptions) -> (Topology, Vec<Gathered>) {
    let captures: Vec<CaptureId> = source.captures().iter().map(|(c, _)| *c).collect();
    let pass1: Vec<_> = captures
        .par_iter()
        .map(|&c| pass1_of(source, c, true))
        .collect();
    // The topology is discovered from the facts of all captures at once; they go back to their
    // captures after.
    let mut facts = Vec::new();
    let mut shares = Vec::new();
    for (&capture, p) in captures.iter().zip(pass1) {
        let (f, samplers): (Vec<VantageFacts>, Vec<ClockSampler>) = p.facts.into_iter().unzip();
        facts.extend(f);
        shares.push((capture, samplers, p.read, p.out_of_order));
    }
    let topology = topology::discover(&facts, &opts.hints);
    let disordered: Vec<CaptureId> = shares.iter().filter(|s| s.3).map(|s| s.0).collect();
    let ctx = FlowContext::new(&topology, opts.expected.as_deref());
    let joiner = Joiner::new(&topology, &[], &FxHashSet::default());
    let plan = stream::Plan {
        topology: &topology,
        ctx: &ctx,
        timeouts: opts.timeouts,
        offsets: &[],
        disordered: &disordered,
        gather: false,
    };
    let outcome = stream::run(source, &plan, &joiner, &mut drop);
    drop(joiner);
    let mut facts = facts.into_iter();
    let gathered = shares
        .into_iter()
        .map(|(capture, samplers, read, disordered)| Gathered {
            capture,
            facts: facts.by_ref().take(samplers.len()).zip(samplers).collect(),
            read,
            disordered,
            stats: of_capture(&outcome.stats, capture, |s| s.vantage.capture),
            health_checks: of_capture(&outcome.health_checks, capture, |h| h.vantage.capture),
        })
        .collect();
    (topology, gathered)
}

fn of_capture<T: Clone>(all: &[T], capture: CaptureId, of: impl Fn(&T) -> CaptureId) -> Vec<T> {
    all.iter().filter(|x| of(x) == capture).cloned().collect()
}
