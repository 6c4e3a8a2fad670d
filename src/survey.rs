//! What `inspect` shows: every capture read and decoded once, with per-interface layer counts and
//! the frames the decoder could not make sense of. A user sees what the tool sees.

use serde::Serialize;

use crate::capture::{read_captures_parallel, CaptureSource, CaptureSummary};
use crate::decode::{DecodeOptions, Decoder, LayerCounts, Net, Packet, Transport};

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
    layers: Vec<LayerCounts>,
    spans: Vec<Option<(i64, i64)>>,
    notes: Vec<DecodeNote>,
    notes_suppressed: u64,
}

/// Reads and decodes every capture (in parallel), counting layers.
pub fn survey(sources: &[CaptureSource], opts: &DecodeOptions) -> Vec<CaptureSurvey> {
    let results = read_captures_parallel(
        sources,
        |_| State {
            decoder: Decoder::new(opts.clone()),
            layers: Vec::new(),
            spans: Vec::new(),
            notes: Vec::new(),
            notes_suppressed: 0,
        },
        |state, frame| {
            let packet = state
                .decoder
                .decode(frame.ts_ns, frame.link_type, frame.data);
            let slot = frame.interface as usize;
            if state.layers.len() <= slot {
                state.layers.resize(slot + 1, LayerCounts::default());
            }
            state.layers[slot].add(&packet);
            if state.spans.len() <= slot {
                state.spans.resize(slot + 1, None);
            }
            let ts = frame.ts_ns;
            state.spans[slot] = Some(match state.spans[slot] {
                Some((lo, hi)) => (lo.min(ts), hi.max(ts)),
                None => (ts, ts),
            });
            if let Some(reason) = malformed_reason(&packet) {
                if state.notes.len() < MAX_DECODE_NOTES {
                    state.notes.push(DecodeNote {
                        frame: frame.number,
                        reason,
                    });
                } else {
                    state.notes_suppressed += 1;
                }
            }
        },
    );
    results
        .into_iter()
        .zip(sources)
        .map(|((outcome, state), source)| {
            let (read, layers, spans, omitted) = match outcome {
                Ok(summary) => {
                    let (summary, layers, spans, omitted) = shown(summary, &state);
                    (ReadResult::Summary(summary), layers, spans, omitted)
                }
                Err(e) => (ReadResult::Error(e.to_string()), Vec::new(), Vec::new(), 0),
            };
            CaptureSurvey {
                file: source.display_name(),
                read,
                layers_per_interface: layers,
                span_per_interface: spans,
                empty_interfaces_omitted: omitted,
                decode_notes: state.notes,
                decode_notes_suppressed: state.notes_suppressed,
            }
        })
        .collect()
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
fn shown(mut summary: CaptureSummary, state: &State) -> Shown {
    let (keep, omitted) = summary.shown_interfaces();
    let layers = keep
        .iter()
        .map(|&i| state.layers.get(i).copied().unwrap_or_default())
        .collect();
    let spans = keep
        .iter()
        .map(|&i| state.spans.get(i).copied().flatten())
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
pub fn malformed_reason(packet: &Packet) -> Option<String> {
    let mut ip = match &packet.net {
        Net::Malformed { reason } => return Some(reason.clone()),
        Net::Ip(ip) => ip,
        _ => return None,
    };
    loop {
        match &ip.transport {
            Transport::Malformed { reason } => return Some(reason.clone()),
            Transport::Tunnel { inner, .. } => ip = inner,
            _ => return None,
        }
    }
}
