//! DataFusion's side of a query: the session (embedded, or Ballista's through `cluster`), the
//! tables over the Parquet files, and the result stream handed to the caller batch by batch.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};

use super::{Engine, EngineError, QueryOptions, QueryStats};
use crate::escape;

/// Footers read at once when checking that a table's files share one schema.
const FOOTERS_IN_FLIGHT: usize = 16;

pub(super) fn run(
    engine: &Engine,
    options: &QueryOptions,
    tables: &[(&str, Vec<PathBuf>)],
    sql: &str,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
) -> Result<QueryStats, EngineError> {
    let started = Instant::now();
    let label = engine.label();
    let failed = |e: DataFusionError| query_error(&label, e);
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    // One worker per core: DataFusion runs a partition's operators as tasks on these threads,
    // and target_partitions below makes as many partitions.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("lvscheck-engine")
        .enable_all()
        .build()
        .map_err(|e| EngineError::Query {
            engine: label.clone(),
            message: format!("cannot start its runtime: {e}"),
        })?;
    let result = runtime.block_on(async {
        let ctx = context(engine, options, threads).await.map_err(failed)?;
        for (name, files) in tables {
            register(&ctx, name, files).await?;
        }
        stream(&ctx, sql, each, &failed).await
    });
    // A standalone Ballista cluster's servers are tasks of this runtime: they end with it,
    // without waiting for their connections to drain.
    runtime.shutdown_background();
    let mut stats = result?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// The settings every engine's session shares, so that the same SQL gives the same rows and
/// types everywhere.
pub(super) fn shared_settings(config: SessionConfig) -> SessionConfig {
    // String columns come back as the records hold them (Utf8), not as the Utf8View that
    // DataFusion reads them as by default: the caller's readers take the files' own types.
    config.set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    )
}

async fn context(
    engine: &Engine,
    options: &QueryOptions,
    threads: usize,
) -> Result<SessionContext, DataFusionError> {
    match engine {
        Engine::Embedded => embedded(options, threads),
        #[cfg(feature = "ballista")]
        Engine::Ballista { url } => super::cluster::remote(url).await,
        #[cfg(feature = "ballista")]
        Engine::BallistaStandalone => super::cluster::standalone(runtime_env(options)?).await,
        #[cfg(not(feature = "ballista"))]
        Engine::Ballista { .. } | Engine::BallistaStandalone => Err(
            DataFusionError::Configuration(super::BALLISTA_MISSING.to_string()),
        ),
    }
}

/// Memory and spill files of the plan's operators, as `options` says.
pub(super) fn runtime_env(options: &QueryOptions) -> Result<Arc<RuntimeEnv>, DataFusionError> {
    // FairSpillPool rather than a greedy one: with several sorts and windows running at once,
    // each gets its share and spills past it, instead of the first taking everything and the
    // others failing.
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
        )
        .build_arc()
}

fn embedded(options: &QueryOptions, threads: usize) -> Result<SessionContext, DataFusionError> {
    let runtime = runtime_env(options)?;
    let mut config = shared_settings(SessionConfig::new().with_target_partitions(threads));
    // Each partition's sort sets aside this much (10 MB by default) to merge its spilled runs,
    // outside what it may spill: under a small limit on many cores that share alone would
    // exhaust the pool. An eighth of a partition's share leaves the rest to the sorted rows.
    let execution = &mut config.options_mut().execution;
    execution.sort_spill_reservation_bytes = execution
        .sort_spill_reservation_bytes
        .min(options.memory_limit / (8 * threads));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// `name` as a ListingTable over `files`, after checking that each is a readable Parquet file
/// of the first one's schema: DataFusion would otherwise fill a missing column with nulls.
async fn register(ctx: &SessionContext, name: &str, files: &[PathBuf]) -> Result<(), EngineError> {
    let table_error = |message: String| EngineError::Table {
        table: escape::printable(name, 80),
        message,
    };
    if files.is_empty() {
        return Err(table_error("no Parquet files given".into()));
    }
    let urls = files
        .iter()
        .map(|f| file_url(f).map_err(|why| table_error(format!("{}: {why}", shown(f)))))
        .collect::<Result<Vec<_>, _>>()?;
    let state = ctx.state();
    // The session's Parquet settings (shared_settings), which a bare ParquetFormat would not
    // take; extension "": the files are named one by one, whatever they end with.
    let format = ParquetFormat::default().with_options(state.default_table_options().parquet);
    let listing = ListingOptions::new(Arc::new(format)).with_file_extension("");
    let schemas: Vec<Arc<Schema>> = futures::stream::iter(urls.iter().zip(files))
        .map(|(url, file)| {
            let listing = &listing;
            let state = &state;
            async move {
                listing
                    .infer_schema(state, url)
                    .await
                    .map_err(|e| format!("{}: {}", shown(file), df_message(e)))
            }
        })
        .buffered(FOOTERS_IN_FLIGHT)
        .try_collect()
        .await
        .map_err(table_error)?;
    let first = &schemas[0];
    for (schema, file) in schemas.iter().zip(files).skip(1) {
        if let Some(difference) = schema_difference(first, schema) {
            return Err(table_error(format!(
                "{} has another schema than {}: {difference}",
                shown(file),
                shown(&files[0])
            )));
        }
    }
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing)
        .with_schema(first.clone());
    let table = ListingTable::try_new(config).map_err(|e| table_error(df_message(e)))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| table_error(df_message(e)))?;
    Ok(())
}

/// A file's `file://` URL, built from its absolute path: DataFusion reads a plain path string
/// with `*`, `?` or `[` in it as a glob, and a Ballista plan carries the URL as text.
fn file_url(file: &Path) -> Result<ListingTableUrl, String> {
    let meta = std::fs::metadata(file).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    let absolute = std::path::absolute(file).map_err(|e| e.to_string())?;
    let url = url::Url::from_file_path(&absolute).map_err(|()| "not a local path".to_string())?;
    ListingTableUrl::try_new(url, None).map_err(df_message)
}

/// The first column where `b` differs from `a` (name, type or count), for the error.
fn schema_difference(a: &Schema, b: &Schema) -> Option<String> {
    for (i, fa) in a.fields().iter().enumerate() {
        let Some(fb) = b.fields().get(i) else {
            return Some(format!("no column {} ({})", i + 1, fa.name()));
        };
        if fa.name() != fb.name() || fa.data_type() != fb.data_type() {
            return Some(format!(
                "column {} is {} {} instead of {} {}",
                i + 1,
                fb.name(),
                fb.data_type(),
                fa.name(),
                fa.data_type()
            ));
        }
    }
    (b.fields().len() > a.fields().len()).then(|| {
        format!(
            "{} columns instead of {}",
            b.fields().len(),
            a.fields().len()
        )
    })
}

async fn stream(
    ctx: &SessionContext,
    sql: &str,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
    failed: &dyn Fn(DataFusionError) -> EngineError,
) -> Result<QueryStats, EngineError> {
    // A query, nothing else: no CREATE, COPY or SET reaches the engine through here.
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, read_only).await.map_err(failed)?;
    let plan = frame.create_physical_plan().await.map_err(failed)?;
    // One partition when the plan ends in an ORDER BY (a sort-preserving merge), so the
    // stream is in result order; several are merged as they come otherwise.
    let mut batches = execute_stream(plan.clone(), ctx.task_ctx()).map_err(failed)?;
    let mut stats = QueryStats::default();
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(failed)?;
        if batch.num_rows() == 0 {
            continue;
        }
        stats.rows += batch.num_rows() as u64;
        stats.batches += 1;
        each(batch).map_err(EngineError::Consumer)?;
    }
    drop(batches);
    add_spills(plan.as_ref(), &mut stats);
    Ok(stats)
}

fn add_spills(plan: &dyn ExecutionPlan, stats: &mut QueryStats) {
    if let Some(metrics) = plan.metrics() {
        stats.spill_count += metrics.spill_count().unwrap_or(0) as u64;
        stats.spilled_bytes += metrics.spilled_bytes().unwrap_or(0) as u64;
    }
    for child in plan.children() {
        add_spills(child.as_ref(), stats);
    }
}

fn query_error(label: &str, e: DataFusionError) -> EngineError {
    EngineError::Query {
        engine: label.to_string(),
        message: df_message(e),
    }
}

/// DataFusion's message, which may quote file paths and SQL: escaped for the terminal.
fn df_message(e: DataFusionError) -> String {
    escape::terminal_lines(&e.to_string()).into_owned()
}

fn shown(file: &Path) -> String {
    escape::printable(&file.display().to_string(), 200)
}
