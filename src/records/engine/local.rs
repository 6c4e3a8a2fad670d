//! A Ballista scheduler or executor served from this process on a free localhost port, until
//! dropped: a cluster on one machine for `--engine ballista://localhost:PORT`, started as
//! separate processes by the tests (and by anyone trying the engine without a cluster).

use std::num::NonZeroUsize;
use std::time::Duration;

use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::BallistaCodec;
use tokio::runtime::Runtime;

use super::EngineError;

/// How long an executor keeps trying to reach its scheduler, which may still be starting.
const CONNECT_FOR: Duration = Duration::from_secs(10);

/// A scheduler; its executors and clients reach it at [`LocalScheduler::url`].
pub struct LocalScheduler {
    runtime: Option<Runtime>,
    port: u16,
}

impl LocalScheduler {
    pub fn start() -> Result<LocalScheduler, EngineError> {
        let runtime = runtime("scheduler")?;
        let address = runtime
            .block_on(ballista_scheduler::standalone::new_standalone_scheduler())
            .map_err(|e| failed("scheduler", e))?;
        Ok(LocalScheduler {
            runtime: Some(runtime),
            port: address.port(),
        })
    }

    /// `df://localhost:PORT`, the form of [`super::Engine::Ballista`]'s url.
    pub fn url(&self) -> String {
        format!("df://localhost:{}", self.port)
    }
}

impl Drop for LocalScheduler {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An executor of the scheduler at `df://HOST:PORT`, with one task slot per core; it serves
/// its shuffle and result partitions over Arrow Flight on a port of its own.
pub struct LocalExecutor {
    runtime: Option<Runtime>,
}

impl LocalExecutor {
    pub fn start(scheduler_url: &str) -> Result<LocalExecutor, EngineError> {
        let endpoint = match scheduler_url.strip_prefix("df://") {
            Some(address) => format!("http://{address}"),
            None => {
                return Err(EngineError::Options(format!(
                    "scheduler `{}`: expected df://HOST:PORT",
                    crate::escape::printable(scheduler_url, 80)
                )))
            }
        };
        let runtime = runtime("executor")?;
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + CONNECT_FOR;
            let scheduler = loop {
                match SchedulerGrpcClient::connect(endpoint.clone()).await {
                    Ok(client) => break client,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(failed("executor", format!("scheduler {endpoint}: {e}")))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let slots = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            ballista_executor::new_standalone_executor(scheduler, slots, BallistaCodec::default())
                .await
                .map_err(|e| failed("executor", e))
        })?;
        Ok(LocalExecutor {
            runtime: Some(runtime),
        })
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn runtime(role: &str) -> Result<Runtime, EngineError> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(format!("ballista-{role}"))
        .enable_all()
        .build()
        .map_err(|e| failed(role, e))
}

fn failed(role: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Query {
        engine: format!("local Ballista {role}"),
        message: e.to_string(),
    }
}
