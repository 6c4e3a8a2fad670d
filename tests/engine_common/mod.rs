//! Records for the engine tests: per-host "legs" Parquet files (keys repeated within and
//! across hosts, i64 times, nullable values), an "offsets" table (host -> i64), the query that
//! joins them with a window function the way `verify --records` sessionizes legs, and the same
//! result computed here in plain Rust, independently of any engine.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Hosts whose legs are written, one file each; `orphan` has no offset, so the inner join
/// drops its legs.
pub const HOSTS: [&str; 3] = ["director", "rs1", "orphan"];

/// Clock offsets (ns) of the hosts that have one.
pub const OFFSETS: [(&str, i64); 2] = [("director", -1_500), ("rs1", 2_750)];

/// Joins the legs with their host's offset, numbers nothing, and gives each leg the largest
/// `x` of the earlier legs of its key (by corrected time), as the sessionizing of
/// `verify --records` compares a leg with the ones before it.
pub const QUERY: &str = "
    SELECT l.k, l.t + o.offset_ns AS t_adj, l.id, l.host, l.x,
           MAX(l.x) OVER (PARTITION BY l.k ORDER BY l.t + o.offset_ns, l.id
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max
    FROM legs l JOIN offsets o ON l.host = o.host
    ORDER BY l.k, t_adj, l.id";

/// One result row: (k, t_adj, id, host, x, prev_max).
pub type Row = (i64, i64, i64, String, Option<i64>, Option<i64>);

/// A leg as written.
#[derive(Clone, Debug)]
pub struct Leg {
    pub k: i64,
    pub t: i64,
    pub id: i64,
    pub host: &'static str,
    pub x: Option<i64>,
}

pub struct Records {
    pub dir: tempfile::TempDir,
    pub legs: Vec<Leg>,
    pub leg_files: Vec<PathBuf>,
    pub offset_files: Vec<PathBuf>,
}

impl Records {
    pub fn tables(&self) -> Vec<(&'static str, Vec<PathBuf>)> {
        vec![
            ("legs", self.leg_files.clone()),
            ("offsets", self.offset_files.clone()),
        ]
    }
}

/// xorshift64*: the same legs on every run, without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// `per_host` legs for each of [`HOSTS`] over `keys` keys, in row groups of `group_rows`.
/// Times collide on purpose (a coarse clock), so that `id` decides ties; one `x` in seven is
/// null.
pub fn write_records(per_host: usize, keys: u64, group_rows: usize) -> Records {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut legs = Vec::new();
    let mut leg_files = Vec::new();
    let mut id = 0;
    for host in HOSTS {
        let mine: Vec<Leg> = (0..per_host)
            .map(|_| {
                id += 1;
                Leg {
                    k: rng.below(keys),
                    t: rng.below(5_000) * 1_000,
                    id,
                    host,
                    x: (rng.below(7) != 0).then(|| rng.below(1_000_000) - 500_000),
                }
            })
            .collect();
        let path = dir.path().join(format!("{host}.legs.parquet"));
        write_legs(&path, &mine, group_rows);
        leg_files.push(path);
        legs.extend(mine);
    }
    let offsets = dir.path().join("offsets.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("offset_ns", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(OFFSETS.iter().map(|o| o.0))),
        Arc::new(Int64Array::from_iter_values(OFFSETS.iter().map(|o| o.1))),
    ];
    write(
        &offsets,
        RecordBatch::try_new(schema, columns).unwrap(),
        1024,
    );
    Records {
        dir,
        legs,
        leg_files,
        offset_files: vec![offsets],
    }
}

pub fn legs_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
        Field::new("host", DataType::Utf8, false),
        Field::new("x", DataType::Int64, true),
    ]))
}

fn write_legs(path: &Path, legs: &[Leg], group_rows: usize) {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(legs.iter().map(|l| l.k))),
        Arc::new(Int64Array::from_iter_values(legs.iter().map(|l| l.t))),
        Arc::new(Int64Array::from_iter_values(legs.iter().map(|l| l.id))),
        Arc::new(StringArray::from_iter_values(legs.iter().map(|l| l.host))),
        Arc::new(Int64Array::from_iter(legs.iter().map(|l| l.x))),
    ];
    write(
        path,
        RecordBatch::try_new(legs_schema(), columns).unwrap(),
        group_rows,
    );
}

pub fn write(path: &Path, batch: RecordBatch, group_rows: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let file = File::create(path).expect("create Parquet file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// [`QUERY`]'s result, computed without an engine.
pub fn expected(legs: &[Leg]) -> Vec<Row> {
    let offsets: HashMap<&str, i64> = OFFSETS.into_iter().collect();
    let mut joined: Vec<(i64, i64, i64, &str, Option<i64>)> = legs
        .iter()
        .filter_map(|l| {
            offsets
                .get(l.host)
                .map(|o| (l.k, l.t + o, l.id, l.host, l.x))
        })
        .collect();
    joined.sort_by_key(|&(k, t, id, _, _)| (k, t, id));
    let mut rows = Vec::with_capacity(joined.len());
    let mut key = None;
    let mut running: Option<i64> = None;
    for (k, t, id, host, x) in joined {
        if key != Some(k) {
            key = Some(k);
            running = None;
        }
        rows.push((k, t, id, host.to_string(), x, running));
        running = match (running, x) {
            (Some(m), Some(x)) => Some(m.max(x)),
            (m, x) => m.or(x),
        };
    }
    rows
}

/// The rows of result batches of [`QUERY`], checking the column types on the way: the string
/// column must come back as the records hold it (Utf8).
pub fn rows_of(batch: &RecordBatch, into: &mut Vec<Row>) -> Result<(), String> {
    let int = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| format!("column {i} is {}", batch.column(i).data_type()))
    };
    let (k, t, id, x, prev) = (int(0)?, int(1)?, int(2)?, int(4)?, int(5)?);
    let host = batch
        .column(3)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("host is {}", batch.column(3).data_type()))?;
    let opt = |a: &Int64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
    for r in 0..batch.num_rows() {
        into.push((
            k.value(r),
            t.value(r),
            id.value(r),
            host.value(r).to_string(),
            opt(x, r),
            opt(prev, r),
        ));
    }
    Ok(())
}
