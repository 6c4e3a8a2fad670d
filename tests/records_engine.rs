//! The query engine of `verify --records` (records::engine): a join of per-host Parquet
//! records with an offsets table and a window function, ordered on several columns, compared
//! row for row with the same result computed in plain Rust (engine_common::expected).

#![cfg(feature = "datafusion")]

mod engine_common;

use std::path::PathBuf;

use engine_common::{expected, rows_of, write, write_records, Row, QUERY};
use lvscheck::records::engine::{run_query_with, Engine, EngineError, QueryOptions, QueryStats};

const ROOMY: QueryOptions = QueryOptions {
    memory_limit: 1 << 30,
};

fn run(
    engine: &Engine,
    options: &QueryOptions,
    tables: &[(&str, Vec<PathBuf>)],
    sql: &str,
) -> Result<(Vec<Row>, QueryStats), EngineError> {
    let mut rows = Vec::new();
    let stats = run_query_with(engine, options, tables, sql, &mut |batch| {
        rows_of(&batch, &mut rows)
    })?;
    Ok((rows, stats))
}

#[test]
fn embedded_join_window_and_order_match_plain_rust() {
    // A few hundred legs per host over 40 keys: every key has legs on several hosts.
    let records = write_records(300, 40, 64);
    let want = expected(&records.legs);
    assert_eq!(want.len(), 600, "the orphan host's legs have no offset");
    assert!(want.iter().any(|r| r.5.is_none() && r.4.is_some()));
    let (rows, stats) = run(&Engine::Embedded, &ROOMY, &records.tables(), QUERY).unwrap();
    assert_eq!(rows, want);
    assert_eq!(stats.rows, 600);
    assert_eq!(stats.spill_count, 0);
}

#[test]
fn embedded_order_holds_across_batches_and_spills_past_the_limit() {
    // 180 000 legs sorted twice (window, ORDER BY) under 24 MiB: DataFusion's sorts spill,
    // and the result comes in many batches of 8192 rows that must stay in order.
    let records = write_records(60_000, 5_000, 16_384);
    let want = expected(&records.legs);
    let small = QueryOptions {
        memory_limit: 24 << 20,
    };
    let (rows, stats) = run(&Engine::Embedded, &small, &records.tables(), QUERY).unwrap();
    eprintln!("{stats:?}");
    assert!(stats.batches > 10, "{stats:?}");
    assert!(stats.spill_count > 0, "nothing spilled: {stats:?}");
    assert_eq!(rows.len(), want.len());
    assert!(rows == want, "rows differ from the plain Rust result");
}

#[test]
fn bad_tables_name_the_table_and_file() {
    let records = write_records(20, 5, 64);
    let missing = records.dir.path().join("absent.parquet");
    let not_parquet = records.dir.path().join("notes.parquet");
    std::fs::write(&not_parquet, "not Parquet at all").unwrap();
    let other = records.dir.path().join("other.parquet");
    write(&other, other_schema(), 64);
    let cases = [
        (vec![missing], "absent.parquet"),
        (
            vec![records.leg_files[0].clone(), not_parquet],
            "notes.parquet",
        ),
        (vec![records.leg_files[0].clone(), other], "another schema"),
        (vec![records.dir.path().to_path_buf()], "not a file"),
        (vec![], "no Parquet files"),
    ];
    for (files, says) in cases {
        let tables = [("legs", files), ("offsets", records.offset_files.clone())];
        let err = run(&Engine::Embedded, &ROOMY, &tables, QUERY).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EngineError::Table { .. }), "{text}");
        assert!(text.starts_with("table legs: "), "{text}");
        assert!(text.contains(says), "{text} lacks {says}");
    }
}

#[test]
fn query_and_consumer_errors_come_back() {
    let records = write_records(20, 5, 64);
    let err = run(
        &Engine::Embedded,
        &ROOMY,
        &records.tables(),
        "SELECT nope FROM legs",
    )
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Query { engine, .. } if engine == "DataFusion"),
        "{err}"
    );
    // Read-only: a statement that writes files is refused before it runs.
    let copy = format!(
        "COPY legs TO '{}'",
        records.dir.path().join("copy.parquet").display()
    );
    assert!(run(&Engine::Embedded, &ROOMY, &records.tables(), &copy).is_err());
    assert!(!records.dir.path().join("copy.parquet").exists());
    let mut calls = 0;
    let err = run_query_with(
        &Engine::Embedded,
        &ROOMY,
        &records.tables(),
        QUERY,
        &mut |_| {
            calls += 1;
            Err("the consumer stopped".to_string())
        },
    )
    .unwrap_err();
    assert_eq!(calls, 1);
    assert!(matches!(err, EngineError::Consumer(ref m) if m == "the consumer stopped"));
}

/// A file of another schema: `k` as Int32 alone.
fn other_schema() -> arrow::array::RecordBatch {
    use arrow::array::{ArrayRef, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![Field::new("k", DataType::Int32, false)]);
    let column: ArrayRef = std::sync::Arc::new(Int32Array::from(vec![1, 2, 3]));
    arrow::array::RecordBatch::try_new(std::sync::Arc::new(schema), vec![column]).unwrap()
}

#[cfg(feature = "ballista")]
#[test]
fn ballista_standalone_gives_the_same_rows() {
    // 24 000 rows: several batches, whose order Ballista's result stream must keep.
    let records = write_records(12_000, 400, 1_024);
    let want = expected(&records.legs);
    let (rows, stats) = run(
        &Engine::BallistaStandalone,
        &ROOMY,
        &records.tables(),
        QUERY,
    )
    .unwrap();
    assert_eq!(stats.rows, want.len() as u64);
    assert!(stats.batches > 1, "{stats:?}");
    assert_eq!(rows, want);
}

#[cfg(not(feature = "ballista"))]
#[test]
fn without_ballista_its_engines_say_how_to_build() {
    use lvscheck::records::engine::BALLISTA_MISSING;
    assert_eq!(
        Engine::parse("ballista://localhost:50050"),
        Err(BALLISTA_MISSING.to_string())
    );
    let records = write_records(20, 5, 64);
    let err = run(
        &Engine::BallistaStandalone,
        &ROOMY,
        &records.tables(),
        QUERY,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--features ballista"), "{err}");
}
