//! The whole analysis: pass 1 (facts -> topology, and a sample of packets -> clock offsets),
//! then pass 2 (legs, joined into connections as they end: [`super::stream`]).
//!
//! Each capture is read once ([`super::feed`]): pass 1 learns from its first frames (the
//! look-ahead, kept), pass 2 replays them and reads on, captures in parallel. When the
//! look-ahead cannot settle the topology the captures are read twice, and the analysis says so
//! ([`analyse_streaming`]).

use super::by_interface::ByInterface;
use super::clock::{self, ClockOffset, ClockSampler};
use super::feed::{Feeds, LookAhead};
use super::join::Joiner;
use super::legs::{FlowContext, Timeouts};
use super::mirror;
use super::stream;
use super::{Connection, Outcome};
use crate::capture::frame::CaptureId;
use crate::capture::progress::ReadProgress;
use crate::capture::CaptureSource;
use crate::decode::packet::DecodedFrame;
use crate::decode::{DecodeOptions, Decoder};
use crate::topology::config::{self, ConfigFinding, ExpectedService, Observed};
use crate::topology::facts::VantageFacts;
use crate::topology::{self, Hints, Proto, Role, Service, Topology, VantageId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::IpAddr;
use std::sync::Arc;

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

    /// The capture's first frames (its look-ahead, [`LookAhead`]), for pass 1: a source that
    /// reads each capture once keeps them for the full read ([`FileSource`]); its report is
    /// `partial` when the capture goes on. Sources that hold their frames hand them all on.
    fn read_ahead_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_mut(capture, each)
    }

    /// The same captures with GUE decoded on these (tunnel source, UDP port) pairs as well, for
    /// a source that decodes bytes ([`FileSource`]); None for one whose frames are decoded
    /// already.
    fn with_gue_tunnels(&self, _tunnels: &[(IpAddr, u16)]) -> Option<Box<dyn FrameSource>> {
        None
    }
}

/// What reading one capture said besides its frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Interface id -> name (pcapng `if_name`), where known.
    pub interface_names: Vec<(u32, String)>,
    /// Problems met while reading, each naming the file and the frame or byte offset.
    pub warnings: Vec<String>,
    /// The capture was read to its end.
    pub complete: bool,
    /// Only the capture's look-ahead was read ([`FrameSource::read_ahead_mut`]); the rest is
    /// read (and this report given again) in pass 2.
    pub partial: bool,
    /// What the reader found (snaplen, capture filter, drops), for the `capture.*` checks.
    pub summary: Option<crate::capture::CaptureSummary>,
}

/// Capture files, read with [`crate::capture`] (each once, by its own thread: [`Feeds`]) and
/// decoded with [`crate::decode::Decoder`].
pub struct FileSource {
    feeds: Arc<Feeds>,
    decode: DecodeOptions,
}

impl FileSource {
    pub fn new(files: Vec<CaptureSource>, decode: DecodeOptions, look_ahead: LookAhead) -> Self {
        Self::counted(files, decode, look_ahead, None)
    }

    /// [`FileSource::new`], counting what is read of the files in `progress` when given.
    pub fn counted(
        files: Vec<CaptureSource>,
        decode: DecodeOptions,
        look_ahead: LookAhead,
        progress: Option<Arc<ReadProgress>>,
    ) -> Self {
        FileSource {
            feeds: Arc::new(Feeds::new(files, look_ahead, progress)),
            decode,
        }
    }

    fn known(&self, capture: CaptureId) -> Result<(), String> {
        match (capture as usize) < self.feeds.sources().len() {
            true => Ok(()),
            false => Err(format!("no capture #{capture}")),
        }
    }

    /// Decodes what `read` hands on (frames of one capture, in file order), releasing the
    /// fragments still held at the end.
    fn decoded<T>(
        &self,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
        read: impl FnOnce(&mut dyn FnMut(&crate::capture::Frame)) -> T,
    ) -> T {
        let mut decoder = Decoder::new(self.decode.clone());
        let out = read(&mut |f| decoder.push(f, &mut |d, l| each(d, l)));
        // What was read before a problem counts too (capture.read reports the problem).
        decoder.finish(&mut |d, l| each(d, l));
        out
    }
}

/// What the reader's summary says, as the analysis keeps it.
fn report_of(summary: crate::capture::CaptureSummary) -> ReadReport {
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
    ReadReport {
        interface_names: summary
            .interfaces
            .iter()
            .filter_map(|i| i.name.clone().map(|n| (i.id, n)))
            .collect(),
        warnings,
        complete: summary.complete,
        summary: Some(summary),
        partial: false,
    }
}

impl FrameSource for FileSource {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        self.feeds
            .sources()
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
        self.known(capture)?;
        self.decoded(each, |frame| self.feeds.all(capture, frame))
            .map(report_of)
    }

    fn read_ahead_mut(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.known(capture)?;
        let end = self.decoded(each, |frame| self.feeds.ahead(capture, frame));
        match end {
            Some(end) => end.map(report_of),
            // The rest of the capture is read in pass 2, which then says how that went.
            None => Ok(ReadReport {
                complete: false,
                partial: true,
                ..ReadReport::default()
            }),
        }
    }

    fn with_gue_tunnels(&self, tunnels: &[(IpAddr, u16)]) -> Option<Box<dyn FrameSource>> {
        let mut decode = self.decode.clone();
        decode.gue_tunnels.extend_from_slice(tunnels);
        Some(Box::new(FileSource {
            feeds: self.feeds.clone(),
            decode,
        }))
    }
}

/// Reads the files and runs the analysis, keeping every connection.
pub fn analyse(files: &[CaptureSource], decode: DecodeOptions, opts: &FlowOptions) -> Analysis {
    let source = FileSource::counted(
        files.to_vec(),
        decode,
        opts.look_ahead,
        opts.progress.clone(),
    );
    analyse_source(&source, opts)
}

/// [`analyse`], handing each connection to `sink` as it is finished ([`analyse_streaming`]).
pub fn analyse_files_streaming(
    files: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
) -> Analysis {
    let source = FileSource::counted(
        files.to_vec(),
        decode,
        opts.look_ahead,
        opts.progress.clone(),
    );
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
    /// How much of each capture pass 1 learns the topology and the clocks from.
    pub look_ahead: LookAhead,
    /// Read every capture whole in pass 1, and again in pass 2 (`--read-twice`).
    pub read_twice: bool,
    /// Where the reading's progress is counted, for a display (none by default).
    pub progress: Option<Arc<ReadProgress>>,
}

/// Per vantage point: how many connection states it held at most at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VantageStats {
    pub vantage: VantageId,
    pub legs: usize,
    pub max_in_flight: usize,
    /// Packets of closed TCP connections that came during TIME_WAIT, after the connection's
    /// state was handed on: stragglers, not new connections.
    pub late_packets: u64,
    /// Why this capture's connections could be joined only once it had been read to its end
    /// (its progress could not be trusted), or null: memory then grows with its connections.
    #[serde(deserialize_with = "crate::full_state::static_text")]
    pub joined_at_end: Option<crate::full_state::StaticText>,
    /// Packets about the deployment that fit nowhere, by kind: gathered into
    /// [`Analysis::oddities`] (users' JSON has them there, the full state here).
    #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
    pub oddities: super::oddity::OddityCounts,
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
    /// Packets about the deployment that the model could not place, one row per kind seen
    /// ([`super::oddity`]).
    pub oddities: Vec<super::oddity::OddityCount>,
    /// Health checks: connections from a director's address to a real server's own address,
    /// not through the tunnel, per vantage point that saw them ([`super::probes`]); never
    /// client connections.
    pub health_checks: Vec<super::probes::HealthChecks>,
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
    let mut kept = Kept::default();
    let mut analysis = analyse_streaming(source, opts, &mut kept);
    let mut connections = kept.0;
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
///
/// Each capture is read once: pass 1 learns the topology and the clocks from its first frames
/// (the look-ahead, [`FlowOptions::look_ahead`]), pass 2 replays them and reads on. A capture
/// whose look-ahead ends before the capture and leaves its role undecided is read to its end in
/// pass 1 instead, and every capture then read again. Pass 2 also gathers the facts of every
/// frame; when they show a deployment the look-ahead did not (a real server, a VIP, a role
/// that came later), the sink starts over and every capture is read twice, or, for a sink that
/// cannot start over, the analysis says what it may have missed.
pub fn analyse_streaming(
    source: &dyn FrameSource,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
) -> Analysis {
    let mut analysis = match run_passes(source, opts, sink, opts.read_twice) {
        (analysis, None) => analysis,
        (analysis, Some(why)) => {
            if sink.restart() {
                drop(analysis);
                let (mut again, _) = run_passes(source, opts, sink, true);
                again.warnings.push(format!(
                    "every capture was read twice: {why}, so the first {} of each capture did \
                     not show the whole deployment",
                    look_ahead_text(opts, source)
                ));
                again
            } else {
                let mut a = analysis;
                a.warnings.push(format!(
                    "{why}, after the first {} of each capture: the connections were rebuilt \
                     with the deployment those showed, and may be incomplete; run with \
                     --read-twice",
                    look_ahead_text(opts, source)
                ));
                a
            }
        }
    };
    analysis.warnings.shrink_to_fit();
    analysis
}

fn look_ahead_text(opts: &FlowOptions, source: &dyn FrameSource) -> String {
    let bytes = opts.look_ahead.per_capture(source.captures().len());
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// What pass 1 learnt, from the look-ahead or from whole captures.
struct Learned {
    pass1: Vec<Pass1>,
    gue: Vec<topology::gue::GueTunnel>,
    /// The source decoding the GUE tunnels found, when some were.
    with_gue: Option<Box<dyn FrameSource>>,
    /// Interfaces split into hops.
    mirrors: BTreeMap<CaptureId, BTreeSet<u32>>,
    splits: Vec<mirror::MirrorSplit>,
}

/// Pass 1 over every capture: facts and clock samples from each capture's look-ahead (or all of
/// it, `whole`), with GUE nobody named decoded where confirmed and mirror interfaces split.
fn learn(source: &dyn FrameSource, opts: &FlowOptions, whole: bool) -> Learned {
    learn_gue(source, opts, whole, true)
}

/// [`learn`], judging GUE nobody named (`gue`) or not.
fn learn_gue(source: &dyn FrameSource, opts: &FlowOptions, whole: bool, gue: bool) -> Learned {
    let captures: Vec<CaptureId> = source.captures().iter().map(|(c, _)| *c).collect();
    let read = |s: &dyn FrameSource, c| pass1_of(s, c, whole);
    // Pass 1: facts per vantage point, and a sample of packets for the clocks.
    let mut pass1: Vec<Pass1> = captures.par_iter().map(|&c| read(source, c)).collect();
    // GUE-shaped UDP on a port nobody named is a tunnel where the captures show the director
    // wrapping clients' packets in it. Its packets then are other packets (a tunnel's inner
    // ones), so every fact changes: pass 1 is read again, decoding it.
    let gue = match gue {
        true => topology::gue::judge(&gue_evidence(&pass1)),
        false => Vec::new(),
    };
    let confirmed = topology::gue::confirmed(&gue);
    let with_gue = (!confirmed.is_empty())
        .then(|| source.with_gue_tunnels(&confirmed))
        .flatten();
    let source: &dyn FrameSource = match &with_gue {
        Some(s) => {
            pass1 = captures.par_iter().map(|&c| read(s.as_ref(), c)).collect();
            s.as_ref()
        }
        None => source,
    };
    // An interface holding several hosts' packets is read again, split into its hops; from
    // here on every read splits it (see [`mirror`]).
    let mut mirrors = mirror_candidates(&pass1, opts);
    let mut splits = Vec::new();
    if !mirrors.is_empty() {
        let trial = mirror::Split::new(source, mirrors.clone());
        let again: Vec<(usize, Pass1, Vec<mirror::MirrorSplit>)> = captures
            .par_iter()
            .enumerate()
            .filter(|(_, c)| mirrors.contains_key(c))
            .map(|(i, &c)| {
                let (p, s) = pass1_split(&trial, c, whole);
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
                pass1[i] = pass1_split(&part, captures[i], whole).0;
            }
            splits.extend(s);
        }
        mirrors.retain(|_, set| !set.is_empty());
    }
    Learned {
        pass1,
        gue,
        with_gue,
        mirrors,
        splits,
    }
}

/// Pass 1 of one capture read whole, for `lvscheck facts`.
pub struct WholeFacts {
    /// Facts per vantage point (interface, or hop of a split interface).
    pub facts: Vec<VantageFacts>,
    pub read: Result<ReadReport, String>,
    /// The interfaces split into hops ([`mirror`]), and how.
    pub mirrors: BTreeSet<u32>,
    pub splits: Vec<mirror::MirrorSplit>,
}

/// Pass 1 over whole captures, each on its own: what `lvscheck facts` writes. GUE on a port
/// nobody named is not decoded here: judging it takes the director's capture and the real
/// servers' together (`lvscheck topology` does, and says to read again with `--gue-port`).
pub fn whole_facts(source: &dyn FrameSource, opts: &FlowOptions) -> Vec<WholeFacts> {
    let Learned {
        pass1,
        mirrors,
        splits,
        ..
    } = learn_gue(source, opts, true, false);
    let captures: Vec<CaptureId> = source.captures().iter().map(|(c, _)| *c).collect();
    pass1
        .into_iter()
        .zip(captures)
        .map(|(p, c)| WholeFacts {
            facts: p.facts.into_iter().map(|(f, _)| f).collect(),
            read: p.read,
            mirrors: mirrors.get(&c).cloned().unwrap_or_default(),
            splits: splits.iter().filter(|s| s.capture == c).cloned().collect(),
        })
        .collect()
}

/// The interfaces of pass 1 that hold several hosts' packets (not hops already split).
fn mirror_candidates(pass1: &[Pass1], opts: &FlowOptions) -> BTreeMap<CaptureId, BTreeSet<u32>> {
    pass1
        .iter()
        .flat_map(|p| p.facts.iter().map(|(f, _)| f))
        // A capture the user gave a role is one host's, whatever its MACs say.
        .filter(|f| {
            f.vantage.interface < mirror::HOP_BASE
                && mirror::is_mirror(f)
                && !opts.hints.roles.contains_key(&f.vantage.capture)
        })
        .fold(BTreeMap::new(), |mut m, f| {
            m.entry(f.vantage.capture)
                .or_insert_with(BTreeSet::new)
                .insert(f.vantage.interface);
            m
        })
}

/// The captures whose look-ahead ended before them and did not decide their role: a
/// vantage point with no LVS role or only a guessed one (the rest of the capture may show
/// otherwise), or no service seen at all.
fn unsettled(read: &Pass1Read, topology: &Topology, opts: &FlowOptions) -> Vec<CaptureId> {
    let undecided = |f: &VantageFacts| {
        let guessed = topology.vantage(f.vantage).is_none_or(|v| {
            v.role == Role::Other || v.decided_by == crate::topology::Decision::Guess
        });
        guessed && !opts.hints.roles.contains_key(&f.vantage.capture)
    };
    read.partial
        .iter()
        .copied()
        .filter(|&c| {
            topology.services.is_empty()
                || read
                    .facts
                    .iter()
                    .any(|f| f.vantage.capture == c && undecided(f))
        })
        .collect()
}

/// Pass 1's captures taken apart for what follows: the facts of every vantage point (what the
/// topology is discovered from), their clock samples, and per capture what reading it said.
struct Pass1Read {
    facts: Vec<VantageFacts>,
    samplers: Vec<(VantageId, ClockSampler)>,
    captures: Vec<CaptureName>,
    /// Captures whose frames came out of time order.
    disordered: Vec<CaptureId>,
    /// Captures of which only the look-ahead was read.
    partial: Vec<CaptureId>,
}

impl Pass1Read {
    fn of(pass1: Vec<Pass1>, names: &[(CaptureId, String)]) -> Pass1Read {
        let mut read = Pass1Read {
            facts: Vec::new(),
            samplers: Vec::new(),
            captures: Vec::new(),
            disordered: Vec::new(),
            partial: Vec::new(),
        };
        for (p, (c, file)) in pass1.into_iter().zip(names) {
            if p.out_of_order {
                read.disordered.push(*c);
            }
            if p.partial() {
                read.partial.push(*c);
            }
            for (facts_of, sampler) in p.facts {
                read.samplers.push((facts_of.vantage, sampler));
                read.facts.push(facts_of);
            }
            read.captures.push(capture_name(*c, file, p.read));
        }
        read
    }
}

/// One analysis: pass 1 (the look-ahead, or whole captures when `whole`), then pass 2; with
/// the reason, when pass 2's facts show a deployment the look-ahead did not.
fn run_passes(
    source: &dyn FrameSource,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
    whole: bool,
) -> (Analysis, Option<String>) {
    let names = source.captures();
    let mut warnings = opts.notes.clone();
    let pass = |n| {
        if let Some(p) = &opts.progress {
            p.set_pass(n);
        }
    };
    pass(1);
    let mut learned = learn(source, opts, whole);
    let mut read = Pass1Read::of(std::mem::take(&mut learned.pass1), &names);
    let mut topology = topology::discover(&read.facts, &opts.hints);
    let open = unsettled(&read, &topology, opts);
    if !open.is_empty() {
        let files: Vec<String> = open
            .iter()
            .filter_map(|c| names.iter().find(|(n, _)| n == c).map(|(_, f)| f.clone()))
            .collect();
        warnings.push(format!(
            "every capture was read twice: the first {} of {} did not show {} role",
            look_ahead_text(opts, source),
            files.join(", "),
            if files.len() == 1 { "its" } else { "their" }
        ));
        drop(learned);
        learned = learn(source, opts, true);
        read = Pass1Read::of(std::mem::take(&mut learned.pass1), &names);
        topology = topology::discover(&read.facts, &opts.hints);
    }
    let partial = !read.partial.is_empty();
    let Learned {
        gue,
        with_gue,
        mirrors,
        splits,
        ..
    } = learned;
    let source: &dyn FrameSource = with_gue.as_deref().unwrap_or(source);
    let split = mirror::Split::new(source, mirrors.clone());
    let source: &dyn FrameSource = if mirrors.is_empty() { source } else { &split };
    let Pass1Read {
        facts,
        samplers,
        captures: capture_names,
        disordered,
        partial: partial_captures,
    } = read;
    let read_warnings_at = warnings.len();
    warnings.extend(read_warnings(&capture_names));
    let read_warnings_len = warnings.len() - read_warnings_at;
    topology.limits.extend(topology::gue::limits(&gue));
    topology.set_gue(gue.clone());
    let replies_at = saw_replies(&facts, &topology);
    // Firewall-mark services get the traffic's addresses, which only the facts know.
    // (Only when there is a mark: with tens of thousands of services the map costs.)
    let expected = opts.expected.clone().map(|e| {
        if e.iter().all(|s| s.mark.is_none()) {
            return e;
        }
        let (e, notes) = config::resolve_marks(e, &topology.services, &reached(&facts, &topology));
        warnings.extend(notes);
        e
    });
    let ahead_plan = partial.then(|| PlanKey::of(&topology, &replies_at, &disordered));
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

    // Pass 2: legs per vantage point, joined as they end.
    pass(2);
    let topology = &analysis.topology;
    let ctx = FlowContext::new(topology, expected.as_deref());
    let joiner = Joiner::new(topology, &analysis.clock_offsets, &replies_at);
    let mut seen = Seen::default();
    let mut id = 0;
    let plan = stream::Plan {
        topology,
        ctx: &ctx,
        timeouts: opts.timeouts,
        offsets: &analysis.clock_offsets,
        disordered: &disordered,
        gather: partial,
    };
    let outcome = stream::run(source, &plan, &joiner, &mut |mut c| {
        id += 1;
        c.id = id;
        seen.add(&c, topology);
        sink.connection(c);
    });
    drop(joiner);
    super::trim::release_freed_memory();
    analysis.warnings.extend(outcome.warnings);
    // The captures read past their look-ahead in pass 2: what reading them said.
    for (capture, read) in outcome.reads {
        if let Some(name) = analysis
            .captures
            .iter_mut()
            .find(|n| n.capture == capture && partial_captures.contains(&capture))
        {
            *name = capture_name(capture, &name.file, read);
        }
    }
    let reads = read_warnings(&analysis.captures);
    analysis.warnings.splice(
        read_warnings_at..read_warnings_at + read_warnings_len,
        reads,
    );
    let mut unsettled_why = None;
    if let Some(ahead_plan) = ahead_plan {
        let full = outcome.facts;
        let mut topology = topology::discover(&full, &opts.hints);
        topology.limits.extend(topology::gue::limits(&gue));
        topology.set_gue(gue.clone());
        let full_replies = saw_replies(&full, &topology);
        let late_disorder: Vec<CaptureId> = outcome.disordered;
        let full_plan = PlanKey::of(&topology, &full_replies, &late_disorder);
        let new_gue = topology::gue::confirmed(&topology::gue::judge(
            &full.iter().map(|f| (f.vantage, &f.gue)).collect::<Vec<_>>(),
        ));
        let new_mirrors: Vec<&VantageFacts> = full
            .iter()
            .filter(|f| {
                f.vantage.interface < mirror::HOP_BASE
                    && mirror::is_mirror(f)
                    && !opts.hints.roles.contains_key(&f.vantage.capture)
            })
            .collect();
        unsettled_why = if let Some(what) = ahead_plan.differs(&full_plan) {
            Some(what)
        } else if !new_gue.is_empty() {
            Some("the captures show GUE tunnels the look-ahead did not".to_string())
        } else if !new_mirrors.is_empty() {
            Some("a capture holds several hosts' packets past its look-ahead".to_string())
        } else {
            None
        };
        // The whole captures' counts and observations, on the deployment pass 2 used.
        mirror::describe_hops(&mut topology, &analysis.mirrors);
        analysis.topology = topology;
    }
    seen.name_tunnel_devices(&mut analysis.topology);
    analysis.config = match &expected {
        Some(e) => config::compare(e, &observed(&seen.counts)),
        None => Vec::new(),
    };
    analysis.per_server = seen.counts;
    analysis.first_ts_ns = seen.first_ts_ns;
    analysis.connection_count = id;
    analysis.oddities =
        super::oddity::gather(outcome.stats.iter().map(|s| (s.vantage, &s.oddities)));
    analysis.stats = outcome.stats;
    analysis.health_checks = outcome.health_checks;
    analysis.max_waiting = outcome.max_waiting;
    (analysis, unsettled_why)
}

/// What pass 2 depends on in the topology: if the whole captures show another, the look-ahead
/// misled it.
#[derive(Debug, PartialEq)]
struct PlanKey {
    vantages: Vec<(VantageId, Role, Option<IpAddr>)>,
    vips: BTreeSet<IpAddr>,
    services: Vec<Service>,
    directors: Vec<(IpAddr, Vec<crate::topology::MacAddr>)>,
    real_servers: Vec<(IpAddr, Vec<crate::topology::MacAddr>)>,
    saw_replies: BTreeSet<VantageId>,
    disordered: BTreeSet<CaptureId>,
}

impl PlanKey {
    fn of(t: &Topology, saw_replies: &HashSet<VantageId>, disordered: &[CaptureId]) -> PlanKey {
        let hosts = |h: &[crate::topology::Host]| {
            let mut v: Vec<_> = h.iter().map(|h| (h.addr, h.macs.clone())).collect();
            v.sort();
            v
        };
        PlanKey {
            vantages: t
                .vantages
                .iter()
                .map(|v| (v.id, v.role, v.address))
                .collect(),
            vips: t.vips.iter().map(|v| v.addr).collect(),
            services: t.services.clone(),
            directors: hosts(&t.directors),
            real_servers: hosts(&t.real_servers),
            saw_replies: saw_replies.iter().copied().collect(),
            disordered: disordered.iter().copied().collect(),
        }
    }

    /// What the whole captures show that the look-ahead did not, in words; None when pass 2
    /// worked on the same deployment.
    fn differs(&self, full: &PlanKey) -> Option<String> {
        let vips_ahead: Vec<IpAddr> = self.vips.iter().copied().collect();
        let vips_full: Vec<IpAddr> = full.vips.iter().copied().collect();
        let found = [
            new_items("roles", &self.vantages, &full.vantages, |(id, role, _)| {
                format!(
                    "capture #{} interface {} as {role}",
                    id.capture, id.interface
                )
            }),
            new_items("VIPs", &vips_ahead, &vips_full, IpAddr::to_string),
            new_items(
                "services",
                &self.services,
                &full.services,
                Service::to_string,
            ),
            new_items("directors", &self.directors, &full.directors, host_text),
            new_items(
                "real servers",
                &self.real_servers,
                &full.real_servers,
                host_text,
            ),
        ];
        if let Some(what) = found.into_iter().flatten().next() {
            return Some(what);
        }
        if self.saw_replies != full.saw_replies {
            return Some("replies appear later in a capture where the look-ahead had none".into());
        }
        if self.disordered != full.disordered {
            return Some("a capture's frames go out of time order past its look-ahead".into());
        }
        None
    }
}

fn host_text((addr, macs): &(IpAddr, Vec<crate::topology::MacAddr>)) -> String {
    let macs: Vec<String> = macs.iter().map(|m| m.to_string()).collect();
    format!("{addr} with MAC {}", macs.join(", "))
}

/// "the whole captures show other WHAT (the items new in `full`)", when the lists differ.
fn new_items<T: PartialEq>(
    what: &str,
    ahead: &[T],
    full: &[T],
    show: impl Fn(&T) -> String,
) -> Option<String> {
    if ahead == full {
        return None;
    }
    let new: Vec<String> = full
        .iter()
        .filter(|x| !ahead.contains(x))
        .map(show)
        .collect();
    Some(format!(
        "the whole captures show other {what} ({})",
        if new.is_empty() {
            "fewer".to_string()
        } else {
            new.join(", ")
        }
    ))
}

/// How the analysis names a capture, from what reading it said.
pub(super) fn capture_name(
    capture: CaptureId,
    file: &str,
    read: Result<ReadReport, String>,
) -> CaptureName {
    let (interfaces, complete, error, warnings, summary) = match read {
        Ok(r) => (r.interface_names, r.complete, None, r.warnings, r.summary),
        Err(e) => (Vec::new(), false, Some(e), Vec::new(), None),
    };
    CaptureName {
        capture,
        file: file.to_string(),
        interfaces,
        complete,
        error,
        warnings,
        summary,
    }
}

/// The read problems of every capture, in capture order.
pub(super) fn read_warnings(captures: &[CaptureName]) -> Vec<String> {
    captures
        .iter()
        .flat_map(|c| match &c.error {
            Some(e) => vec![e.clone()],
            None => c.warnings.clone(),
        })
        .collect()
}

/// What every vantage point of pass 1 shows about GUE nobody named.
fn gue_evidence(pass1: &[Pass1]) -> Vec<(VantageId, &topology::gue::GueEvidence)> {
    pass1
        .iter()
        .flat_map(|p| p.facts.iter().map(|(f, _)| (f.vantage, &f.gue)))
        .collect()
}

/// Pass 1 over one capture.
pub(super) struct Pass1 {
    /// Facts and a clock sample per interface.
    pub(super) facts: Vec<(VantageFacts, ClockSampler)>,
    /// The read's outcome (`partial` when only the look-ahead was read).
    pub(super) read: Result<ReadReport, String>,
    /// Its frames came out of time order.
    pub(super) out_of_order: bool,
}

impl Pass1 {
    /// Only the capture's look-ahead was read: it goes on.
    fn partial(&self) -> bool {
        self.read.as_ref().is_ok_and(|r| r.partial)
    }
}

pub(super) fn pass1_of(source: &dyn FrameSource, c: CaptureId, whole: bool) -> Pass1 {
    let mut gather = Gather::new(true);
    let mut push = |f: &mut DecodedFrame, link_type| gather.push(f, link_type);
    let res = if whole {
        source.read_mut(c, &mut push)
    } else {
        source.read_ahead_mut(c, &mut push)
    };
    gather.done(res)
}

/// [`pass1_of`] for a capture with mirror interfaces, split into hops.
fn pass1_split(
    split: &mirror::Split,
    c: CaptureId,
    whole: bool,
) -> (Pass1, Vec<mirror::MirrorSplit>) {
    let mut gather = Gather::new(true);
    let (res, splits) = split.read_split(c, !whole, &mut |f, link_type| gather.push(f, link_type));
    (gather.done(res), splits)
}

/// What pass 1 keeps of one capture while reading it (and pass 2, when it must check what the
/// look-ahead learnt).
pub(super) struct Gather {
    /// Facts and clock sample per interface.
    by_if: ByInterface<(VantageFacts, ClockSampler)>,
    order: stream::TimeOrder,
    /// Whether to sample packets for the clocks.
    clocks: bool,
}

impl Gather {
    pub(super) fn new(clocks: bool) -> Gather {
        Gather {
            by_if: ByInterface::default(),
            order: stream::TimeOrder::default(),
            clocks,
        }
    }

    pub(super) fn push(&mut self, f: &DecodedFrame, link_type: u32) {
        self.order.push(f.ts_ns);
        let (facts, sampler) = self.by_if.get_or_insert_with(f.interface, || {
            let v = VantageId {
                capture: f.capture,
                interface: f.interface,
            };
            (VantageFacts::new(v, link_type), ClockSampler::default())
        });
        facts.push(f);
        if self.clocks {
            sampler.push(f);
        }
    }

    /// The facts and samples in interface order.
    fn by_interface(self) -> impl Iterator<Item = (VantageFacts, ClockSampler)> {
        self.by_if.into_sorted().map(|(_, v)| v)
    }

    fn done(self, read: Result<ReadReport, String>) -> Pass1 {
        Pass1 {
            out_of_order: self.order.disordered(),
            facts: self.by_interface().collect(),
            read,
        }
    }

    /// The facts and clock samples per interface, and whether the frames came out of time
    /// order.
    pub(super) fn into_parts(self) -> (Vec<VantageFacts>, Vec<(VantageId, ClockSampler)>, bool) {
        let disordered = self.order.disordered();
        let (facts, samplers) = self
            .by_interface()
            .map(|(f, s)| {
                let v = f.vantage;
                (f, (v, s))
            })
            .unzip();
        (facts, samplers, disordered)
    }

    /// The facts per interface, and whether the frames came out of time order.
    pub(super) fn into_facts(self) -> (Vec<VantageFacts>, bool) {
        let disordered = self.order.disordered();
        (self.by_interface().map(|(f, _)| f).collect(), disordered)
    }
}

/// Every connection handed on, for [`analyse_source`].
#[derive(Default)]
struct Kept(Vec<Connection>);

impl ConnectionSink for Kept {
    fn restart(&mut self) -> bool {
        self.0.clear();
        true
    }
    fn connection(&mut self, c: Connection) {
        self.0.push(c);
    }
}

/// Where [`analyse_streaming`] hands the connections. Any `FnMut(Connection)` is one.
pub trait ConnectionSink {
    /// Called when the analysis must start over (the look-ahead misled it): forget every
    /// connection handed on so far and say true, or say false when that cannot be done (they
    /// were written out already); `begin` then comes again.
    fn restart(&mut self) -> bool {
        false
    }
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
pub(super) fn observed(counts: &ServerCounts) -> Observed {
    let mut o = Observed::new();
    for ((svc, rs), outcomes) in counts {
        *o.entry(svc.clone()).or_default().entry(*rs).or_default() +=
            outcomes.values().sum::<u64>();
    }
    o
}

/// The real servers each service's requests were tunnelled to, in any capture.
pub(super) fn reached(
    facts: &[VantageFacts],
    topology: &Topology,
) -> BTreeMap<Service, BTreeSet<IpAddr>> {
    let mut out: BTreeMap<Service, BTreeSet<IpAddr>> = BTreeMap::new();
    for (k, tunnel) in facts
        .iter()
        .flat_map(|f| f.flows.keys())
        .filter_map(|k| Some((k, k.tunnel?)))
    {
        if k.to_server && topology.is_vip(k.dst) {
            let svc = Service {
                vip: k.dst,
                port: k.server_port,
                proto: k.proto,
            };
            out.entry(svc).or_default().insert(tunnel.outer_dst);
        }
    }
    out
}

/// The vantage points where a TCP or UDP packet from a VIP was seen.
pub(super) fn saw_replies(facts: &[VantageFacts], topology: &Topology) -> HashSet<VantageId> {
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
pub(super) struct Seen {
    pub(super) counts: ServerCounts,
    pub(super) first_ts_ns: Option<i64>,
    servers_at: HashMap<VantageId, BTreeSet<IpAddr>>,
}

impl Seen {
    pub(super) fn add(&mut self, c: &Connection, topology: &Topology) {
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
    pub(super) fn name_tunnel_devices(&self, topology: &mut Topology) {
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
