//! Writing and reading one Parquet file of records: zstd-compressed, with the records' version
//! in its metadata, read back whole batch by batch.

use super::{RecordError, VERSION_KEY};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A Parquet file being written.
pub struct Writer {
    path: PathBuf,
    inner: ArrowWriter<File>,
}

impl Writer {
    pub fn create(path: &Path, schema: SchemaRef, version: u32) -> Result<Writer, RecordError> {
        let file = File::create(path).map_err(|e| RecordError::file(path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("a zstd level"),
            ))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                VERSION_KEY.to_string(),
                version.to_string(),
            )]))
            .build();
        let inner = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| RecordError::file(path, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            inner,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), RecordError> {
        self.inner
            .write(batch)
            .map_err(|e| RecordError::file(&self.path, e))
    }

    /// Writes the footer; the file is complete only then.
    pub fn close(self) -> Result<u64, RecordError> {
        let path = self.path;
        let meta = self
            .inner
            .close()
            .map_err(|e| RecordError::file(&path, e))?;
        Ok(meta.file_metadata().num_rows() as u64)
    }
}

/// Reads a records file whole, checking its version; each batch goes to `each`.
pub fn read(
    path: &Path,
    version: u32,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let file = File::open(path).map_err(|e| RecordError::file(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| RecordError::file(path, e))?;
    let found = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == VERSION_KEY))
        .and_then(|k| k.value.clone());
    if found.as_deref() != Some(version.to_string().as_str()) {
        return Err(RecordError::file(
            path,
            format!(
                "records version {} where this lvscheck reads version {version}: extract again \
                 with this lvscheck",
                found.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    let reader = builder.build().map_err(|e| RecordError::file(path, e))?;
    for batch in reader {
        each(batch.map_err(|e| RecordError::file(path, e))?)?;
    }
    Ok(())
}
