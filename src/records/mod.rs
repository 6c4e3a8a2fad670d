//! Records: what `lvscheck extract` keeps of each capture, next to where it was taken, so that
//! only these (a few MB per GB of capture) cross the network, and `verify --records` joins them
//! into the same connections and check results as `verify` on the captures.
//!
//! Per capture, a folder of three Parquet files (schema: docs/records.md): `legs.parquet`, one
//! row per leg ([`legs`]); `clock.parquet`, the packets sampled for the clock estimate
//! ([`clock`]); `capture.parquet`, one row with the read report and the rest of the capture's
//! state ([`capture`]); and the topology file it was extracted with. The join is a query
//! ([`join`]) run by DataFusion, embedded or on a Ballista cluster ([`engine`]).

pub mod capture;
pub mod clock;
pub mod engine;
pub mod extract;
pub mod facts_file;
pub mod join;
pub mod legs;
pub mod load;
pub mod make;
mod parquet_file;

use std::path::PathBuf;

/// What went wrong with records, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Other(String),
}

impl RecordError {
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> RecordError {
        RecordError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Names of a capture's record files.
pub const LEGS_FILE: &str = "legs.parquet";
pub const CLOCK_FILE: &str = "clock.parquet";
pub const CAPTURE_FILE: &str = "capture.parquet";
pub const TOPOLOGY_FILE: &str = "topology.json";
/// The key of the records' version in each Parquet file's metadata.
pub const VERSION_KEY: &str = "lvscheck.records.version";

/// The analysis of the records under `paths` (folders `extract` wrote), the legs joined by the
/// query on `engine`, each connection handed to `sink` as it is rebuilt: what
/// [`crate::flows::analyse_streaming`] gives on the captures. The options the records were
/// extracted with (`lvscheck topology`'s) replace `opts`'s hints.
pub fn analyse_streaming(
    paths: &[PathBuf],
    engine: &engine::Engine,
    opts: &crate::flows::FlowOptions,
    sink: &mut dyn crate::flows::ConnectionSink,
) -> Result<crate::flows::Analysis, String> {
    let loaded = crate::records::load::load(paths)?;
    // The records were extracted with what `lvscheck topology` was told.
    let mut opts = opts.clone();
    let given = &loaded.topology.options;
    opts.hints = given.hints();
    let rules_rs = opts.expected.as_ref().map(|e| {
        let mut rs: Vec<_> = e
            .iter()
            .flat_map(|s| s.real_servers.iter().map(|r| r.addr))
            .collect();
        rs.sort();
        rs.dedup();
        rs
    });
    let mut extracted_rs = given.configured_rs.clone();
    if let Some(rs) = &mut extracted_rs {
        rs.sort();
        rs.dedup();
    }
    if rules_rs != extracted_rs {
        opts.notes.push(format!(
            "the records were extracted with {} and verified with {}: the legs were told apart \
             by other real servers than these rules name; give lvscheck topology the same --rules",
            given
                .rules_file
                .as_deref()
                .map_or("no rules".to_string(), |f| format!("the rules of {f}")),
            if rules_rs.is_some() {
                "--rules"
            } else {
                "none"
            }
        ));
    }
    let files = loaded.legs_files;
    crate::flows::products::analyse_products(
        loaded.products,
        &opts,
        &mut |joiner, offsets, each| {
            crate::records::join::join_legs(engine, &files, offsets, joiner, each)
                .map_err(|e| e.to_string())
        },
        sink,
    )
}

/// [`analyse_streaming`] keeping every connection, in order of start and numbered so, as
/// [`crate::flows::analyse_source`] does.
pub fn analyse(
    paths: &[PathBuf],
    engine: &engine::Engine,
    opts: &crate::flows::FlowOptions,
) -> Result<crate::flows::Analysis, String> {
    let mut kept = Vec::new();
    let mut analysis = analyse_streaming(paths, engine, opts, &mut |c| kept.push(c))?;
    kept.sort_by_key(|c: &crate::flows::Connection| (c.first_ts_ns, c.key()));
    for (i, c) in kept.iter_mut().enumerate() {
        c.id = i as u64 + 1;
    }
    analysis.connections = kept;
    Ok(analysis)
}
