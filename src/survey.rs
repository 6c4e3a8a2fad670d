//! What `inspect` shows: every capture read and decoded once, with per-interface layer counts and
//! the frames the decoder could not make sense of. A user sees what the tool sees.

use serde::Serialize;

use crate::capture::frame::CaptureId;
use crate::capture::{read_captures_parallel, CaptureSource, CaptureSummary};
use crate::decode::{
    DecodeOptions, DecodedFrame, Decoder, Defect, LayerCounts, Net, Packet, Transport,
};
use crate::topology::gue::{self, GueEvidence, GueTunnel};
use crate::topology::VantageId;

/// At most this many undecodable frames are listed per capture; the rest are counted.
pub const MAX_DECODE_NOTES: usize = 20;

/// One capture as `inspect` reports it.
#[derive(Debug, Serialize)]
pub struct CaptureSurvey {
    pub file: String,
    /// The reader's summary, or why nothing could be read.
    #[serde(flatten)]
    pub read: ReadResult,
    /// Layer counts per interface, same order as the summary's interfaces.
    pub layers_per_interface: Vec<LayerCounts>,
    /// Earliest and latest frame time per interface (ns since the epoch), same order.
    pub span_per_interface: Vec<Option<(i64, i64)>>,
    /// Interfaces the file declares that carried no frame (nor drop count) and are not in the
    /// summary's list: only the first [`crate::capture::MAX_EMPTY_INTERFACES_SHOWN`] of those
    /// are.
    pub empty_interfaces_omitted: u64,
    /// Frames with a layer that could not be decoded: frame number and reason.
    pub decode_notes: Vec<DecodeNote>,
    pub decode_notes_suppressed: u64,
    /// GUE-shaped UDP on ports nobody named that this capture saw, judged over all captures:
    /// a tunnel only where the captures show the director wrapping clients' packets in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gue: Vec<GueTunnel>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadResult {
    Summary(CaptureSummary),
    Error(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodeNote {
    pub frame: u64,
    pub reason: String,
}

struct State {
    decoder: Decoder,
    tally: Tally,
}

/// What the frames of one capture add up to.
#[derive(Default)]
struct Tally {
    /// Per interface, what it shows of GUE nobody named.
    gue: Vec<GueEvidence>,
    /// Whether `gue` samples the plain packets too.
    plain: bool,
    layers: Vec<LayerCounts>,
    spans: Vec<Option<(i64, i64)>>,
    notes: Vec<DecodeNote>,
    notes_suppressed: u64,
}

impl Tally {
    fn add(&mut self, frame: &DecodedFrame) {
        let packet = &frame.packet;
        let slot = frame.interface as usize;
        if self.layers.len() <= slot {
            self.layers.resize(slot + 1, LayerCounts::default());
            let plain = self.plain;
            self.gue.resize_with(slot + 1, || match plain {
                true => GueEvidence::default(),
                false => GueEvidence::shaped_only(),
            });
        }
        self.layers[slot].add(packet);
        self.gue[slot].push(frame);
        if self.spans.len() <= slot {
            self.spans.resize(slot + 1, None);
        }
        let ts = frame.ts_ns;
        self.spans[slot] = Some(match self.spans[slot] {
            Some((lo, hi)) => (lo.min(ts), hi.max(ts)),
            None => (ts, ts),
        });
        if let Some(reason) = malformed_reason(packet) {
            if self.notes.len() < MAX_DECODE_NOTES {
                self.notes.push(DecodeNote {
                    frame: frame.number,
                    reason: reason.to_string(),
                });
            } else {
                self.notes_suppressed += 1;
            }
        }
    }
}

/// Reads and decodes every capture (in parallel), counting layers. GUE-shaped UDP on a port
/// nobody named is counted as a tunnel only where the captures show the director wrapping
/// clients' packets in it; the captures are then read again, decoding it.
pub fn survey(sources: &[CaptureSource], opts: &DecodeOptions) -> Vec<CaptureSurvey> {
    // Standard input is read once: everything is gathered in that read.
    let once = sources.contains(&CaptureSource::Stdin);
    let (mut surveys, mut evidence) = survey_once(sources, opts, once);
    if !once && evidence.iter().flatten().any(GueEvidence::carries_packets) {
        // A GUE-shaped datagram would carry a TCP or UDP packet: read again, keeping a sample
        // of the plain packets to compare it with (which costs on every packet, so is done
        // only when there is something to compare).
        (surveys, evidence) = survey_once(sources, opts, true);
    }
    let refs: Vec<(VantageId, &GueEvidence)> = evidence
        .iter()
        .enumerate()
        .flat_map(|(c, per_if)| {
            per_if.iter().enumerate().map(move |(i, e)| {
                let v = VantageId {
                    capture: c as CaptureId,
                    interface: i as u32,
                };
                (v, e)
            })
        })
        .collect();
    let mut gue = gue::judge(&refs);
    let confirmed = gue::confirmed(&gue);
    if !confirmed.is_empty() {
        if once {
            for t in gue.iter_mut().filter(|t| t.confirmed) {
                t.reason.push_str(&format!(
                    "; but standard input cannot be read again to count it: give --gue-port {}",
                    t.port
                ));
            }
        } else {
            let mut again = opts.clone();
            again.gue_tunnels.extend(confirmed);
            surveys = survey_once(sources, &again, false).0;
        }
    }
    for (c, s) in surveys.iter_mut().enumerate() {
        s.gue = gue
            .iter()
            .filter(|t| t.vantages.iter().any(|v| v.capture as usize == c))
            .cloned()
            .collect();
    }
    surveys
}

/// One read of every capture: the surveys, and per capture and interface the GUE evidence
/// (with the plain packets' sample when `plain`).
fn survey_once(
    sources: &[CaptureSource],
    opts: &DecodeOptions,
    plain: bool,
) -> (Vec<CaptureSurvey>, Vec<Vec<GueEvidence>>) {
    let results = read_captures_parallel(
        sources,
        |_| State {
            decoder: Decoder::new(opts.clone()),
            tally: Tally {
                plain,
                ..Tally::default()
            },
        },
        |state, frame| {
            let tally = &mut state.tally;
            state.decoder.push(frame, &mut |f, _| tally.add(f));
        },
    );
    results
        .into_iter()
        .zip(sources)
        .map(|((outcome, state), source)| {
            let State {
                mut decoder,
                mut tally,
            } = state;
            decoder.finish(&mut |f, _| tally.add(f));
            let (read, layers, spans, omitted) = match outcome {
                Ok(summary) => {
                    let (summary, layers, spans, omitted) = shown(summary, &tally);
                    (ReadResult::Summary(summary), layers, spans, omitted)
                }
                Err(e) => (ReadResult::Error(e.to_string()), Vec::new(), Vec::new(), 0),
            };
            let survey = CaptureSurvey {
                file: source.display_name(),
                read,
                layers_per_interface: layers,
                span_per_interface: spans,
                empty_interfaces_omitted: omitted,
                decode_notes: tally.notes,
                decode_notes_suppressed: tally.notes_suppressed,
                gue: Vec::new(),
            };
            (survey, tally.gue)
        })
        .unzip()
}

/// A summary cut to the interfaces listed, with their layer counts and time spans in the same
/// order, and how many empty interfaces were left out.
type Shown = (
    CaptureSummary,
    Vec<LayerCounts>,
    Vec<Option<(i64, i64)>>,
    u64,
);

/// The summary with only the interfaces worth listing
/// ([`CaptureSummary::shown_interfaces`]), their layer counts and time spans in the same
/// order, and how many empty interfaces were left out. `InterfaceInfo::id` stays the
/// interface's number in the file.
fn shown(mut summary: CaptureSummary, tally: &Tally) -> Shown {
    let (keep, omitted) = summary.shown_interfaces();
    let layers = keep
        .iter()
        .map(|&i| tally.layers.get(i).copied().unwrap_or_default())
        .collect();
    let spans = keep
        .iter()
        .map(|&i| tally.spans.get(i).copied().flatten())
        .collect();
    if omitted > 0 {
        let mut wanted = keep.iter().copied().peekable();
        let mut index = 0;
        summary.interfaces.retain(|_| {
            let here = wanted.next_if_eq(&index).is_some();
            index += 1;
            here
        });
        summary.frames_per_interface = keep
            .iter()
            .map(|&i| summary.frames_per_interface.get(i).copied().unwrap_or(0))
            .collect();
    }
    (summary, layers, spans, omitted)
}

/// The reason of the first layer that could not be decoded, if any.
pub fn malformed_reason(packet: &Packet) -> Option<&Defect> {
    let mut ip = match &packet.net {
        Net::Malformed { reason } => return Some(reason),
        Net::Ip(ip) => ip,
        _ => return None,
    };
    loop {
        match &ip.transport {
            Transport::Malformed { reason } => return Some(reason),
            Transport::Tunnel { inner, .. } => ip = inner,
            _ => return None,
        }
    }
}
