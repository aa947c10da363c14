//! Process output: the Pod's `log` subresource.

use drycc_engine::{LogLine, LogStream, Result};

/// The last `lines` lines of the app's pods (or of one), oldest first.
pub async fn tail(
    client: &kube::Client,
    namespace: &str,
    lines: usize,
    process: Option<&str>,
) -> Result<Vec<LogLine>> {
    let _ = (client, namespace, lines, process);
    Ok(Vec::new())
}

/// New lines of the app's pods as they come.
pub fn follow(client: &kube::Client, namespace: &str) -> LogStream {
    let _ = (client, namespace);
    // Nothing to follow yet: the stream stays open, as the engine does.
    Box::pin(futures::stream::pending())
}
