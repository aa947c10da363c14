//! Process output, read from the Pods' `log` subresource (the kubelet keeps
//! it; nothing is stored here). `tail` asks each Pod for its last lines with
//! timestamps and merges them by time; `follow` streams one Pod's new lines,
//! and the engine multiplexes one follower per Pod into an app's broadcast.
//!
//! An app is a Namespace, so the namespace is the `app` of every line and
//! the Pod's name (the process name) is its `source`.

// Answers from the network must never panic the engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::{stream, AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::errors::engine_error;
use drycc_engine::{Followed, LogLine, LogStream, Result};

/// How many Pods are read at once by `tail`.
const CONCURRENT_READS: usize = 8;
/// Lines buffered for a reader of `follow_app`; a slower reader holds the
/// followers back (and they the kubelet's streams) rather than losing lines.
const FOLLOW_BUFFER: usize = 256;

/// The last `lines` lines of the given Pods, oldest first. A Pod that is
/// gone, or whose container has not started yet, has no lines. A Pod whose
/// log cannot be read (its node unreachable) is left out when another
/// answered; when none did, the first refusal is the error.
pub async fn tail<S: AsRef<str>>(
    client: Client,
    namespace: &str,
    pods: &[S],
    lines: usize,
) -> Result<Vec<LogLine>> {
    if lines == 0 || pods.is_empty() {
        return Ok(Vec::new());
    }
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let params = LogParams {
        tail_lines: Some(i64::try_from(lines).unwrap_or(i64::MAX)),
        timestamps: true,
        ..LogParams::default()
    };
    // Collected first: a stream over a borrowing closure is not `Send`
    // enough for the engine's async trait methods.
    let reads: Vec<_> = pods
        .iter()
        .map(|pod| read_tail(api.clone(), pod.as_ref().to_string(), params.clone()))
        .collect();
    // `buffered` keeps the Pods' order, so equal times keep it too.
    let per_pod: Vec<Result<Vec<LogLine>>> = stream::iter(reads)
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
    let mut merged: Vec<LogLine> = Vec::new();
    let mut answered = false;
    let mut refused = None;
    for read in per_pod {
        match read {
            Ok(lines) => {
                answered = true;
                merged.extend(lines);
            }
            Err(error) => {
                tracing::warn!(app = %namespace, "{}", error.detail());
                refused.get_or_insert(error);
            }
        }
    }
    // One unreachable node leaves the other Pods' lines to show; when no
    // Pod answers, the reason is the user's answer.
    if let (false, Some(error)) = (answered, refused) {
        return Err(error);
    }
    // Stable: the lines of one Pod at the same instant keep their order.
    merged.sort_by_key(|line| line.time);
    let excess = merged.len().saturating_sub(lines);
    merged.drain(..excess);
    Ok(merged)
}

/// One Pod's last lines; none when it is gone or has not started.
async fn read_tail(api: Api<Pod>, pod: String, params: LogParams) -> Result<Vec<LogLine>> {
    let namespace = api.namespace().unwrap_or_default().to_string();
    match api.logs(&pod, &params).await {
        Ok(text) => Ok(parse(&namespace, &pod, &text, Utc::now())),
        Err(error) if has_no_output(&error) => Ok(Vec::new()),
        Err(error) => Err(engine_error(&format!("read the logs of {pod}"), error)),
    }
}

/// The new lines of one Pod from now on, until the server ends the stream
/// (the container exited, the Pod was deleted) or the connection fails; the
/// engine starts a new follower when the Pod runs again.
pub fn follow(
    client: Client,
    namespace: &str,
    pod: &str,
) -> impl Stream<Item = LogLine> + Send + 'static {
    follow_since(client, namespace, pod, Utc::now())
}

/// `follow`, from `since` (to the second) rather than from now: a
/// container that started after someone began to follow its app is read
/// from its first line.
pub fn follow_since(
    client: Client,
    namespace: &str,
    pod: &str,
    since: DateTime<Utc>,
) -> impl Stream<Item = LogLine> + Send + 'static {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let (app, source) = (namespace.to_string(), pod.to_string());
    let params = LogParams {
        follow: true,
        timestamps: true,
        since_time: Some(to_the_second(since)),
        ..LogParams::default()
    };
    let opened = {
        let source = source.clone();
        async move {
            match api.log_stream(&source, &params).await {
                Ok(reader) => Some(reader.lines()),
                Err(error) => {
                    tracing::debug!(pod = %source, error = %error, "cannot follow a pod's logs");
                    None
                }
            }
        }
    };
    stream::once(opened)
        .filter_map(futures::future::ready)
        .flatten()
        .take_while(|line| futures::future::ready(line.is_ok()))
        .filter_map(|line| futures::future::ready(line.ok()))
        .scan(Utc::now(), move |last, raw| {
            let (time, text) = split_stamp(&raw, *last);
            *last = time;
            futures::future::ready(Some(LogLine {
                time,
                app: app.clone(),
                source: source.clone(),
                text,
            }))
        })
}

/// A time down to the second: kube rounds `sinceTime` to a whole second,
/// and rounding up would skip the lines of the next half second.
fn to_the_second(time: DateTime<Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(time.timestamp())
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
}

/// Every running Pod of an app, followed for one reader: a follower per
/// run of a container (a Pod's uid and restart count), started when the
/// reflector's `pods` show it running (the engine's change counter of the
/// app says when to look again) and read from when the reader began. The
/// followers end with the reader.
pub fn follow_app(
    client: Client,
    app: &str,
    pods: Store<Pod>,
    mut changes: watch::Receiver<u64>,
) -> LogStream {
    let (tx, rx) = mpsc::channel::<LogLine>(FOLLOW_BUFFER);
    let app = app.to_string();
    let since = Utc::now();
    tokio::spawn(async move {
        let mut followers: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
        loop {
            let running: Vec<(String, String)> = pods
                .state()
                .iter()
                .filter(|pod| pod.metadata.namespace.as_deref() == Some(app.as_str()))
                .filter_map(|pod| run_of(pod).map(|run| (pod.name_any(), run)))
                .collect();
            // A Pod gone from the store has a follower that ended with it.
            followers.retain(|name, (_, task)| {
                !task.is_finished() || running.iter().any(|(n, _)| n == name)
            });
            for (name, run) in running {
                if followers.get(&name).is_some_and(|(known, _)| *known == run) {
                    continue;
                }
                let lines = follow_since(client.clone(), &app, &name, since);
                let tx = tx.clone();
                let task = tokio::spawn(async move {
                    let mut lines = std::pin::pin!(lines);
                    while let Some(line) = lines.next().await {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                });
                // The previous run's follower ended with its container.
                if let Some((_, previous)) = followers.insert(name, (run, task)) {
                    previous.abort();
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = tx.closed() => break,
            }
        }
        for (_, (_, task)) in followers {
            task.abort();
        }
    });
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Followed::Line(line), rx))
    }))
}

/// The current run of a Pod's container, when one runs: its uid and
/// restart count.
fn run_of(pod: &Pod) -> Option<String> {
    let uid = pod.metadata.uid.as_deref()?;
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    status.state.as_ref()?.running.as_ref()?;
    Some(format!("{uid}/{}", status.restart_count))
}

/// Lines of a log read with `timestamps=true`: each starts with an RFC 3339
/// time and a space. A line without one takes the previous line's time, or
/// `fallback` when it comes first.
pub fn parse(app: &str, pod: &str, text: &str, fallback: DateTime<Utc>) -> Vec<LogLine> {
    let mut last = fallback;
    text.split_terminator('\n')
        .map(|raw| {
            let (time, text) = split_stamp(raw, last);
            last = time;
            LogLine {
                time,
                app: app.to_string(),
                source: pod.to_string(),
                text,
            }
        })
        .collect()
}

fn split_stamp(raw: &str, fallback: DateTime<Utc>) -> (DateTime<Utc>, String) {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let stamped = raw.split_once(' ').and_then(|(stamp, rest)| {
        DateTime::parse_from_rfc3339(stamp)
            .ok()
            .map(|time| (time.with_timezone(&Utc), rest.to_string()))
    });
    stamped.unwrap_or_else(|| (fallback, raw.to_string()))
}

/// A Pod deleted since it was listed, or whose container is still being
/// created: nothing to read, which is no error for the app's logs.
fn has_no_output(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.is_not_found()
                || (status.code == 400 && status.message.contains("waiting to start"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_without_a_stamp_take_the_previous_time() {
        let fallback = Utc::now();
        let lines = parse(
            "a",
            "p",
            "2026-01-02T03:04:05.123456789Z first\r\ncontinued\n",
            fallback,
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "first");
        assert_eq!(lines[0].time.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(lines[1].text, "continued");
        assert_eq!(lines[1].time, lines[0].time);
        let lone = parse("a", "p", "no stamp", fallback);
        assert_eq!(lone[0].time, fallback);
    }
}
