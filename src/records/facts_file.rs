//! The facts file of `lvscheck facts` (what each capture says about roles, VIPs and services:
//! pass 1's facts, a few KB per capture) and the topology file of `lvscheck topology`, which
//! merges them, with the options the analysis was given. `extract` works from the topology
//! file; `verify --records` reads it back from the records.
//!
//! Both are JSON. The facts are lvscheck's own state, written whole ([`crate::full_state`]) and
//! versioned: they are read back by the same version of lvscheck only. The topology file also
//! holds the topology as `verify --json` shows it, for people; that part is not read back.

use crate::flows::mirror::MirrorSplit;
use crate::topology::facts::VantageFacts;
use crate::topology::gue::GueTunnel;
use crate::topology::{Hints, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

pub const FACTS_FORMAT: &str = "lvscheck-facts";
pub const TOPOLOGY_FORMAT: &str = "lvscheck-topology";
/// Version of both files' layout.
pub const FILE_VERSION: u32 = 1;

/// Pass 1's facts of one capture, read whole.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaptureFacts {
    /// The file's name, as given.
    pub file: String,
    /// What identifies the capture when `extract` reads it again: its frames and the times
    /// of its first and last.
    pub frames: u64,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    /// Read to its end without a problem; the problem otherwise.
    pub complete: bool,
    pub error: Option<String>,
    /// Facts per vantage point: per interface, or per hop of an interface that held several
    /// hosts' packets (split, [`crate::flows::mirror`]).
    pub facts: Vec<VantageFacts>,
    /// The interfaces split into hops, and how.
    pub mirrors: BTreeSet<u32>,
    pub splits: Vec<MirrorSplit>,
}

/// `lvscheck facts`'s output.
#[derive(Debug, Serialize, Deserialize)]
pub struct FactsFile {
    pub format: String,
    pub version: u32,
    pub state_version: u32,
    pub lvscheck: String,
    /// The UDP ports GUE was decoded on (`--gue-port`, and the rules' `--tun-port`).
    pub gue_ports: Vec<u16>,
    pub captures: Vec<CaptureFacts>,
}

/// What the analysis was told besides the captures, as `topology` was given it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Options {
    pub vips: Vec<IpAddr>,
    /// Roles given with `--role`, by capture number.
    pub roles: BTreeMap<u32, Role>,
    pub gue_ports: Vec<u16>,
    /// The real servers of the rules (`--rules`), when given: what the legs are told apart by.
    pub configured_rs: Option<Vec<IpAddr>>,
    /// The rules file's name, when given (for the report; verify --records is given its own).
    pub rules_file: Option<String>,
}

impl Options {
    pub fn hints(&self) -> Hints {
        let mut h = Hints {
            vips: self.vips.clone(),
            ..Hints::default()
        };
        h.roles.extend(self.roles.iter().map(|(c, r)| (*c, *r)));
        h
    }
}

/// `lvscheck topology`'s output: every capture's facts (numbered in the order given), the
/// tunnels and options decided across them, and the topology for people.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopologyFile {
    pub format: String,
    pub version: u32,
    pub state_version: u32,
    pub lvscheck: String,
    pub options: Options,
    pub captures: Vec<CaptureFacts>,
    /// GUE-shaped UDP judged over every capture ([`crate::topology::gue`]).
    pub gue: Vec<GueTunnel>,
    /// The topology as `verify --json` shows it; not read back.
    pub topology: serde_json::Value,
}

/// Reads a facts or topology file, checking its format and version.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, format: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let head: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let found = head.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if found != format {
        return Err(format!(
            "{}: not a {format} file (format {:?})",
            path.display(),
            found
        ));
    }
    let version = head.get("version").and_then(|v| v.as_u64());
    let state = head.get("state_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FILE_VERSION))
        || state != Some(u64::from(crate::full_state::STATE_VERSION))
    {
        return Err(format!(
            "{}: written by another version of lvscheck ({}): make it again with this one ({})",
            path.display(),
            head.get("lvscheck").and_then(|v| v.as_str()).unwrap_or("?"),
            env!("CARGO_PKG_VERSION")
        ));
    }
    crate::full_state::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a facts or topology file (the state whole).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = crate::full_state::to_json(value).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
