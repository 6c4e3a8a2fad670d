//! The ladders of the connections a verification's findings point at, for the HTML report:
//! each finding's evidence packets name frames, and the connections those frames belong to are
//! drawn beside the finding. They are taken from the connections `verify` kept for the page
//! ([`Verification::remarkable`]); only a frame none of them holds (a scheduler mismatch cites
//! a healthy connection) makes the captures analysed again, keeping the connections such
//! frames belong to (and where every other one started, to number them as `flows` does). The
//! captures are then read once more for the drawn connections' packets.

use super::{of_connections, svg};
use crate::capture::frame::CaptureId;
use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::flows::numbered_by_start;
use crate::flows::trace::frames_kept;
use crate::flows::{analyse_files_streaming, ConnKey, Connection, ConnectionSink, FlowOptions};
use crate::report::html::{FindingKey, Ladder as HtmlLadder};
use crate::verify::Verification;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Connections drawn per finding, at most: the page stays readable with thousands of them.
pub const PER_FINDING: usize = 3;

/// The evidence frames of every finding, by capture and frame number.
fn evidence(v: &Verification) -> Vec<(FindingKey, Vec<(CaptureId, u64)>)> {
    let capture_of: HashMap<&str, CaptureId> = v
        .analysis
        .captures
        .iter()
        .map(|c| (c.file.as_str(), c.capture))
        .collect();
    let mut out = Vec::new();
    for c in &v.checks {
        for (index, f) in c.findings.iter().enumerate() {
            // Ladders show what went wrong; an informational finding (a prediction, a note on
            // the captures) is not worth a second analysis of every capture.
            if f.severity < crate::checks::Status::Warn {
                continue;
            }
            let frames: Vec<(CaptureId, u64)> = f
                .evidence
                .iter()
                .filter_map(|e| Some((*capture_of.get(e.file.as_str())?, e.frame)))
                .collect();
            if !frames.is_empty() {
                out.push((FindingKey { check: c.id, index }, frames));
            }
        }
    }
    out
}

/// Keeps the connections that hold one of `wanted`'s frames, and where every connection
/// started.
struct Cited<'a> {
    wanted: &'a HashSet<(CaptureId, u64)>,
    kept: Vec<Connection>,
    starts: Vec<(i64, ConnKey)>,
}

impl ConnectionSink for Cited<'_> {
    fn restart(&mut self) -> bool {
        self.kept.clear();
        self.starts.clear();
        true
    }
    fn connection(&mut self, c: Connection) {
        self.starts.push((c.first_ts_ns, c.key()));
        if frames_kept(&c).any(|f| self.wanted.contains(&f)) {
            self.kept.push(c);
        }
    }
}

/// Checks whose evidence is never a connection's packet (ARP replies, the captures' own
/// frames, the topology): a frame of theirs that no kept connection holds needs no search.
const NOT_CONNECTION_EVIDENCE: &[&str] = &[
    "arp.vip",
    "capture.read",
    "capture.filter",
    "capture.snaplen",
    "capture.drops",
    "capture.time",
    "topology",
];

/// The ladders of each finding's connections (at most [`PER_FINDING`] each), as SVG for the
/// HTML report, numbered as `flows` numbers connections; and the captures that could not be
/// read again, and why.
///
/// The connections come from those `verify` kept ([`Verification::remarkable`]); only when a
/// finding cites a frame none of them holds are the captures analysed again, keeping the
/// connections such frames belong to.
pub fn for_findings(
    files: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    v: &Verification,
) -> (
    std::collections::HashMap<FindingKey, Vec<HtmlLadder>>,
    Vec<String>,
) {
    let cited = evidence(v);
    let held: HashSet<(CaptureId, u64)> = v.remarkable.iter().flat_map(frames_kept).collect();
    let missing: HashSet<(CaptureId, u64)> = cited
        .iter()
        .filter(|(key, _)| !NOT_CONNECTION_EVIDENCE.contains(&key.check))
        .flat_map(|c| c.1.iter().copied())
        .filter(|f| !held.contains(f))
        .collect();
    let mut kept: Vec<Connection> = Vec::new();
    let again = (!missing.is_empty()).then(|| {
        let mut sink = Cited {
            wanted: &missing,
            kept: Vec::new(),
            starts: Vec::new(),
        };
        let analysis = analyse_files_streaming(files, decode.clone(), opts, &mut sink);
        kept = numbered_by_start(sink.kept, sink.starts);
        analysis
    });
    let analysis = again.as_ref().unwrap_or(&v.analysis);
    let mut conns: Vec<&Connection> = v.remarkable.iter().collect();
    conns.extend(
        kept.iter()
            .filter(|c| v.remarkable.iter().all(|r| r.id != c.id)),
    );
    conns.sort_by_key(|c| c.id);
    // Per finding, its connections in order of their number.
    let mut per_finding: Vec<(FindingKey, Vec<usize>)> = Vec::new();
    for (key, frames) in &cited {
        let frames: HashSet<&(CaptureId, u64)> = frames.iter().collect();
        let of_finding: Vec<usize> = conns
            .iter()
            .enumerate()
            .filter(|(_, c)| frames_kept(c).any(|f| frames.contains(&f)))
            .map(|(i, _)| i)
            .take(PER_FINDING)
            .collect();
        per_finding.push((*key, of_finding));
    }
    let drawn: Vec<usize> = {
        let mut all: Vec<usize> = per_finding.iter().flat_map(|p| p.1.clone()).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    if drawn.is_empty() {
        return (std::collections::HashMap::new(), Vec::new());
    }
    let refs: Vec<&Connection> = drawn.iter().map(|i| conns[*i]).collect();
    let (ladders, unread) = of_connections(files, decode, analysis, &refs);
    let svgs: HashMap<usize, HtmlLadder> = drawn
        .iter()
        .zip(&ladders)
        .map(|(i, l)| {
            (
                *i,
                HtmlLadder {
                    connection: l.id,
                    svg: svg(l),
                },
            )
        })
        .collect();
    let out = per_finding
        .into_iter()
        .filter(|(_, conns)| !conns.is_empty())
        .map(|(key, conns)| (key, conns.iter().map(|i| svgs[i].clone()).collect()))
        .collect();
    (out, unread)
}
