//! Where the join's query runs: DataFusion embedded (the default), or a Ballista cluster.
//! (A first version; the engine helper's fuller one replaces it.)

use arrow::record_batch::RecordBatch;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Embedded,
    Ballista { url: String },
}

impl Engine {
    pub fn parse(s: &str) -> Result<Engine, String> {
        if s == "embedded" {
            return Ok(Engine::Embedded);
        }
        match s.strip_prefix("ballista://") {
            Some(rest) if !rest.is_empty() => Ok(Engine::Ballista {
                url: format!("df://{rest}"),
            }),
            _ => Err(format!(
                "--engine {s}: expected embedded or ballista://HOST:PORT"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

#[cfg(feature = "datafusion")]
pub fn run_query(
    engine: &Engine,
    tables: &[(&str, Vec<PathBuf>)],
    sql: &str,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
) -> Result<(), EngineError> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use datafusion::prelude::*;
    use futures::StreamExt;
    use std::sync::Arc;
    if *engine != Engine::Embedded {
        return Err(EngineError("Ballista: not built in".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EngineError(e.to_string()))?;
    rt.block_on(async {
        let ctx = SessionContext::new();
        for (name, files) in tables {
            let urls: Vec<ListingTableUrl> = files
                .iter()
                .map(|f| {
                    let abs = std::fs::canonicalize(f)
                        .map_err(|e| EngineError(format!("{}: {e}", f.display())))?;
                    ListingTableUrl::parse(abs.to_string_lossy())
                        .map_err(|e| EngineError(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let schema = opts
                .infer_schema(&ctx.state(), &urls[0])
                .await
                .map_err(|e| EngineError(e.to_string()))?;
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(opts)
                .with_schema(schema);
            let table = ListingTable::try_new(config).map_err(|e| EngineError(e.to_string()))?;
            ctx.register_table(*name, Arc::new(table))
                .map_err(|e| EngineError(e.to_string()))?;
        }
        let df = ctx.sql(sql).await.map_err(|e| EngineError(e.to_string()))?;
        let mut stream = df
            .execute_stream()
            .await
            .map_err(|e| EngineError(e.to_string()))?;
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| EngineError(e.to_string()))?;
            each(b).map_err(EngineError)?;
        }
        Ok(())
    })
}
