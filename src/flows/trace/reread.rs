//! The captures read once more after the analysis, the way pass 2 read them: GUE decoded where
//! the analysis confirmed it, mirror interfaces split into the same hops, so that every frame
//! carries the vantage point the connections' legs name.

use crate::capture::frame::CaptureId;
use crate::capture::CaptureSource;
use crate::decode::packet::DecodedFrame;
use crate::decode::DecodeOptions;
use crate::flows::feed::LookAhead;
use crate::flows::mirror::Split;
use crate::flows::pipeline::{Analysis, FileSource, FrameSource};
use crate::topology::gue;
use std::collections::{BTreeMap, BTreeSet};

/// Calls `each` with every decoded frame of every capture, one capture after the other in the
/// order given, each in file order. Returns, per capture, why it could not be read (None when
/// it could): the analysis has said so already, this is for the caller's own account.
pub fn read_again(
    files: &[CaptureSource],
    decode: DecodeOptions,
    analysis: &Analysis,
    each: &mut dyn FnMut(&DecodedFrame),
) -> Vec<Option<String>> {
    read_again_with(files, decode, analysis, false, None, each)
}

/// [`read_again`] of one capture, `capture` (an index of `files`), and why it could not be
/// read, if it could not; with `copies`, the copies of a frame that a split mirror interface
/// holds twice (the sender's and the receiver's), which the analysis left out, come too, in
/// file order, on the mirror interface itself (a vantage point no leg names). Captures can be
/// read so each on its own thread.
pub fn read_one_again(
    files: &[CaptureSource],
    decode: DecodeOptions,
    analysis: &Analysis,
    copies: bool,
    capture: CaptureId,
    each: &mut dyn FnMut(&DecodedFrame),
) -> Option<String> {
    read_again_with(files, decode, analysis, copies, Some(capture), each)
        .into_iter()
        .flatten()
        .next()
}

fn read_again_with(
    files: &[CaptureSource],
    mut decode: DecodeOptions,
    analysis: &Analysis,
    copies: bool,
    only: Option<CaptureId>,
    each: &mut dyn FnMut(&DecodedFrame),
) -> Vec<Option<String>> {
    decode
        .gue_tunnels
        .extend(gue::confirmed(&analysis.topology.gue));
    // Nothing is kept for a later pass (none comes); the look-ahead only sizes the chunks.
    let source = FileSource::new(files.to_vec(), decode, LookAhead::default());
    let mirrors = split_interfaces(analysis);
    let split = Split::new(&source, mirrors.clone());
    let split = if copies { split.with_copies() } else { split };
    let source: &dyn FrameSource = if mirrors.is_empty() { &source } else { &split };
    source
        .captures()
        .iter()
        .filter(|(capture, _)| only.is_none_or(|c| c == *capture))
        .map(|(capture, _)| source.read(*capture, &mut |f, _| each(f)).err())
        .collect()
}

/// The interfaces the analysis split into hops (not those it left whole, and said why).
pub fn split_interfaces(analysis: &Analysis) -> BTreeMap<CaptureId, BTreeSet<u32>> {
    let mut out: BTreeMap<CaptureId, BTreeSet<u32>> = BTreeMap::new();
    for m in analysis.mirrors.iter().filter(|m| m.not_split.is_none()) {
        out.entry(m.capture).or_default().insert(m.interface);
    }
    out
}
