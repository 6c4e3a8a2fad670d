//! `lvscheck facts` and `lvscheck topology`: pass 1 of each capture where it was taken, then
//! the facts merged into the topology file that `extract` works from.

use super::extract::identity;
use super::facts_file::{
    CaptureFacts, FactsFile, Options, TopologyFile, FACTS_FORMAT, FILE_VERSION, TOPOLOGY_FORMAT,
};
use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::flows::feed::LookAhead;
use crate::flows::pipeline::{whole_facts, FileSource, FlowOptions};
use crate::topology::{self, Role};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Pass 1 of each capture, read whole, with GUE decoded on `gue_ports`.
pub fn facts(sources: &[CaptureSource], gue_ports: &[u16]) -> FactsFile {
    let decode = DecodeOptions {
        gue_ports: gue_ports.to_vec(),
        gue_probe: true,
        ..DecodeOptions::default()
    };
    let source = FileSource::new(sources.to_vec(), decode, LookAhead::default());
    let whole = whole_facts(&source, &FlowOptions::default());
    let captures = whole
        .into_iter()
        .zip(sources)
        .map(|(w, s)| {
            let (frames, first_ts_ns, last_ts_ns) = identity(&w.facts);
            let (complete, error) = match &w.read {
                Ok(r) => (r.complete, None),
                Err(e) => (false, Some(e.clone())),
            };
            CaptureFacts {
                file: s.display_name(),
                frames,
                first_ts_ns,
                last_ts_ns,
                complete,
                error,
                facts: w.facts,
                mirrors: w.mirrors,
                splits: w.splits,
            }
        })
        .collect();
    FactsFile {
        format: FACTS_FORMAT.into(),
        version: FILE_VERSION,
        state_version: crate::full_state::STATE_VERSION,
        lvscheck: env!("CARGO_PKG_VERSION").into(),
        gue_ports: gue_ports.to_vec(),
        captures,
    }
}

/// What `topology` is told besides the facts.
#[derive(Debug, Default)]
pub struct TopologyOptions {
    pub vips: Vec<IpAddr>,
    /// (role, capture file name) of each `--role`.
    pub roles: Vec<(Role, String)>,
    pub configured_rs: Option<Vec<IpAddr>>,
    pub rules_file: Option<String>,
}

/// Every `"capture": N` in a capture's facts made `"capture": id`: the facts were numbered
/// by the `facts` run that read them, the topology numbers every capture it merges.
fn renumber(value: &mut serde_json::Value, id: u32) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "capture" && v.is_u64() {
                    *v = serde_json::Value::from(id);
                } else {
                    renumber(v, id);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| renumber(v, id)),
        _ => {}
    }
}

/// Merges facts files (their captures numbered in the order given) into the topology file.
/// Err when the captures show GUE on a port the facts did not decode: they must be read again.
pub fn topology(
    files: Vec<(PathBuf, FactsFile)>,
    opts: TopologyOptions,
) -> Result<TopologyFile, String> {
    let mut captures = Vec::new();
    let mut gue_ports: Vec<u16> = Vec::new();
    for (path, f) in files {
        gue_ports.extend(&f.gue_ports);
        for c in f.captures {
            let id = captures.len() as u32;
            let mut v: serde_json::Value = serde_json::from_str(
                &crate::full_state::to_json(&c).map_err(|e| format!("{}: {e}", path.display()))?,
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            renumber(&mut v, id);
            let c: CaptureFacts = crate::full_state::from_json(&v.to_string())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            captures.push(c);
        }
    }
    gue_ports.sort_unstable();
    gue_ports.dedup();
    let evidence: Vec<_> = captures
        .iter()
        .flat_map(|c| c.facts.iter().map(|f| (f.vantage, &f.gue)))
        .collect();
    let gue = topology::gue::judge(&evidence);
    let undecoded: Vec<String> = topology::gue::confirmed(&gue)
        .iter()
        .map(|(src, port)| format!("UDP port {port} from {src}"))
        .collect();
    if !undecoded.is_empty() {
        let ports: Vec<String> = topology::gue::confirmed(&gue)
            .iter()
            .map(|(_, p)| format!("--gue-port {p}"))
            .collect();
        return Err(format!(
            "the captures show GUE tunnels the facts did not decode ({}): their packets were \
             read as plain UDP; make the facts of every capture again with `lvscheck facts {}` \
             (or with --rules that name the tunnel port)",
            undecoded.join(", "),
            ports.join(" ")
        ));
    }
    let mut roles = BTreeMap::new();
    for (role, file) in &opts.roles {
        let base = |s: &str| {
            std::path::Path::new(s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        };
        let id = captures
            .iter()
            .position(|c| c.file == *file || base(&c.file) == base(file))
            .ok_or_else(|| format!("--role {role}={file}: no capture of that name in the facts"))?;
        roles.insert(id as u32, *role);
    }
    let options = Options {
        vips: opts.vips,
        roles,
        gue_ports,
        configured_rs: opts.configured_rs,
        rules_file: opts.rules_file,
    };
    let mut file = TopologyFile {
        format: TOPOLOGY_FORMAT.into(),
        version: FILE_VERSION,
        state_version: crate::full_state::STATE_VERSION,
        lvscheck: env!("CARGO_PKG_VERSION").into(),
        options,
        captures,
        gue,
        topology: serde_json::Value::Null,
    };
    file.topology =
        serde_json::to_value(super::extract::topology_of(&file)).map_err(|e| e.to_string())?;
    Ok(file)
}
