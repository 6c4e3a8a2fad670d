//! `capture.parquet`: one row per capture with its read report and the rest of its state that
//! is not legs or clock samples (facts over all its frames, statistics, health checks), the
//! state as JSON ([`crate::full_state`]) beside a few readable columns.

use super::parquet_file::{self, Writer};
use super::{RecordError, CAPTURE_FILE};
use crate::flows::pipeline::{ReadReport, VantageStats};
use crate::flows::probes::HealthChecks;
use crate::topology::facts::VantageFacts;
use arrow::array::{ArrayRef, BooleanArray, StringArray, StringBuilder, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

pub const CAPTURE_VERSION: u32 = 1;

/// One capture's state besides its legs and clock sample.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaptureState {
    pub read: Option<ReadReport>,
    /// Why nothing of it could be read.
    pub error: Option<String>,
    pub facts: Vec<VantageFacts>,
    pub disordered: bool,
    pub stats: Vec<VantageStats>,
    pub health_checks: Vec<HealthChecks>,
}

/// The capture's row: readable columns and the state.
pub struct CaptureRow {
    pub capture: u32,
    pub file: String,
    pub legs: u64,
    /// FxHash of the topology file's text: every capture of one join must come from one.
    pub topology_sum: u64,
    pub state: CaptureState,
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("capture", DataType::UInt32, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("lvscheck", DataType::Utf8, false),
        Field::new("state_version", DataType::UInt32, false),
        Field::new("complete", DataType::Boolean, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("warnings", DataType::Utf8, false),
        Field::new("legs", DataType::UInt64, false),
        Field::new("topology_sum", DataType::UInt64, false),
        Field::new("state", DataType::Utf8, false),
    ]))
}

pub fn write(dir: &Path, row: &CaptureRow) -> Result<(), RecordError> {
    let path = dir.join(CAPTURE_FILE);
    let state = crate::full_state::to_json(&row.state).map_err(|e| RecordError::file(&path, e))?;
    let warnings = row
        .state
        .read
        .as_ref()
        .map(|r| r.warnings.join("\n"))
        .unwrap_or_default();
    let text = |s: &str| {
        let mut b = StringBuilder::new();
        b.append_value(s);
        Arc::new(b.finish()) as ArrayRef
    };
    let mut error = StringBuilder::new();
    error.append_option(row.state.error.as_deref());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(vec![row.capture])),
        text(&row.file),
        text(env!("CARGO_PKG_VERSION")),
        Arc::new(UInt32Array::from(vec![crate::full_state::STATE_VERSION])),
        Arc::new(BooleanArray::from(vec![row
            .state
            .read
            .as_ref()
            .is_some_and(|r| r.complete)])),
        Arc::new(error.finish()),
        text(&warnings),
        Arc::new(UInt64Array::from(vec![row.legs])),
        Arc::new(UInt64Array::from(vec![row.topology_sum])),
        text(&state),
    ];
    let batch = RecordBatch::try_new(schema(), columns).expect("the columns follow the schema");
    let mut w = Writer::create(&path, schema(), CAPTURE_VERSION)?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
}

pub fn read(dir: &Path) -> Result<CaptureRow, RecordError> {
    let path = dir.join(CAPTURE_FILE);
    let mut row = None;
    parquet_file::read(&path, CAPTURE_VERSION, &mut |b| {
        if b.num_rows() == 0 || row.is_some() {
            return Ok(());
        }
        let get = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| RecordError::file(&path, format!("no column {name}")))
        };
        let string = |name: &str| -> Result<String, RecordError> {
            get(name)?
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(0).to_string())
                .ok_or_else(|| RecordError::file(&path, format!("column {name} is not text")))
        };
        let u64_of = |name: &str| -> Result<u64, RecordError> {
            get(name)?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| a.value(0))
                .ok_or_else(|| RecordError::file(&path, format!("column {name} is not u64")))
        };
        let capture = get("capture")?
            .as_any()
            .downcast_ref::<UInt32Array>()
            .map(|a| a.value(0))
            .ok_or_else(|| RecordError::file(&path, "column capture is not u32"))?;
        let state: CaptureState = crate::full_state::from_json(&string("state")?)
            .map_err(|e| RecordError::file(&path, format!("its state: {e}")))?;
        row = Some(CaptureRow {
            capture,
            file: string("file")?,
            legs: u64_of("legs")?,
            topology_sum: u64_of("topology_sum")?,
            state,
        });
        Ok(())
    })?;
    row.ok_or_else(|| RecordError::file(&path, "no row"))
}
