//! The analysis from what `lvscheck extract` kept of each capture (its products) rather than
//! from the captures themselves: the steps [`super::pipeline`] takes once its passes have read
//! the captures, in the same order, so that `verify --records` says what `verify` says.
//!
//! Each capture's products are what its reading gave: its read report, the facts and clock
//! sample of every vantage point over all its frames, its statistics and health checks, and its
//! legs. The legs are joined by the caller (the records layer runs the join as a query), given
//! the [`Joiner`] and the clock offsets this module works out.

use super::clock::{self, ClockOffset, ClockSampler};
use super::join::Joiner;
use super::mirror::{self, MirrorSplit};
use super::pipeline::{
    capture_name, observed, reached, read_warnings, saw_replies, Analysis, ConnectionSink,
    FlowOptions, ReadReport, Seen, ServerCounts, VantageStats,
};
use super::probes::HealthChecks;
use super::stream::{disordered_warning, joined_at_end};
use super::Connection;
use crate::capture::frame::CaptureId;
use crate::topology::config;
use crate::topology::facts::VantageFacts;
use crate::topology::gue::GueTunnel;
use crate::topology::{self, VantageId};

/// What extract kept of one capture besides its legs.
#[derive(Debug)]
pub struct CaptureProducts {
    /// The capture's name for people (its file name).
    pub file: String,
    pub read: Result<ReadReport, String>,
    /// Facts and clock sample per vantage point (interface, or hop of a mirror), over all its
    /// frames.
    pub facts: Vec<VantageFacts>,
    pub samplers: Vec<(VantageId, ClockSampler)>,
    /// Its frames came out of time order.
    pub disordered: bool,
    pub stats: Vec<VantageStats>,
    pub health_checks: Vec<HealthChecks>,
}

/// Every capture's products (capture number = place in `captures`), with what was decided
/// across captures before extract ran: the GUE tunnels and the mirror interfaces split.
#[derive(Debug, Default)]
pub struct Products {
    pub captures: Vec<CaptureProducts>,
    pub gue: Vec<GueTunnel>,
    pub splits: Vec<MirrorSplit>,
}

/// Joins the legs into connections, handing each to the callback as it is finished, given the
/// joiner and the clock offsets; Err stops the analysis.
pub type JoinLegs<'a> =
    dyn FnMut(&Joiner, &[ClockOffset], &mut dyn FnMut(Connection)) -> Result<(), String> + 'a;

/// The analysis of the captures whose products these are, with `join` rebuilding the
/// connections: what [`super::analyse_streaming`] gives when its look-ahead covered every
/// capture (as `extract` reads each whole). `max_waiting` is not measured (0): the query
/// holds the legs, not the join.
pub fn analyse_products(
    products: Products,
    opts: &FlowOptions,
    join: &mut JoinLegs,
    sink: &mut dyn ConnectionSink,
) -> Result<Analysis, String> {
    let Products {
        captures,
        gue,
        splits,
    } = products;
    let mut warnings = opts.notes.clone();
    let mut facts = Vec::new();
    let mut samplers = Vec::new();
    let mut names = Vec::new();
    let mut capture_names = Vec::new();
    let mut disordered: Vec<CaptureId> = Vec::new();
    let mut stats = Vec::new();
    let mut health_checks = Vec::new();
    for (c, p) in captures.into_iter().enumerate() {
        let c = c as CaptureId;
        if p.disordered {
            disordered.push(c);
        }
        facts.extend(p.facts);
        samplers.extend(p.samplers);
        stats.extend(p.stats);
        health_checks.extend(p.health_checks);
        capture_names.push(capture_name(c, &p.file, p.read));
        names.push((c, p.file));
    }
    warnings.extend(read_warnings(&capture_names));
    let mut topology = topology::discover(&facts, &opts.hints);
    topology.limits.extend(topology::gue::limits(&gue));
    topology.set_gue(gue);
    let replies_at = saw_replies(&facts, &topology);
    let expected = opts.expected.clone().map(|e| {
        if e.iter().all(|s| s.mark.is_none()) {
            return e;
        }
        let (e, notes) = config::resolve_marks(e, &topology.services, &reached(&facts, &topology));
        warnings.extend(notes);
        e
    });
    drop(facts);
    mirror::describe_hops(&mut topology, &splits);
    let mut clock_offsets = clock::estimate_from_samples(samplers, &topology);
    mirror::share_clocks(&mut clock_offsets, &splits);
    let mut analysis = Analysis {
        captures: capture_names,
        topology,
        clock_offsets,
        connections: Vec::new(),
        connection_count: 0,
        per_server: ServerCounts::new(),
        first_ts_ns: None,
        max_waiting: 0,
        config: Vec::new(),
        expected: expected.clone().unwrap_or_default(),
        stats: Vec::new(),
        oddities: Vec::new(),
        health_checks: Vec::new(),
        mirrors: splits,
        warnings,
    };
    sink.begin(&analysis);
    let mut seen = Seen::default();
    let mut id = 0;
    {
        let topology = &analysis.topology;
        let joiner = Joiner::new(topology, &analysis.clock_offsets, &replies_at);
        join(&joiner, &analysis.clock_offsets, &mut |mut c| {
            id += 1;
            c.id = id;
            seen.add(&c, topology);
            sink.connection(c);
        })?;
    }
    // As the stream says of the captures whose legs it could join only at their end.
    stats.sort_by_key(|s: &VantageStats| s.vantage);
    for (c, file) in &names {
        let unmatched = analysis
            .clock_offsets
            .iter()
            .any(|o| o.vantage.capture == *c && o.method == clock::OffsetMethod::Unmatched);
        let is_disordered = disordered.contains(c);
        let Some(why) = joined_at_end(is_disordered, unmatched) else {
            continue;
        };
        for s in stats.iter_mut().filter(|s| s.vantage.capture == *c) {
            s.joined_at_end = Some(why);
        }
        if is_disordered {
            analysis.warnings.push(disordered_warning(file));
        }
    }
    health_checks.sort_by_key(|h: &HealthChecks| (h.key, h.vantage));
    seen.name_tunnel_devices(&mut analysis.topology);
    analysis.config = match &expected {
        Some(e) => config::compare(e, &observed(&seen.counts)),
        None => Vec::new(),
    };
    analysis.per_server = seen.counts;
    analysis.first_ts_ns = seen.first_ts_ns;
    analysis.connection_count = id;
    analysis.oddities = super::oddity::gather(stats.iter().map(|s| (s.vantage, &s.oddities)));
    analysis.stats = stats;
    analysis.health_checks = health_checks;
    analysis.warnings.shrink_to_fit();
    Ok(analysis)
}
