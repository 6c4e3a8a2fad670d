//! `legs.parquet`: one row per leg, the vantage point's view of one connection, as `extract`
//! wrote it (schema in docs/records.md).
//!
//! The readable columns (keys, times, counts, flags, fingerprints, evidence frames) are for the
//! people who query the records with DuckDB, pandas or Spark, and for the join's query, which
//! groups on the keys and times. `verify --records` rebuilds each leg from `packed`, lvscheck's
//! own encoding of the whole state (the bytes the join of `verify` unpacks), so that it judges
//! exactly what `verify` judges; `packed_sum` guards those bytes against damage.

use super::RecordError;
use crate::flows::packed::PackedLeg;
use crate::flows::{ConnKey, Form};
use crate::topology::{Proto, VantageId};
use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanBuilder, Int64Array, Int64Builder,
    ListBuilder, StringArray, StringBuilder, UInt16Array, UInt16Builder, UInt32Array,
    UInt32Builder, UInt64Array, UInt64Builder, UInt8Array, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Version of the legs' schema, in the file's metadata (`lvscheck.records.version`).
pub const LEGS_VERSION: u32 = 1;
/// Rows per record batch (and so per row group at most): big enough for the columns to
/// compress, small enough that a writer holds a few MB.
pub const ROWS_PER_BATCH: usize = 64 * 1024;

/// The schema of `legs.parquet`.
pub fn schema() -> SchemaRef {
    let u64_list = DataType::List(Arc::new(Field::new("item", DataType::UInt64, true)));
    let str_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let mut fields = vec![
        Field::new("capture", DataType::UInt32, false),
        Field::new("interface", DataType::UInt32, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("proto", DataType::UInt8, false),
        Field::new("client_ip", DataType::Utf8, false),
        Field::new("client_port", DataType::UInt16, false),
        Field::new("vip_ip", DataType::Utf8, false),
        Field::new("vip_port", DataType::UInt16, false),
        Field::new("first_ts_ns", DataType::Int64, false),
        Field::new("last_ts_ns", DataType::Int64, false),
        Field::new("isn", DataType::UInt32, true),
        Field::new("history", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, true),
    ];
    for form in FORMS {
        fields.push(Field::new(
            format!("{form}_packets"),
            DataType::UInt64,
            false,
        ));
        fields.push(Field::new(
            format!("{form}_ip_bytes"),
            DataType::UInt64,
            false,
        ));
    }
    fields.extend([
        Field::new("tunnel_src", DataType::Utf8, true),
        Field::new("tunnel_dst", DataType::Utf8, true),
        Field::new("handshake_ns", DataType::Int64, true),
        Field::new("first_response_ns", DataType::Int64, true),
        Field::new("icmp_unreachable", DataType::Boolean, false),
        Field::new("fingerprints", u64_list, false),
        Field::new("evidence", str_list, false),
        Field::new(
            "evidence_frames",
            DataType::List(Arc::new(Field::new("item", DataType::UInt64, true))),
            false,
        ),
        Field::new("packed", DataType::Binary, false),
        Field::new("packed_sum", DataType::UInt64, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The forms, as the columns name them, in [`Form::ALL`]'s order.
const FORMS: [&str; 4] = ["request", "request_wrapped", "reply", "reply_other_source"];

/// A checksum of a leg's packed bytes: FxHash, not cryptographic (it finds damage, it does
/// not stop forgery).
pub fn packed_sum(bytes: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(bytes);
    h.write_usize(bytes.len());
    h.finish()
}

/// Builds record batches of legs, a row at a time.
pub struct LegRows {
    n: usize,
    capture: UInt32Builder,
    interface: UInt32Builder,
    role: StringBuilder,
    proto: UInt8Builder,
    client_ip: StringBuilder,
    client_port: UInt16Builder,
    vip_ip: StringBuilder,
    vip_port: UInt16Builder,
    first_ts: Int64Builder,
    last_ts: Int64Builder,
    isn: UInt32Builder,
    history: StringBuilder,
    outcome: StringBuilder,
    form_counts: Vec<(UInt64Builder, UInt64Builder)>,
    tunnel_src: StringBuilder,
    tunnel_dst: StringBuilder,
    handshake: Int64Builder,
    first_response: Int64Builder,
    icmp_unreachable: BooleanBuilder,
    fingerprints: ListBuilder<UInt64Builder>,
    evidence: ListBuilder<StringBuilder>,
    evidence_frames: ListBuilder<UInt64Builder>,
    packed: BinaryBuilder,
    packed_sum: UInt64Builder,
    /// For the address columns, one buffer for all rows.
    text: String,
}

impl Default for LegRows {
    fn default() -> Self {
        LegRows {
            n: 0,
            capture: UInt32Builder::new(),
            interface: UInt32Builder::new(),
            role: StringBuilder::new(),
            proto: UInt8Builder::new(),
            client_ip: StringBuilder::new(),
            client_port: UInt16Builder::new(),
            vip_ip: StringBuilder::new(),
            vip_port: UInt16Builder::new(),
            first_ts: Int64Builder::new(),
            last_ts: Int64Builder::new(),
            isn: UInt32Builder::new(),
            history: StringBuilder::new(),
            outcome: StringBuilder::new(),
            form_counts: (0..FORMS.len())
                .map(|_| (UInt64Builder::new(), UInt64Builder::new()))
                .collect(),
            tunnel_src: StringBuilder::new(),
            tunnel_dst: StringBuilder::new(),
            handshake: Int64Builder::new(),
            first_response: Int64Builder::new(),
            icmp_unreachable: BooleanBuilder::new(),
            fingerprints: ListBuilder::new(UInt64Builder::new()),
            evidence: ListBuilder::new(StringBuilder::new()),
            evidence_frames: ListBuilder::new(UInt64Builder::new()),
            packed: BinaryBuilder::new(),
            packed_sum: UInt64Builder::new(),
            text: String::new(),
        }
    }
}

impl LegRows {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds one leg: its readable columns from the unpacked leg, and its packed bytes.
    pub fn push(&mut self, vantage: VantageId, key: ConnKey, packed: &PackedLeg) {
        use std::fmt::Write;
        let (leg, fingerprints) = packed.unpack(key, vantage);
        self.n += 1;
        self.capture.append_value(vantage.capture);
        self.interface.append_value(vantage.interface);
        self.role.append_value(leg.role.to_string());
        self.proto.append_value(key.proto.0);
        self.text.clear();
        let _ = write!(self.text, "{}", key.client.ip());
        self.client_ip.append_value(&self.text);
        self.client_port.append_value(key.client.port());
        self.text.clear();
        let _ = write!(self.text, "{}", key.vip.ip());
        self.vip_ip.append_value(&self.text);
        self.vip_port.append_value(key.vip.port());
        self.first_ts.append_value(leg.first_ts_ns);
        self.last_ts.append_value(leg.last_ts_ns);
        self.isn.append_option(leg.isn);
        self.history.append_value(leg.history.as_str());
        self.outcome
            .append_option(leg.outcome.map(|o| o.to_string()));
        for (form, (packets, bytes)) in Form::ALL.iter().zip(self.form_counts.iter_mut()) {
            let s = leg.form(*form);
            packets.append_value(s.map_or(0, |s| s.packets));
            bytes.append_value(s.map_or(0, |s| s.ip_bytes));
        }
        let outer = leg
            .request_wrapped
            .as_ref()
            .and_then(|s| s.outer.first().copied());
        self.tunnel_src
            .append_option(outer.map(|o| o.src.to_string()));
        self.tunnel_dst
            .append_option(outer.map(|o| o.dst.to_string()));
        self.handshake.append_option(leg.handshake_ns);
        self.first_response.append_option(leg.first_response_ns);
        self.icmp_unreachable.append_value(leg.icmp_unreachable);
        for f in &fingerprints {
            self.fingerprints.values().append_value(f.value());
        }
        self.fingerprints.append(true);
        for e in &leg.evidence {
            self.evidence
                .values()
                .append_value(serde_json::to_value(e.kind).map_or_else(
                    |_| String::new(),
                    |v| v.as_str().unwrap_or_default().to_string(),
                ));
            self.evidence_frames.values().append_value(e.first.frame);
        }
        self.evidence.append(true);
        self.evidence_frames.append(true);
        let bytes = packed.as_bytes();
        self.packed.append_value(bytes);
        self.packed_sum.append_value(packed_sum(bytes));
    }

    /// The rows so far as one batch; the builders start again.
    pub fn finish(&mut self) -> RecordBatch {
        self.n = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.capture.finish()),
            Arc::new(self.interface.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.proto.finish()),
            Arc::new(self.client_ip.finish()),
            Arc::new(self.client_port.finish()),
            Arc::new(self.vip_ip.finish()),
            Arc::new(self.vip_port.finish()),
            Arc::new(self.first_ts.finish()),
            Arc::new(self.last_ts.finish()),
            Arc::new(self.isn.finish()),
            Arc::new(self.history.finish()),
            Arc::new(self.outcome.finish()),
        ];
        for (packets, bytes) in self.form_counts.iter_mut() {
            columns.push(Arc::new(packets.finish()));
            columns.push(Arc::new(bytes.finish()));
        }
        columns.extend([
            Arc::new(self.tunnel_src.finish()) as ArrayRef,
            Arc::new(self.tunnel_dst.finish()),
            Arc::new(self.handshake.finish()),
            Arc::new(self.first_response.finish()),
            Arc::new(self.icmp_unreachable.finish()),
            Arc::new(self.fingerprints.finish()),
            Arc::new(self.evidence.finish()),
            Arc::new(self.evidence_frames.finish()),
            Arc::new(self.packed.finish()),
            Arc::new(self.packed_sum.finish()),
        ]);
        RecordBatch::try_new(schema(), columns).expect("the columns follow the schema")
    }
}

/// The columns of a batch that rebuild legs: the key, the vantage point and the packed state,
/// found by name (a query may bring other columns, in any order).
pub struct LegColumns<'b> {
    capture: &'b UInt32Array,
    interface: &'b UInt32Array,
    proto: &'b UInt8Array,
    client_ip: &'b StringArray,
    client_port: &'b UInt16Array,
    vip_ip: &'b StringArray,
    vip_port: &'b UInt16Array,
    packed: &'b BinaryArray,
    packed_sum: &'b UInt64Array,
}

fn column<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b T, RecordError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| RecordError::Schema(format!("no column {name} of the expected type")))
}

/// A column of i64 by name (the query's own, such as `due_ns`).
pub fn i64_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b Int64Array, RecordError> {
    column(batch, name)
}

/// The batch with its view columns (Utf8View, BinaryView: how DataFusion reads Parquet
/// strings and bytes) as plain ones, which [`LegColumns`] reads.
pub fn plain(batch: RecordBatch) -> Result<RecordBatch, RecordError> {
    let wanted = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| wanted(f.data_type()).is_some())
    {
        return Ok(batch);
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match wanted(f.data_type()) {
            Some(t) => {
                let cast = arrow::compute::cast(c, &t)
                    .map_err(|e| RecordError::Schema(format!("column {}: {e}", f.name())))?;
                fields.push(Field::new(f.name(), t, f.is_nullable()));
                columns.push(cast);
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| RecordError::Schema(e.to_string()))
}

impl<'b> LegColumns<'b> {
    pub fn of(batch: &'b RecordBatch) -> Result<LegColumns<'b>, RecordError> {
        Ok(LegColumns {
            capture: column(batch, "capture")?,
            interface: column(batch, "interface")?,
            proto: column(batch, "proto")?,
            client_ip: column(batch, "client_ip")?,
            client_port: column(batch, "client_port")?,
            vip_ip: column(batch, "vip_ip")?,
            vip_port: column(batch, "vip_port")?,
            packed: column(batch, "packed")?,
            packed_sum: column(batch, "packed_sum")?,
        })
    }

    /// Row `i`'s capture number.
    pub fn capture_of(&self, i: usize) -> u32 {
        self.capture.value(i)
    }

    /// Row `i`'s vantage point, key and packed leg; an error names what is wrong with it.
    pub fn leg(&self, i: usize) -> Result<(VantageId, ConnKey, PackedLeg), String> {
        let ip = |a: &StringArray, what: &str| -> Result<IpAddr, String> {
            a.value(i)
                .parse()
                .map_err(|_| format!("{what} {:?} is no address", a.value(i)))
        };
        let key = ConnKey {
            proto: Proto(self.proto.value(i)),
            client: SocketAddr::new(ip(self.client_ip, "client_ip")?, self.client_port.value(i)),
            vip: SocketAddr::new(ip(self.vip_ip, "vip_ip")?, self.vip_port.value(i)),
        };
        let vantage = VantageId {
            capture: self.capture.value(i),
            interface: self.interface.value(i),
        };
        let bytes = self.packed.value(i);
        if self.packed.is_null(i) || packed_sum(bytes) != self.packed_sum.value(i) {
            return Err("its packed state does not match its checksum (packed_sum)".into());
        }
        let packed = PackedLeg::from_bytes(bytes.into())
            .ok_or_else(|| "its packed state is too short".to_string())?;
        Ok((vantage, key, packed))
    }
}
