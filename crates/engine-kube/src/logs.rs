//! Process output, read from the Pods' `log` subresource (the kubelet keeps
//! it; nothing is stored here). `tail` asks each Pod for its last lines with
//! timestamps and merges them by time; `follow` streams one Pod's new lines,
//! and the engine multiplexes one follower per Pod into an app's broadcast.
//!
//! An app is a Namespace, so the namespace is the `app` of every line and
//! the Pod's name (the process name) is its `source`.

// Answers from the network must never panic the engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use chrono::{DateTime, Utc};
use futures::{stream, AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};

use crate::errors::engine_error;
use drycc_engine::{LogLine, Result};

/// How many Pods are read at once by `tail`.
const CONCURRENT_READS: usize = 8;

/// The last `lines` lines of the given Pods, oldest first. A Pod that is
/// gone, or whose container has not started yet, has no lines; any other
/// refusal of the server is an error.
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
    let reads = pods.iter().map(|pod| {
        let (api, params) = (&api, &params);
        async move {
            let pod = pod.as_ref();
            match api.logs(pod, params).await {
                Ok(text) => Ok(parse(namespace, pod, &text, Utc::now())),
                Err(error) if has_no_output(&error) => Ok(Vec::new()),
                Err(error) => Err(engine_error(&format!("read the logs of {pod}"), error)),
            }
        }
    });
    // `buffered` keeps the Pods' order, so equal times keep it too.
    let per_pod: Vec<Vec<LogLine>> = stream::iter(reads)
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let mut merged: Vec<LogLine> = per_pod.into_iter().flatten().collect();
    // Stable: the lines of one Pod at the same instant keep their order.
    merged.sort_by_key(|line| line.time);
    let excess = merged.len().saturating_sub(lines);
    merged.drain(..excess);
    Ok(merged)
}

/// The new lines of one Pod from now on, until the server ends the stream
/// (the container exited, the Pod was deleted) or the connection fails; the
/// engine starts a new follower when the Pod runs again.
pub fn follow(
    client: Client,
    namespace: &str,
    pod: &str,
) -> impl Stream<Item = LogLine> + Send + 'static {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let (app, source) = (namespace.to_string(), pod.to_string());
    let params = LogParams {
        follow: true,
        timestamps: true,
        since_time: Some(now_to_the_second()),
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

/// Now, down to the second: kube rounds `sinceTime` to a whole second,
/// and rounding up would skip the lines of the next half second.
fn now_to_the_second() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(Utc::now().timestamp())
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
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
