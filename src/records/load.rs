//! Reading the records of `verify --records`: every capture's folder, checked to come from one
//! topology file and to cover all its captures, back into the products the analysis works
//! from ([`crate::flows::products`]).

use super::capture::CaptureRow;
use super::extract::topology_sum;
use super::facts_file::{self, TopologyFile};
use super::{CAPTURE_FILE, LEGS_FILE, TOPOLOGY_FILE};
use crate::flows::products::{CaptureProducts, Products};
use crate::topology::VantageId;
use std::path::PathBuf;

/// The records given, read.
pub struct Loaded {
    pub products: Products,
    /// Every capture's legs file, for the join's query.
    pub legs_files: Vec<PathBuf>,
    pub topology: TopologyFile,
}

/// The capture folders under each path given: the path itself when it holds a capture's
/// records, else its subfolders that do (in name order).
pub fn capture_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.join(CAPTURE_FILE).is_file() {
            out.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| d.join(CAPTURE_FILE).is_file())
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{}: no records here (no {CAPTURE_FILE}, nor a folder holding one): give the \
                 folders lvscheck extract wrote",
                p.display()
            ));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

pub fn load(paths: &[PathBuf]) -> Result<Loaded, String> {
    let dirs = capture_dirs(paths)?;
    let first = &dirs[0];
    let topology_path = first.join(TOPOLOGY_FILE);
    let text = std::fs::read_to_string(&topology_path)
        .map_err(|e| format!("{}: {e}", topology_path.display()))?;
    let topology: TopologyFile =
        facts_file::read_json(&topology_path, facts_file::TOPOLOGY_FORMAT)?;
    let sum = topology_sum(&text);
    let n = topology.captures.len();
    let mut rows: Vec<Option<(PathBuf, CaptureRow)>> = (0..n).map(|_| None).collect();
    for dir in &dirs {
        let row = super::capture::read(dir).map_err(|e| e.to_string())?;
        if row.topology_sum != sum {
            return Err(format!(
                "{}: extracted with another topology file than {}: every capture's records \
                 must come from one (run lvscheck extract with the same --topology)",
                dir.display(),
                first.display()
            ));
        }
        let Some(slot) = rows.get_mut(row.capture as usize) else {
            return Err(format!(
                "{}: capture #{} is not in its topology file",
                dir.display(),
                row.capture
            ));
        };
        if let Some((other, _)) = slot {
            return Err(format!(
                "{} and {}: both hold the records of capture #{} ({}): give each once",
                other.display(),
                dir.display(),
                row.capture,
                row.file
            ));
        }
        *slot = Some((dir.clone(), row));
    }
    let missing: Vec<String> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| format!("#{i} {}", topology.captures[i].file))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the records of {} are missing: the topology file names {n} captures, and every \
             one must be extracted and given (or make the topology without it)",
            missing.join(", ")
        ));
    }
    let mut products = Products {
        gue: topology.gue.clone(),
        splits: topology
            .captures
            .iter()
            .flat_map(|c| c.splits.iter().cloned())
            .collect(),
        captures: Vec::with_capacity(n),
    };
    let mut legs_files = Vec::with_capacity(n);
    for (dir, row) in rows.into_iter().flatten() {
        let vantages: Vec<VantageId> = row.state.facts.iter().map(|f| f.vantage).collect();
        let samplers =
            super::clock::read(&dir, row.capture, &vantages).map_err(|e| e.to_string())?;
        let s = row.state;
        products.captures.push(CaptureProducts {
            file: row.file,
            read: match (s.read, s.error) {
                (_, Some(e)) => Err(e),
                (Some(r), None) => Ok(r),
                (None, None) => Err("no read report in its records".into()),
            },
            facts: s.facts,
            samplers,
            disordered: s.disordered,
            stats: s.stats,
            health_checks: s.health_checks,
        });
        legs_files.push(dir.join(LEGS_FILE));
    }
    Ok(Loaded {
        products,
        legs_files,
        topology,
    })
}
