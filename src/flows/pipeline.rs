//! The whole analysis: pass 1 (facts -> topology, and a sample of packets -> clock offsets),
//! then pass 2 (legs, joined into connections as they end: [`super::stream`]).
//!
//! Each pass reads every capture once, captures in parallel; nothing holds packets, so reading
//! twice is cheaper than remembering.

use super::clock::{self, ClockOffset, ClockSampler};
use super::join::Joiner;
use super::legs::{FlowContext, Timeouts};
use super::mirror;
use super::stream;
use super::{Connection, Outcome};
use crate::capture::frame::CaptureId;
use crate::capture::{read_capture, CaptureSource};
use crate::decode::packet::DecodedFrame;
use crate::decode::{DecodeOptions, Decoder};
use crate::topology::config::{self, ConfigFinding, ExpectedService, Observed};
use crate::topology::facts::VantageFacts;
use crate::topology::{self, Hints, Proto, Role, Service, Topology, VantageId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::IpAddr;

/// Where the frames come from: files through capture + decode ([`FileSource`]), or frames
/// built by a test.
pub trait FrameSource: Sync {
    /// The captures: id and a name for people (the file name).
    fn captures(&self) -> Vec<(CaptureId, String)>;
    /// Calls `each` with every decoded frame of one capture, in file order, with the link type
    /// of its interface. Err when nothing of the capture could be read.
    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String>;

    /// [`FrameSource::read`], handing each frame on mutably, so that a wrapper can change
    /// where it says the frame was seen ([`super::mirror::Split`]) without copying it. The
    /// default copies each frame; sources that build their frames override it.
    fn read_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read(capture, &mut |f, link_type| {
            let mut f = f.clone();
            each(&mut f, link_type)
        })
    }

    /// The same captures with GUE decoded on these (tunnel source, UDP port) pairs as well, for
    /// a source that decodes bytes ([`FileSource`]); None for one whose frames are decoded
    /// already.
    fn with_gue_tunnels(&self, _tunnels: &[(IpAddr, u16)]) -> Option<Box<dyn FrameSource>> {
        None
    }
}

/// What reading one capture said besides its frames.
#[derive(Debug, Clone, Default)]
pub struct ReadReport {
    /// Interface id -> name (pcapng `if_name`), where known.
    pub interface_names: Vec<(u32, String)>,
    /// Problems met while reading, each naming the file and the frame or byte offset.
    pub warnings: Vec<String>,
    /// The capture was read to its end.
    pub complete: bool,
    /// What the reader found (snaplen, capture filter, drops), for the `capture.*` checks.
    pub summary: Option<crate::capture::CaptureSummary>,
}

/// Capture files, read with [`crate::capture`] and decoded with [`crate::decode::Decoder`].
pub struct FileSource {
    pub files: Vec<CaptureSource>,
    pub decode: DecodeOptions,
}

impl FrameSource for FileSource {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (i as CaptureId, f.display_name()))
            .collect()
    }

    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_mut(capture, &mut |f, link_type| each(f, link_type))
    }

    fn read_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        let source = self
            .files
            .get(capture as usize)
            .ok_or_else(|| format!("no capture #{capture}"))?;
        let mut decoder = Decoder::new(self.decode.clone());
        let read = read_capture(capture, source, |f| decoder.push(f, &mut |d, l| each(d, l)));
        // What was read before a problem counts too (capture.read reports the problem).
        decoder.finish(&mut |d, l| each(d, l));
        let summary = read.map_err(|e| e.to_string())?;
        let mut warnings: Vec<String> = summary
            .warnings
            .iter()
            // The reader's messages name the record and byte offset themselves.
            .map(|w| w.to_string())
            .collect();
        if summary.warnings_suppressed > 0 {
            warnings.push(format!(
                "{}: {} more read warnings",
                summary.file, summary.warnings_suppressed
            ));
        }
        Ok(ReadReport {
            interface_names: summary
                .interfaces
                .iter()
                .filter_map(|i| i.name.clone().map(|n| (i.id, n)))
                .collect(),
            warnings,
            complete: summary.complete,
            summary: Some(summary),
        })
    }

    fn with_gue_tunnels(&self, tunnels: &[(IpAddr, u16)]) -> Option<Box<dyn FrameSource>> {
        let mut decode = self.decode.clone();
        decode.gue_tunnels.extend_from_slice(tunnels);
        Some(Box::new(FileSource {
            files: self.files.clone(),
            decode,
        }))
    }
}

/// Reads the files and runs the analysis. Standard input cannot be used: every capture is read
/// twice.
pub fn analyse(files: &[CaptureSource], decode: DecodeOptions, opts: &FlowOptions) -> Analysis {
    let source = FileSource {
        files: files.to_vec(),
        decode,
    };
    analyse_source(&source, opts)
}

/// [`analyse`], handing each connection to `sink` as it is finished ([`analyse_streaming`]).
pub fn analyse_files_streaming(
    files: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
) -> Analysis {
    let source = FileSource {
        files: files.to_vec(),
        decode,
    };
    analyse_streaming(&source, opts, sink)
}

/// A capture as the analysis names it.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureName {
    pub capture: CaptureId,
    pub file: String,
    /// Interface id -> name, where the capture names its interfaces.
    pub interfaces: Vec<(u32, String)>,
    /// Read to its end without a problem that stopped the reader.
    pub complete: bool,
    /// Why nothing of it could be read.
    pub error: Option<String>,
    /// Read problems, each naming the file and the frame or byte offset.
    pub warnings: Vec<String>,
    /// What the reader found (None for frame sources that are not files).
    #[serde(skip)]
    pub summary: Option<crate::capture::CaptureSummary>,
}

/// Options of the analysis.
#[derive(Debug, Clone, Default)]
pub struct FlowOptions {
    pub timeouts: Timeouts,
    pub hints: Hints,
    /// The expected configuration (`--rules`), when given.
    pub expected: Option<Vec<ExpectedService>>,
    /// Remarks about the options to pass on as warnings (parts of the rules not compared).
    pub notes: Vec<String>,
}

/// Per vantage point: how many connection states it held at most at once.
#[derive(Debug, Clone, Serialize)]
pub struct VantageStats {
    pub vantage: VantageId,
    pub legs: usize,
    pub max_in_flight: usize,
    /// Packets of closed TCP connections that came during TIME_WAIT, after the connection's
    /// state was handed on: stragglers, not new connections.
    pub late_packets: u64,
    /// Why this capture's connections could be joined only once it had been read to its end
    /// (its progress could not be trusted), or null: memory then grows with its connections.
    pub joined_at_end: Option<&'static str>,
}

/// Everything `flows` found.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub captures: Vec<CaptureName>,
    pub topology: Topology,
    pub clock_offsets: Vec<ClockOffset>,
    /// Every connection, in order of start ([`analyse_source`]); empty when they were handed
    /// on one by one ([`analyse_streaming`]).
    pub connections: Vec<Connection>,
    /// How many connections there were, kept or not.
    pub connection_count: u64,
    /// All of them per service, real server and outcome.
    #[serde(skip)]
    pub per_server: ServerCounts,
    /// When the first of them began (reference clock).
    pub first_ts_ns: Option<i64>,
    /// Connections (keys) waiting to be joined at once, at most: with the trackers' states
    /// ([`VantageStats::max_in_flight`]), what the analysis held in memory.
    pub max_waiting: usize,
    /// Disagreements between `--rules` and the traffic (empty without rules).
    pub config: Vec<ConfigFinding>,
    /// The configuration given with `--rules` (empty without): what the checks compare the
    /// forwarding method of each real server with.
    #[serde(skip)]
    pub expected: Vec<ExpectedService>,
    pub stats: Vec<VantageStats>,
    /// Interfaces that held several hosts' packets and were split into hops ([`mirror`]).
    pub mirrors: Vec<mirror::MirrorSplit>,
    /// What could not be read, and other problems with the input.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// Whether no capture could be read at all: the input is unusable.
    pub fn unreadable(&self) -> bool {
        self.captures.iter().all(|c| c.error.is_some())
    }
}

/// Runs the analysis over any frame source and keeps every connection, in order of start and
/// numbered so (`id` 1, 2, ...). Memory then grows with the connections; [`analyse_streaming`]
/// hands them on instead.
pub fn analyse_source(source: &dyn FrameSource, opts: &FlowOptions) -> Analysis {
    let mut connections = Vec::new();
    let mut analysis = analyse_streaming(source, opts, &mut |c| connections.push(c));
    connections.sort_by_key(|c| (c.first_ts_ns, c.key()));
    for (i, c) in connections.iter_mut().enumerate() {
        c.id = i as u64 + 1;
    }
    analysis.connections = connections;
    analysis
}

/// Runs the analysis over any frame source, handing each connection to `each` as soon as no
/// capture can add to it, in the order connections end (`id` 1, 2, ... in that order). The
/// [`Analysis`] returned has no connections; its topology, clock offsets, configuration
/// findings and statistics cover all of them. Memory follows the connections in flight.
pub fn analyse_streaming(
    source: &dyn FrameSource,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
) -> Analysis {
    let names = source.captures();
    let captures: Vec<CaptureId> = names.iter().map(|(c, _)| *c).collect();
    let mut warnings = opts.notes.clone();

    // Pass 1: facts per vantage point, and a sample of packets for the clocks.
    let mut pass1: Vec<Pass1> = captures.par_iter().map(|&c| pass1_of(source, c)).collect();
    // GUE-shaped UDP on a port nobody named is a tunnel where the captures show the director
    // wrapping clients' packets in it. Its packets then are other packets (a tunnel's inner
    // ones), so every fact changes: pass 1 is read again, decoding it.
    let gue = topology::gue::judge(&gue_evidence(&pass1));
    let confirmed = topology::gue::confirmed(&gue);
    let with_gue = (!confirmed.is_empty())
        .then(|| source.with_gue_tunnels(&confirmed))
        .flatten();
    let source: &dyn FrameSource = match &with_gue {
        Some(s) => {
            pass1 = captures
                .par_iter()
                .map(|&c| pass1_of(s.as_ref(), c))
                .collect();
            s.as_ref()
        }
        None => source,
    };
    // An interface holding several hosts' packets is read again, split into its hops; from
    // here on every read splits it (see [`mirror`]).
    let mut mirrors: BTreeMap<CaptureId, BTreeSet<u32>> = pass1
        .iter()
        .flat_map(|p| p.0.iter().map(|(f, _)| f))
        // A capture the user gave a role is one host's, whatever its MACs say.
        .filter(|f| mirror::is_mirror(f) && !opts.hints.roles.contains_key(&f.vantage.capture))
        .fold(BTreeMap::new(), |mut m, f| {
            m.entry(f.vantage.capture)
                .or_insert_with(BTreeSet::new)
                .insert(f.vantage.interface);
            m
        });
    let mut splits = Vec::new();
    if !mirrors.is_empty() {
        let trial = mirror::Split::new(source, mirrors.clone());
        let again: Vec<(usize, Pass1, Vec<mirror::MirrorSplit>)> = captures
            .par_iter()
            .enumerate()
            .filter(|(_, c)| mirrors.contains_key(c))
            .map(|(i, &c)| {
                let (p, s) = pass1_split(&trial, c);
                (i, p, s)
            })
            .collect();
        for (i, p, mut s) in again {
            // A merge of captures whose clocks disagree cannot be split: each hop's frames
            // would come from several clocks. It stays whole (and unjudged), and says why.
            for m in s.iter_mut().filter(|m| m.clocks_disagree()) {
                m.not_split = Some(mirror::clocks_disagree_reason(m));
                if let Some(set) = mirrors.get_mut(&m.capture) {
                    set.remove(&m.interface);
                }
            }
            if s.iter().all(|m| m.not_split.is_none()) {
                pass1[i] = p;
            } else if s.iter().any(|m| m.not_split.is_none()) {
                // Some interfaces of the capture split, others not: read it once more.
                let part = mirror::Split::new(source, mirrors.clone());
                pass1[i] = pass1_split(&part, captures[i]).0;
            }
            splits.extend(s);
        }
        mirrors.retain(|_, set| !set.is_empty());
    }
    let split = mirror::Split::new(source, mirrors.clone());
    let source: &dyn FrameSource = if mirrors.is_empty() { source } else { &split };
    let mut facts = Vec::new();
    let mut samplers = Vec::new();
    let mut capture_names = Vec::new();
    let mut disordered = Vec::new();
    for ((f, res, out_of_order), (c, file)) in pass1.into_iter().zip(&names) {
        if out_of_order {
            disordered.push(*c);
        }
        for (facts_of, sampler) in f {
            samplers.push((facts_of.vantage, sampler));
            facts.push(facts_of);
        }
        let (interfaces, complete, error, read_warnings, summary) = match res {
            Ok(r) => {
                warnings.extend(r.warnings.iter().cloned());
                (r.interface_names, r.complete, None, r.warnings, r.summary)
            }
            Err(e) => {
                warnings.push(e.clone());
                (Vec::new(), false, Some(e), Vec::new(), None)
            }
        };
        capture_names.push(CaptureName {
            capture: *c,
            file: file.clone(),
            interfaces,
            complete,
            error,
            warnings: read_warnings,
            summary,
        });
    }
    let mut topology = topology::discover(&facts, &opts.hints);
    topology.limits.extend(topology::gue::limits(&gue));
    topology.gue = gue;
    let saw_replies = saw_replies(&facts, &topology);
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
        expected: opts.expected.clone().unwrap_or_default(),
        stats: Vec::new(),
        mirrors: splits,
        warnings,
    };
    sink.begin(&analysis);

    // Pass 2: legs per vantage point, joined as they end.
    let topology = &analysis.topology;
    let ctx = FlowContext::new(topology, opts.expected.as_deref());
    let joiner = Joiner::new(topology, &analysis.clock_offsets, &saw_replies);
    let mut seen = Seen::default();
    let mut id = 0;
    let plan = stream::Plan {
        topology,
        ctx: &ctx,
        timeouts: opts.timeouts,
        offsets: &analysis.clock_offsets,
        disordered: &disordered,
    };
    let outcome = stream::run(source, &plan, &joiner, &mut |mut c| {
        id += 1;
        c.id = id;
        seen.add(&c, topology);
        sink.connection(c);
    });
    analysis.warnings.extend(outcome.warnings);
    seen.name_tunnel_devices(&mut analysis.topology);
    analysis.config = match &opts.expected {
        Some(e) => config::compare(e, &observed(&seen.counts)),
        None => Vec::new(),
    };
    analysis.per_server = seen.counts;
    analysis.first_ts_ns = seen.first_ts_ns;
    analysis.connection_count = id;
    analysis.stats = outcome.stats;
    analysis.max_waiting = outcome.max_waiting;
    analysis
}

/// What every vantage point of pass 1 shows about GUE nobody named.
fn gue_evidence(pass1: &[Pass1]) -> Vec<(VantageId, &topology::gue::GueEvidence)> {
    pass1
        .iter()
        .flat_map(|p| p.0.iter().map(|(f, _)| (f.vantage, &f.gue)))
        .collect()
}

/// Pass 1 over one capture: facts and a clock sample per interface, the read's outcome, and
/// whether its frames came out of time order.
type Pass1 = (
    Vec<(VantageFacts, ClockSampler)>,
    Result<ReadReport, String>,
    bool,
);

fn pass1_of(source: &dyn FrameSource, c: CaptureId) -> Pass1 {
    let mut gather = Gather::default();
    let res = source.read(c, &mut |f, link_type| gather.push(f, link_type));
    gather.done(res)
}

/// [`pass1_of`] for a capture with mirror interfaces, split into hops.
fn pass1_split(split: &mirror::Split, c: CaptureId) -> (Pass1, Vec<mirror::MirrorSplit>) {
    let mut gather = Gather::default();
    let (res, splits) = split.read_split(c, &mut |f, link_type| gather.push(f, link_type));
    (gather.done(res), splits)
}

/// What pass 1 keeps of one capture while reading it.
#[derive(Default)]
struct Gather {
    by_if: BTreeMap<u32, (VantageFacts, ClockSampler)>,
    order: stream::TimeOrder,
}

impl Gather {
    fn push(&mut self, f: &DecodedFrame, link_type: u32) {
        self.order.push(f.ts_ns);
        let (facts, sampler) = self.by_if.entry(f.interface).or_insert_with(|| {
            let v = VantageId {
                capture: f.capture,
                interface: f.interface,
            };
            (VantageFacts::new(v, link_type), ClockSampler::default())
        });
        facts.push(f);
        sampler.push(f);
    }

    fn done(self, res: Result<ReadReport, String>) -> Pass1 {
        let disordered = self.order.disordered();
        (self.by_if.into_values().collect(), res, disordered)
    }
}

/// Where [`analyse_streaming`] hands the connections. Any `FnMut(Connection)` is one.
pub trait ConnectionSink {
    /// Called once, before the first connection, with what is known by then: the captures,
    /// the topology, the clock offsets and the read warnings (no configuration findings or
    /// statistics yet; a tunl0 capture is named after its real server only at the end).
    fn begin(&mut self, _analysis: &Analysis) {}
    fn connection(&mut self, c: Connection);
}

impl<F: FnMut(Connection)> ConnectionSink for F {
    fn connection(&mut self, c: Connection) {
        self(c)
    }
}

/// Connections per (service, real server) and outcome; None: the real server is not known.
pub type ServerCounts = BTreeMap<(Service, Option<IpAddr>), BTreeMap<Outcome, u64>>;

/// Connections per service and real server, for the comparison with the rules.
fn observed(counts: &ServerCounts) -> Observed {
    let mut o = Observed::new();
    for ((svc, rs), outcomes) in counts {
        *o.entry(svc.clone()).or_default().entry(*rs).or_default() +=
            outcomes.values().sum::<u64>();
    }
    o
}

/// The vantage points where a TCP or UDP packet from a VIP was seen.
fn saw_replies(facts: &[VantageFacts], topology: &Topology) -> HashSet<VantageId> {
    facts
        .iter()
        .filter(|f| {
            f.flows
                .keys()
                .any(|k| topology.is_vip(k.src) && matches!(k.proto, Proto::TCP | Proto::UDP))
        })
        .map(|f| f.vantage)
        .collect()
}

/// What the connections add up to, gathered as they pass: per service and real server, and the
/// real servers each vantage point saw connections of.
#[derive(Default)]
struct Seen {
    counts: ServerCounts,
    first_ts_ns: Option<i64>,
    servers_at: HashMap<VantageId, BTreeSet<IpAddr>>,
}

impl Seen {
    fn add(&mut self, c: &Connection, topology: &Topology) {
        let svc = Service {
            vip: c.vip.ip(),
            port: c.vip.port(),
            proto: c.proto,
        };
        *self
            .counts
            .entry((svc, c.real_server))
            .or_default()
            .entry(c.outcome)
            .or_default() += 1;
        self.first_ts_ns = Some(
            self.first_ts_ns
                .map_or(c.first_ts_ns, |t| t.min(c.first_ts_ns)),
        );
        for l in &c.legs {
            let unnamed = topology
                .vantage(l.vantage)
                .is_some_and(|v| v.role == Role::RealServer && v.address.is_none());
            if unnamed {
                let servers = self.servers_at.entry(l.vantage).or_default();
                // Two are as good as many: the device is not named then.
                if servers.len() < 2 {
                    servers.extend(c.real_server);
                }
            }
        }
    }

    /// A real server's tunnel device (tunl0) sees only inner packets, so its capture does not
    /// show the server's address; the connections it saw do, when they all went to one real
    /// server.
    fn name_tunnel_devices(&self, topology: &mut Topology) {
        for v in topology.vantages.iter_mut() {
            if v.role != Role::RealServer || v.address.is_some() {
                continue;
            }
            let Some(servers) = self.servers_at.get(&v.id) else {
                continue;
            };
            if let [rs] = servers.iter().collect::<Vec<_>>().as_slice() {
                v.address = Some(**rs);
                v.reason
                    .push_str(&format!("; every connection it saw went to {rs}"));
            }
        }
    }
}
