//! The whole analysis: pass 1 (facts -> topology), pass 2 (legs), clock offsets, join.
//!
//! Each pass reads every capture once, captures in parallel, one state per capture; nothing
//! holds packets, so reading twice is cheaper than remembering.

use super::clock::{self, ClockOffset};
use super::join;
use super::legs::{FlowContext, LegTracker, Timeouts};
use super::{Connection, Leg};
use crate::capture::frame::CaptureId;
use crate::capture::{read_capture, CaptureSource};
use crate::decode::packet::DecodedFrame;
use crate::decode::{DecodeOptions, Decoder};
use crate::topology::config::{self, ConfigFinding, ExpectedService, Observed};
use crate::topology::facts::VantageFacts;
use crate::topology::{self, Hints, Service, Topology, VantageId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

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
        let source = self
            .files
            .get(capture as usize)
            .ok_or_else(|| format!("no capture #{capture}"))?;
        let mut decoder = Decoder::new(self.decode.clone());
        let summary = read_capture(capture, source, |f| {
            let packet = decoder.decode(f.ts_ns, f.link_type, f.data);
            let d = DecodedFrame {
                capture: f.capture,
                interface: f.interface,
                number: f.number,
                ts_ns: f.ts_ns,
                wire_len: f.wire_len,
                packet,
            };
            each(&d, f.link_type);
        })
        .map_err(|e| e.to_string())?;
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
        })
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
}

/// Everything `flows` found.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub captures: Vec<CaptureName>,
    pub topology: Topology,
    pub clock_offsets: Vec<ClockOffset>,
    pub connections: Vec<Connection>,
    /// Disagreements between `--rules` and the traffic (empty without rules).
    pub config: Vec<ConfigFinding>,
    pub stats: Vec<VantageStats>,
    /// What could not be read, and other problems with the input.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// Whether no capture could be read at all: the input is unusable.
    pub fn unreadable(&self) -> bool {
        self.captures.iter().all(|c| c.error.is_some())
    }
}

/// Runs the analysis over any frame source.
pub fn analyse_source(source: &dyn FrameSource, opts: &FlowOptions) -> Analysis {
    let names = source.captures();
    let captures: Vec<CaptureId> = names.iter().map(|(c, _)| *c).collect();
    let mut warnings = opts.notes.clone();

    // Pass 1: facts per vantage point.
    let pass1: Vec<(Vec<VantageFacts>, Result<ReadReport, String>)> = captures
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
            (by_if.into_values().collect(), res)
        })
        .collect();
    let mut facts = Vec::new();
    let mut capture_names = Vec::new();
    for ((f, res), (c, file)) in pass1.into_iter().zip(&names) {
        facts.extend(f);
        let (interfaces, complete, error, read_warnings) = match res {
            Ok(r) => {
                warnings.extend(r.warnings.iter().cloned());
                (r.interface_names, r.complete, None, r.warnings)
            }
            Err(e) => {
                warnings.push(e.clone());
                (Vec::new(), false, Some(e), Vec::new())
            }
        };
        capture_names.push(CaptureName {
            capture: *c,
            file: file.clone(),
            interfaces,
            complete,
            error,
            warnings: read_warnings,
        });
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
                        LegTracker::new(
                            v,
                            topology.role_of(v),
                            topology
                                .vantage(v)
                                .is_some_and(|x| join::is_raw_ip(x.link_type)),
                            &ctx,
                            opts.timeouts,
                        ),
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
                append(&mut legs, l);
            }
            (legs, stats)
        })
        .collect();
    let total: usize = pass2.iter().map(|(l, _)| l.len()).sum();
    let mut legs = Vec::new();
    let mut stats = Vec::new();
    for (l, s) in pass2 {
        if !legs.is_empty() {
            legs.reserve_exact(total - legs.len());
        }
        append(&mut legs, l);
        stats.extend(s);
    }

    let roles: Vec<_> = topology.vantages.iter().map(|v| (v.id, v.role)).collect();
    let clock_offsets = clock::estimate(&legs, &roles);
    let connections = join::join(legs, &topology, &clock_offsets);
    let mut topology = topology;
    name_tunnel_devices(&mut topology, &connections);
    let config = match &opts.expected {
        Some(e) => config::compare(e, &observed(&connections)),
        None => Vec::new(),
    };
    Analysis {
        captures: capture_names,
        topology,
        clock_offsets,
        connections,
        config,
        stats,
        warnings,
    }
}

/// Moves `more` to the end of `legs`, without a copy when `legs` is empty. Each leg is kept to
/// the end, so a second copy of all of them while they are gathered would double the peak.
fn append(legs: &mut Vec<Leg>, mut more: Vec<Leg>) {
    if legs.is_empty() {
        *legs = more;
    } else {
        legs.append(&mut more);
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

/// A real server's tunnel device (tunl0) sees only inner packets, so its capture does not show
/// the server's address; the connections it saw do, when they all went to one real server.
fn name_tunnel_devices(topology: &mut Topology, connections: &[Connection]) {
    for v in topology.vantages.iter_mut() {
        if v.role != crate::topology::Role::RealServer || v.address.is_some() {
            continue;
        }
        let mut seen: Vec<std::net::IpAddr> = connections
            .iter()
            .filter(|c| c.legs.iter().any(|l| l.vantage == v.id))
            .filter_map(|c| c.real_server)
            .collect();
        seen.sort();
        seen.dedup();
        if let [rs] = seen.as_slice() {
            v.address = Some(*rs);
            v.reason
                .push_str(&format!("; every connection it saw went to {rs}"));
        }
    }
}
