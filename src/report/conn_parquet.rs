//! `flows --format parquet`: the columns of the conn log ([`super::conn_row`]) typed, in a
//! Parquet file (zstd) that DuckDB, pandas and Spark read as it is. Written as the connections
//! come: rows gather in Arrow builders a batch at a time and the writer closes a row group
//! every [`ROW_GROUP_ROWS`] rows, so memory is one row group's whatever the number of
//! connections. The file's key-value metadata says `lvscheck.conn_log.version`.

use std::io::{self, Write};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
    UInt16Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::conn_row::{emit, Column, Context, Fields, Kind, COLUMNS, VERSION};
use super::flows::ConnectionWriter;
use crate::flows::{Analysis, Connection};

/// Rows per row group: large enough for zstd and the readers' statistics to pay, small enough
/// to hold in memory (a few MB).
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Rows gathered in the builders before they go to the writer as one batch.
const BATCH_ROWS: usize = 8_192;
/// The metadata key naming the version of the columns.
pub const VERSION_KEY: &str = "lvscheck.conn_log.version";

/// The Arrow schema of the rows: times as UTC nanosecond timestamps, intervals as seconds
/// (float, as Zeek's), counts unsigned 64-bit, ports unsigned 16-bit, addresses and words as
/// strings, sets as lists of strings.
pub fn schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(c.name, data_type(c.kind), true))
        .collect();
    Arc::new(Schema::new(fields))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Time => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        Kind::Interval => DataType::Float64,
        Kind::Count => DataType::UInt64,
        Kind::Port => DataType::UInt16,
        Kind::Addr | Kind::String | Kind::Enum => DataType::Utf8,
        Kind::Set => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
    }
}

/// Times, intervals, and the identifiers of a connection: nearly every row has its own value.
fn unique_per_row(c: &Column) -> bool {
    matches!(c.kind, Kind::Time | Kind::Interval)
        || ["uid", "id.orig_p", "conn_id", "isn"].contains(&c.name)
}

enum Builder {
    Time(TimestampNanosecondBuilder),
    Interval(Float64Builder),
    Count(UInt64Builder),
    Port(UInt16Builder),
    Text(StringBuilder),
    Set(ListBuilder<StringBuilder>),
}

impl Builder {
    fn of(kind: Kind) -> Builder {
        match kind {
            Kind::Time => Builder::Time(TimestampNanosecondBuilder::new().with_timezone("UTC")),
            Kind::Interval => Builder::Interval(Float64Builder::new()),
            Kind::Count => Builder::Count(UInt64Builder::new()),
            Kind::Port => Builder::Port(UInt16Builder::new()),
            Kind::Addr | Kind::String | Kind::Enum => Builder::Text(StringBuilder::new()),
            Kind::Set => Builder::Set(ListBuilder::new(StringBuilder::new())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Interval(b) => Arc::new(b.finish()),
            Builder::Count(b) => Arc::new(b.finish()),
            Builder::Port(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Set(b) => Arc::new(b.finish()),
        }
    }
}

pub struct ConnParquet<W: Write + Send> {
    /// The output until the writer is made (at the head, once the input is known usable).
    out: Option<W>,
    writer: Option<ArrowWriter<W>>,
    ctx: Option<Context>,
    schema: SchemaRef,
    builders: Vec<Builder>,
    /// Rows in the builders.
    rows: usize,
    row_group_rows: usize,
}

impl<W: Write + Send> ConnParquet<W> {
    pub fn new(out: W) -> Self {
        Self::with_row_groups(out, ROW_GROUP_ROWS)
    }

    /// A writer closing a row group every `row_group_rows` rows (at least 1).
    pub fn with_row_groups(out: W, row_group_rows: usize) -> Self {
        ConnParquet {
            out: Some(out),
            writer: None,
            ctx: None,
            schema: schema(),
            builders: COLUMNS.iter().map(|c| Builder::of(c.kind)).collect(),
            rows: 0,
            row_group_rows: row_group_rows.max(1),
        }
    }

    /// The rows gathered so far, to the writer as one batch.
    fn write_batch(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(io::Error::other)?;
        self.writer
            .as_mut()
            .expect("head comes before the connections")
            .write(&batch)
            .map_err(io::Error::other)
    }
}

impl<W: Write + Send> ConnectionWriter for ConnParquet<W> {
    fn head(&mut self, a: &Analysis) -> io::Result<()> {
        self.ctx = Some(Context::new(a));
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(VERSION_KEY.into(), VERSION.to_string()),
                KeyValue::new(
                    "lvscheck.version".into(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
            ]));
        // A dictionary pays for the columns whose values repeat (addresses, words, names);
        // for those nearly unique per row it only grows to its limit and is dropped, a
        // megabyte or two of memory per column for nothing.
        for c in COLUMNS.iter().filter(|c| unique_per_row(c)) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(c.name), false);
        }
        let props = props.build();
        let out = self.out.take().expect("one head");
        self.writer = Some(
            ArrowWriter::try_new(out, self.schema.clone(), Some(props))
                .map_err(io::Error::other)?,
        );
        Ok(())
    }

    fn connection(&mut self, c: &Connection) -> io::Result<()> {
        let ctx = self
            .ctx
            .as_ref()
            .expect("head comes before the connections");
        let mut row = Row {
            builders: &mut self.builders,
            next: 0,
        };
        emit(c, ctx, &mut row);
        debug_assert_eq!(row.next, COLUMNS.len());
        self.rows += 1;
        if self.rows == BATCH_ROWS.min(self.row_group_rows) {
            self.write_batch()?;
        }
        Ok(())
    }

    fn tail(&mut self, _: &Analysis) -> io::Result<()> {
        self.write_batch()?;
        let writer = self.writer.as_mut().expect("head comes before the tail");
        writer.finish().map_err(io::Error::other)?;
        writer.inner_mut().flush()
    }
}

/// A row's fields into the builders, one column after the other.
struct Row<'a> {
    builders: &'a mut [Builder],
    next: usize,
}

impl Row<'_> {
    fn builder(&mut self) -> &mut Builder {
        self.next += 1;
        &mut self.builders[self.next - 1]
    }
}

impl Fields for Row<'_> {
    fn time(&mut self, ns: Option<i64>) {
        match self.builder() {
            Builder::Time(b) => b.append_option(ns),
            _ => unreachable!("a time column"),
        }
    }

    fn interval(&mut self, ns: Option<i64>) {
        match self.builder() {
            Builder::Interval(b) => b.append_option(ns.map(|ns| ns as f64 / 1e9)),
            _ => unreachable!("an interval column"),
        }
    }

    fn count(&mut self, n: Option<u64>) {
        match self.builder() {
            Builder::Count(b) => b.append_option(n),
            _ => unreachable!("a count column"),
        }
    }

    fn port(&mut self, p: Option<u16>) {
        match self.builder() {
            Builder::Port(b) => b.append_option(p),
            _ => unreachable!("a port column"),
        }
    }

    fn text(&mut self, value: Option<&dyn std::fmt::Display>) {
        use std::fmt::Write as _;
        match (self.builder(), value) {
            (Builder::Text(b), Some(v)) => {
                // The builder takes what is written as the next value's start.
                let _ = write!(b, "{v}");
                b.append_value("");
            }
            (Builder::Text(b), None) => b.append_null(),
            _ => unreachable!("a text column"),
        }
    }

    fn set(&mut self, items: &[&str]) {
        match self.builder() {
            Builder::Set(b) => {
                for item in items {
                    b.values().append_value(item);
                }
                b.append(true);
            }
            _ => unreachable!("a set column"),
        }
    }
}
