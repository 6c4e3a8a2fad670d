//! `lvscheck extract`: one capture read next to where it was taken, its records written.
//!
//! The capture is read once, whole, as `verify`'s second pass reads it (with the tunnels the
//! topology file confirmed decoded and its mirror interfaces split), every leg its trackers
//! finish written as it comes, with the facts and the clock sample of every frame gathered on
//! the way. The topology the trackers work with comes from the topology file: from every
//! capture's facts, as `verify` finds it from its first pass.

use super::capture::{CaptureRow, CaptureState};
use super::facts_file::TopologyFile;
use super::legs::{LegRows, LEGS_VERSION, ROWS_PER_BATCH};
use super::parquet_file::Writer;
use super::{RecordError, LEGS_FILE, TOPOLOGY_FILE};
use crate::capture::frame::CaptureId;
use crate::capture::CaptureSource;
use crate::decode::packet::DecodedFrame;
use crate::decode::DecodeOptions;
use crate::flows::feed::LookAhead;
use crate::flows::legs::{FlowContext, Timeouts};
use crate::flows::mirror;
use crate::flows::pipeline::{FileSource, FrameSource, ReadReport};
use crate::flows::stream::{self, Plan};
use crate::topology::{self, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::path::{Path, PathBuf};

/// What every capture's extract works from: the topology file and what follows from it.
pub struct ExtractPlan {
    pub file: TopologyFile,
    /// The file's text, copied beside each capture's records.
    text: String,
    pub sum: u64,
    pub topology: Topology,
    ctx: FlowContext,
    decode: DecodeOptions,
    mirrors: BTreeMap<CaptureId, BTreeSet<u32>>,
}

/// FxHash of a topology file's text.
pub fn topology_sum(text: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(text.as_bytes());
    h.finish()
}

impl ExtractPlan {
    pub fn read(path: &Path) -> Result<ExtractPlan, String> {
        let file: TopologyFile =
            super::facts_file::read_json(path, super::facts_file::TOPOLOGY_FORMAT)?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ExtractPlan::new(file, text))
    }

    pub fn new(file: TopologyFile, text: String) -> ExtractPlan {
        let topology = topology_of(&file);
        let mut ctx = FlowContext::new(&topology, None);
        ctx.configured_rs = file
            .options
            .configured_rs
            .as_ref()
            .map(|rs| rs.iter().copied().collect());
        let decode = DecodeOptions {
            gue_ports: file.options.gue_ports.clone(),
            gue_tunnels: topology::gue::confirmed(&file.gue),
            gue_probe: true,
            ..DecodeOptions::default()
        };
        let mirrors = file
            .captures
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.mirrors.is_empty())
            .map(|(i, c)| (i as CaptureId, c.mirrors.clone()))
            .collect();
        ExtractPlan {
            sum: topology_sum(&text),
            text,
            file,
            topology,
            ctx,
            decode,
            mirrors,
        }
    }

    /// The number of the capture named `name` in the topology file: the one of that file
    /// name, or the only capture.
    pub fn capture_named(&self, name: &str) -> Result<CaptureId, String> {
        let base = |s: &str| {
            Path::new(s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.to_string())
        };
        let found: Vec<usize> = (0..self.file.captures.len())
            .filter(|&i| base(&self.file.captures[i].file) == base(name))
            .collect();
        match found.as_slice() {
            [i] => Ok(*i as CaptureId),
            [] => Err(format!(
                "{name}: no capture of that name in the topology file (it holds {})",
                self.file
                    .captures
                    .iter()
                    .map(|c| c.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!(
                "{name}: several captures of that name in the topology file; give --capture N"
            )),
        }
    }
}

/// The topology the trackers work with, from the topology file's facts: as `verify` finds it
/// from its first pass (facts, GUE judged, mirror hops described).
pub fn topology_of(file: &TopologyFile) -> Topology {
    let facts: Vec<_> = file
        .captures
        .iter()
        .flat_map(|c| c.facts.iter().cloned())
        .collect();
    let mut t = topology::discover(&facts, &file.options.hints());
    t.limits.extend(topology::gue::limits(&file.gue));
    t.set_gue(file.gue.clone());
    let splits: Vec<_> = file
        .captures
        .iter()
        .flat_map(|c| c.splits.iter().cloned())
        .collect();
    mirror::describe_hops(&mut t, &splits);
    t
}

/// One capture file read as capture number `id` (its frames say so), whatever its place
/// among the files given.
struct Numbered<'a> {
    inner: &'a dyn FrameSource,
    id: CaptureId,
    name: String,
}

impl FrameSource for Numbered<'_> {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        vec![(self.id, self.name.clone())]
    }

    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        self.read_mut(capture, &mut |f, l| each(f, l))
    }

    fn read_mut(
        &self,
        _capture: CaptureId,
        each: &mut dyn FnMut(&mut DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        let id = self.id;
        self.inner.read_mut(0, &mut |f, l| {
            f.capture = id;
            each(f, l)
        })
    }
}

/// What extracting one capture wrote.
#[derive(Debug)]
pub struct Extracted {
    pub capture: CaptureId,
    pub dir: PathBuf,
    pub legs: u64,
    pub clock_samples: u64,
    pub bytes: u64,
}

/// Extracts `source` (capture `id` of the plan) into `dir` (made if missing).
pub fn extract(
    plan: &ExtractPlan,
    source: &CaptureSource,
    id: CaptureId,
    dir: &Path,
) -> Result<Extracted, RecordError> {
    std::fs::create_dir_all(dir).map_err(|e| RecordError::file(dir, e))?;
    let name = source.display_name();
    let files = FileSource::new(
        vec![source.clone()],
        plan.decode.clone(),
        LookAhead::default(),
    );
    let numbered = Numbered {
        inner: &files,
        id,
        name: name.clone(),
    };
    let mine: BTreeMap<CaptureId, BTreeSet<u32>> = plan
        .mirrors
        .get(&id)
        .map(|m| [(id, m.clone())].into_iter().collect())
        .unwrap_or_default();
    let split = mirror::Split::new(&numbered, mine.clone());
    let source: &dyn FrameSource = if mine.is_empty() { &numbered } else { &split };
    let stream_plan = Plan {
        topology: &plan.topology,
        ctx: &plan.ctx,
        timeouts: Timeouts::default(),
        offsets: &[],
        disordered: &[],
        gather: true,
    };
    let legs_path = dir.join(LEGS_FILE);
    let mut writer = Writer::create(&legs_path, super::legs::schema(), LEGS_VERSION)?;
    let mut rows = LegRows::default();
    let mut failed: Option<RecordError> = None;
    let mut legs = 0u64;
    let got = stream::extract(source, id, &stream_plan, &mut |vantage, key, leg| {
        if failed.is_some() {
            return;
        }
        rows.push(vantage, key, &leg);
        legs += 1;
        if rows.len() >= ROWS_PER_BATCH {
            if let Err(e) = writer.write(&rows.finish()) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if !rows.is_empty() {
        writer.write(&rows.finish())?;
    }
    writer.close()?;
    check_identity(plan, id, &name, &got.facts)?;
    let clock_samples = super::clock::write(dir, &got.samplers)?;
    let (read, error) = match got.read {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    super::capture::write(
        dir,
        &CaptureRow {
            capture: id,
            file: name,
            legs,
            topology_sum: plan.sum,
            state: CaptureState {
                read,
                error,
                facts: got.facts,
                disordered: got.disordered,
                stats: got.stats,
                health_checks: got.health_checks,
            },
        },
    )?;
    std::fs::write(dir.join(TOPOLOGY_FILE), &plan.text)
        .map_err(|e| RecordError::file(dir.join(TOPOLOGY_FILE), e))?;
    let bytes = [super::LEGS_FILE, super::CLOCK_FILE, super::CAPTURE_FILE]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(Extracted {
        capture: id,
        dir: dir.to_path_buf(),
        legs,
        clock_samples,
        bytes,
    })
}

/// Frames, first and last time over a capture's facts: what tells the capture read now from
/// the one the topology file was made from.
pub fn identity(facts: &[crate::topology::facts::VantageFacts]) -> (u64, Option<i64>, Option<i64>) {
    let frames = facts
        .iter()
        .filter(|f| f.vantage.interface < mirror::HOP_BASE)
        .map(|f| f.frames)
        .sum();
    let first = facts.iter().filter_map(|f| f.first_ts_ns).min();
    let last = facts.iter().filter_map(|f| f.last_ts_ns).max();
    (frames, first, last)
}

fn check_identity(
    plan: &ExtractPlan,
    id: CaptureId,
    name: &str,
    facts: &[crate::topology::facts::VantageFacts],
) -> Result<(), RecordError> {
    let want = &plan.file.captures[id as usize];
    let (frames, first, last) = identity(facts);
    if plan.mirrors.contains_key(&id) {
        // Split into hops, frames count per hop; the times still tell.
        if (first, last) == (want.first_ts_ns, want.last_ts_ns) {
            return Ok(());
        }
    } else if (frames, first, last) == (want.frames, want.first_ts_ns, want.last_ts_ns) {
        return Ok(());
    }
    Err(RecordError::file(
        name,
        format!(
            "not the capture the topology file names {} ({} frames from {:?} to {:?}; this one \
             has {frames} from {first:?} to {last:?}): run lvscheck facts and topology on it again",
            want.file, want.frames, want.first_ts_ns, want.last_ts_ns
        ),
    ))
}
