//! `clock.parquet`: the packets one capture sampled for the clock estimate, one row each (the
//! sample is chosen by packet identity, so every capture sampled the same packets: see
//! [`crate::flows::clock::ClockSampler`]).

use super::parquet_file::{self, Writer};
use super::{RecordError, CLOCK_FILE};
use crate::flows::clock::{ClockSampler, Sighting};
use crate::topology::VantageId;
use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Int64Array, Int64Builder, StringArray, StringBuilder,
    UInt16Array, UInt16Builder, UInt32Array, UInt32Builder, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub const CLOCK_VERSION: u32 = 1;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("capture", DataType::UInt32, false),
        Field::new("interface", DataType::UInt32, false),
        Field::new("level", DataType::UInt32, false),
        Field::new("fingerprint", DataType::UInt64, false),
        Field::new("ts_ns", DataType::Int64, false),
        Field::new("src", DataType::Utf8, false),
        Field::new("dst", DataType::Utf8, false),
        Field::new("src_port", DataType::UInt16, false),
        Field::new("wrapped", DataType::Boolean, false),
    ]))
}

/// Writes every vantage point's sample into `dir`. A vantage point with nothing sampled has
/// no row: read back, its sample is empty at level 0, as it was.
pub fn write(dir: &Path, samplers: &[(VantageId, ClockSampler)]) -> Result<u64, RecordError> {
    let mut w = Writer::create(&dir.join(CLOCK_FILE), schema(), CLOCK_VERSION)?;
    for (v, s) in samplers {
        let (level, kept) = s.parts();
        let mut capture = UInt32Builder::new();
        let mut interface = UInt32Builder::new();
        let mut levels = UInt32Builder::new();
        let mut value = UInt64Builder::new();
        let mut ts = Int64Builder::new();
        let mut src = StringBuilder::new();
        let mut dst = StringBuilder::new();
        let mut port = UInt16Builder::new();
        let mut wrapped = BooleanBuilder::new();
        for k in kept {
            capture.append_value(v.capture);
            interface.append_value(v.interface);
            levels.append_value(level);
            value.append_value(k.value);
            ts.append_value(k.ts_ns);
            src.append_value(k.src.to_string());
            dst.append_value(k.dst.to_string());
            port.append_value(k.src_port);
            wrapped.append_value(k.wrapped);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(capture.finish()),
            Arc::new(interface.finish()),
            Arc::new(levels.finish()),
            Arc::new(value.finish()),
            Arc::new(ts.finish()),
            Arc::new(src.finish()),
            Arc::new(dst.finish()),
            Arc::new(port.finish()),
            Arc::new(wrapped.finish()),
        ];
        let batch = RecordBatch::try_new(schema(), columns).expect("the columns follow the schema");
        if batch.num_rows() > 0 {
            w.write(&batch)?;
        }
    }
    w.close()
}

fn col<'b, T: 'static>(b: &'b RecordBatch, name: &str, path: &Path) -> Result<&'b T, RecordError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| RecordError::file(path, format!("no column {name} of the expected type")))
}

/// Reads the samples of `dir`, for every vantage point in `vantages` (those without rows get an
/// empty sample), numbered as capture `capture`.
pub fn read(
    dir: &Path,
    capture: u32,
    vantages: &[VantageId],
) -> Result<Vec<(VantageId, ClockSampler)>, RecordError> {
    let path = dir.join(CLOCK_FILE);
    let mut by: BTreeMap<VantageId, (u32, Vec<Sighting>)> =
        vantages.iter().map(|v| (*v, (0, Vec::new()))).collect();
    parquet_file::read(&path, CLOCK_VERSION, &mut |b| {
        let interface: &UInt32Array = col(&b, "interface", &path)?;
        let level: &UInt32Array = col(&b, "level", &path)?;
        let value: &UInt64Array = col(&b, "fingerprint", &path)?;
        let ts: &Int64Array = col(&b, "ts_ns", &path)?;
        let src: &StringArray = col(&b, "src", &path)?;
        let dst: &StringArray = col(&b, "dst", &path)?;
        let port: &UInt16Array = col(&b, "src_port", &path)?;
        let wrapped: &BooleanArray = col(&b, "wrapped", &path)?;
        for i in 0..b.num_rows() {
            let addr = |a: &StringArray| {
                a.value(i).parse().map_err(|_| {
                    RecordError::file(&path, format!("row {i}: {:?} is no address", a.value(i)))
                })
            };
            let v = VantageId {
                capture,
                interface: interface.value(i),
            };
            let entry = by.entry(v).or_insert((0, Vec::new()));
            entry.0 = level.value(i);
            entry.1.push(Sighting {
                value: value.value(i),
                ts_ns: ts.value(i),
                src: addr(src)?,
                dst: addr(dst)?,
                src_port: port.value(i),
                wrapped: wrapped.value(i),
            });
        }
        Ok(())
    })?;
    Ok(by
        .into_iter()
        .map(|(v, (level, kept))| (v, ClockSampler::from_parts(level, kept)))
        .collect())
}
