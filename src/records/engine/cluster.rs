//! Ballista's sessions: the same DataFusion plan, planned by a scheduler into stages that its
//! executors run, the shuffles between them written to the executors' disks.

use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::session::shared_settings;

fn state() -> SessionStateBuilder {
    SessionStateBuilder::new()
        .with_config(shared_settings(SessionConfig::new_with_ballista()))
        .with_default_features()
}

/// A session whose plans go to the scheduler at `url` (`df://HOST:PORT`). Nothing connects
/// yet: an unreachable scheduler is reported by the query.
pub(super) async fn remote(url: &str) -> Result<SessionContext, DataFusionError> {
    SessionContext::remote_with_state(url, state().build()).await
}

/// A scheduler and an executor started on this runtime (gRPC on localhost ports), and a
/// session on them; they end with the runtime. The executor's operators run in `runtime`.
pub(super) async fn standalone(
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionContext, DataFusionError> {
    SessionContext::standalone_with_state(state().with_runtime_env(runtime).build()).await
}
