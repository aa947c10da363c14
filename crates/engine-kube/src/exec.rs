//! Commands in a process: the Pod's `exec` subresource (WebSocket), its
//! frames relayed to the engine's exec session.

use drycc_engine::{EngineError, ExecRequest, ExecSession, Result};

/// Start `request` in the first container of `pod`.
pub async fn exec(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    request: ExecRequest,
) -> Result<ExecSession> {
    let _ = (client, namespace, request);
    Err(EngineError::Unsupported(format!(
        "exec in {pod} is not available on this cluster engine yet"
    )))
}
