//! The query engine of `verify --records`: one SQL plan over the Parquet records, run by
//! DataFusion in this process (the default) or by a Ballista cluster. Callers stay blocking: a
//! query makes its own tokio runtime and hands the result batches over in result order.
//!
//! Built without the `datafusion` feature the module still compiles and a query says how to
//! build lvscheck for it; built without `ballista`, so do the Ballista engines.

use std::path::PathBuf;
use std::time::Duration;

use arrow::record_batch::RecordBatch;

use crate::escape;

#[cfg(feature = "ballista")]
mod cluster;
#[cfg(feature = "ballista")]
pub mod local;
#[cfg(feature = "datafusion")]
mod session;

/// Where the plan runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    Embedded,
    /// The Ballista cluster whose scheduler is at `url` (`df://HOST:PORT`, the form Ballista's
    /// client takes). Its executors read the Parquet files by the paths given, so the paths
    /// must name the same files on them as here (shared storage, or one machine).
    Ballista { url: String },
    /// A Ballista scheduler and executor started in this process for the query: Ballista's
    /// distributed plan (stages, shuffle files, Flight transfers) without a cluster, for the
    /// tests. The executor runs under the memory limit of [`QueryOptions`]. Not offered by
    /// [`Engine::parse`]: Ballista 55's standalone executor leaves its shuffle files in a
    /// directory of `TMPDIR` that only the scheduler's clean-up, minutes after the job, would
    /// remove, and the process ends before that.
    BallistaStandalone,
}

/// The error of a Ballista engine in a build without it.
pub const BALLISTA_MISSING: &str = "lvscheck was built without Ballista: build it with \
     `cargo build --release --features ballista` for --engine ballista://HOST:PORT";

/// The error of any query in a build without DataFusion.
pub const DATAFUSION_MISSING: &str = "lvscheck was built without DataFusion, which \
     `verify --records` needs: build it with its default features (`cargo build --release`)";

/// Ballista's scheduler port when the address gives none (Ballista's own default).
const BALLISTA_DEFAULT_PORT: u16 = 50050;

impl Engine {
    /// `embedded` or `ballista://HOST[:PORT]` (port 50050 when not given, as Ballista's).
    /// The Ballista form is refused here, before any work, in a build without the `ballista`
    /// feature.
    pub fn parse(s: &str) -> Result<Engine, String> {
        let engine = match s {
            "embedded" => Engine::Embedded,
            _ => match s.strip_prefix("ballista://") {
                Some(address) => Engine::Ballista {
                    url: scheduler_url(address)?,
                },
                None => {
                    return Err(format!(
                        "unknown engine `{}`: expected `embedded` or `ballista://HOST:PORT`",
                        escape::printable(s, 80)
                    ))
                }
            },
        };
        if engine.is_ballista() && !cfg!(feature = "ballista") {
            return Err(BALLISTA_MISSING.to_string());
        }
        Ok(engine)
    }

    fn is_ballista(&self) -> bool {
        !matches!(self, Engine::Embedded)
    }

    /// Names the engine in errors: which one failed matters when a cluster is involved.
    #[cfg(feature = "datafusion")]
    fn label(&self) -> String {
        match self {
            Engine::Embedded => "DataFusion".to_string(),
            Engine::Ballista { url } => format!("Ballista scheduler {url}"),
            Engine::BallistaStandalone => "Ballista (standalone)".to_string(),
        }
    }
}

/// `HOST[:PORT]` (`[v6]:PORT` for an IPv6 address) as Ballista's `df://HOST:PORT`, checked
/// here so that a typo is reported as such rather than as a connection failure later.
fn scheduler_url(address: &str) -> Result<String, String> {
    let address = address.strip_suffix('/').unwrap_or(address);
    let bad = |why: &str| {
        Err(format!(
            "engine ballista://{}: {why}",
            escape::printable(address, 80)
        ))
    };
    let (host, port) = match address.rsplit_once(':') {
        // A colon inside brackets belongs to an IPv6 address, not to a port.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (address, None),
    };
    let port = match port {
        None => BALLISTA_DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return bad("the port is not a number from 1 to 65535"),
        },
    };
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !(plain || bracketed) {
        return bad("expected HOST:PORT, HOST a name or an address");
    }
    Ok(format!("df://{host}:{port}"))
}

/// Limits of an embedded query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// Bytes the plan's operators may hold. Sorts, aggregations and window functions spill to
    /// temporary files (in `TMPDIR`) past it; what cannot spill (a hash join's build side)
    /// fails with DataFusion's "resources exhausted" instead of growing without bound. A
    /// remote Ballista cluster's executors have their own limits.
    pub memory_limit: usize,
}

/// Environment variable giving [`QueryOptions::memory_limit`]: bytes, or with a K, M, G or T
/// suffix (powers of 1024), as `4G`.
pub const MEMORY_ENV: &str = "LVSCHECK_ENGINE_MEMORY";

impl QueryOptions {
    /// From [`MEMORY_ENV`]; half of the physical memory when it is not set, which leaves the
    /// other half to the rows the caller keeps and to the page cache of the records.
    pub fn from_env() -> Result<QueryOptions, EngineError> {
        let memory_limit = match std::env::var(MEMORY_ENV) {
            Ok(v) => parse_size(&v).map_err(|why| {
                EngineError::Options(format!("{MEMORY_ENV}={}: {why}", escape::printable(&v, 40)))
            })?,
            Err(std::env::VarError::NotPresent) => physical_memory() / 2,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(EngineError::Options(format!(
                    "{MEMORY_ENV} is not valid UTF-8"
                )))
            }
        };
        Ok(QueryOptions { memory_limit })
    }
}

/// `4G`, `512M`, `1073741824`: bytes, with an optional K/M/G/T suffix (powers of 1024, `KiB`
/// and `KB` spellings too). At least 1 MiB, which is below what any plan runs in anyway.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err("expected bytes with an optional K, M, G or T suffix".into()),
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("expected bytes with an optional K, M, G or T suffix")?;
    if bytes < 1 << 20 {
        return Err("less than 1 MiB".into());
    }
    Ok(bytes)
}

fn physical_memory() -> usize {
    // SAFETY: sysconf reads system constants; it has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page <= 0 {
        // Unknown: a limit most machines that run this have.
        return 4 << 30;
    }
    (pages as usize).saturating_mul(page as usize)
}

/// What a query did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Rows and (non-empty) batches handed to the caller.
    pub rows: u64,
    pub batches: u64,
    /// Spill files written and bytes spilled by the plan's operators (embedded engine only: a
    /// Ballista plan runs on the executors, whose metrics stay there).
    pub spill_count: u64,
    pub spilled_bytes: u64,
    /// From the start of the query (runtime and session included) to its last batch.
    pub elapsed: Duration,
}

/// Why a query did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A feature this build lacks ([`DATAFUSION_MISSING`], [`BALLISTA_MISSING`]).
    #[error("{0}")]
    NotBuilt(&'static str),
    /// A bad limit ([`MEMORY_ENV`]).
    #[error("{0}")]
    Options(String),
    /// A table's files: none given, unreadable, not Parquet, or of another schema.
    #[error("table {table}: {message}")]
    Table { table: String, message: String },
    /// Planning or running the query (the SQL, the engine, the cluster).
    #[error("{engine}: {message}")]
    Query { engine: String, message: String },
    /// What the caller's `each` returned.
    #[error("{0}")]
    Consumer(String),
}

/// Registers each named table over its Parquet files (all of one schema), runs `sql`, and hands
/// every non-empty result batch to `each`, in result order (an `ORDER BY` holds across
/// batches). The rows are streamed, never all held. Memory as [`QueryOptions::from_env`] says.
pub fn run_query(
    engine: &Engine,
    tables: &[(&str, Vec<PathBuf>)],
    sql: &str,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
) -> Result<QueryStats, EngineError> {
    run_query_with(engine, &QueryOptions::from_env()?, tables, sql, each)
}

/// [`run_query`] with the limits given.
pub fn run_query_with(
    engine: &Engine,
    options: &QueryOptions,
    tables: &[(&str, Vec<PathBuf>)],
    sql: &str,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
) -> Result<QueryStats, EngineError> {
    #[cfg(feature = "datafusion")]
    {
        session::run(engine, options, tables, sql, each)
    }
    #[cfg(not(feature = "datafusion"))]
    {
        let _ = (engine, options, tables, sql, each);
        Err(EngineError::NotBuilt(DATAFUSION_MISSING))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse() {
        assert_eq!(Engine::parse("embedded"), Ok(Engine::Embedded));
        let ballista = [
            ("ballista://sched.lab:50051", "df://sched.lab:50051"),
            ("ballista://10.0.0.5", "df://10.0.0.5:50050"),
            ("ballista://[::1]:7000/", "df://[::1]:7000"),
        ];
        for (given, url) in ballista {
            let parsed = Engine::parse(given);
            if cfg!(feature = "ballista") {
                let url = url.to_string();
                assert_eq!(parsed, Ok(Engine::Ballista { url }), "{given}");
            } else {
                assert_eq!(parsed, Err(BALLISTA_MISSING.to_string()), "{given}");
            }
        }
        for bad in [
            "ballista://host:0",
            "ballista://host:99999",
            "ballista://:50050",
            "ballista://a b:1",
            "ballista://user@host:1",
            "duckdb",
            "ballista-standalone",
            "",
        ] {
            let err = Engine::parse(bad).expect_err(bad);
            assert!(!err.contains("built without"), "{bad}: {err}");
        }
        let err = Engine::parse("spark\u{1b}[2J").unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        for bad in ["", "G", "1.5G", "-1G", "12Q", "1K", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "datafusion"))]
    #[test]
    fn without_datafusion_a_query_says_how_to_build() {
        let options = QueryOptions {
            memory_limit: 1 << 30,
        };
        let err = run_query_with(
            &Engine::Embedded,
            &options,
            &[],
            "SELECT 1",
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), DATAFUSION_MISSING);
    }
}
