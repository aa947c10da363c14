//! A Pod as a process status, with the state mapping of
//! `docs/kubernetes.md`: Pending -> starting (its waiting reason as the
//! last exit), Running and Ready -> up, Running not Ready -> starting,
//! a deletion timestamp -> terminating, CrashLoopBackOff -> crashed,
//! Succeeded -> down, Failed -> crashed.

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use drycc_engine::{ProcessState, ProcessStatus};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::manifests::{APP, COMMAND, HASH, TYPE, VERSION};

/// The status of one Pod; `None` for a pod that is not a process (no
/// `type` label).
pub fn status_of(pod: &Pod) -> Option<ProcessStatus> {
    let meta = &pod.metadata;
    let labels = meta.labels.as_ref()?;
    let ptype = labels.get(TYPE)?.clone();
    let name = meta.name.clone()?;
    let app = labels
        .get(APP)
        .cloned()
        .or_else(|| meta.namespace.clone())
        .unwrap_or_default();
    let release = labels
        .get(VERSION)
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let hash = labels.get(HASH).cloned().unwrap_or_default();
    let spec_container = pod.spec.as_ref().and_then(|s| s.containers.first());
    let status = pod.status.as_ref();
    let container: Option<&ContainerStatus> = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());

    let pod_ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let state = if meta.deletion_timestamp.is_some() {
        ProcessState::Terminating
    } else if waiting.as_deref() == Some("CrashLoopBackOff") {
        ProcessState::Crashed
    } else {
        match phase {
            "Pending" => ProcessState::Starting,
            "Running" if pod_ready => ProcessState::Up,
            "Running" => ProcessState::Starting,
            "Succeeded" => ProcessState::Down,
            "Failed" => ProcessState::Crashed,
            _ => ProcessState::Error,
        }
    };
    let ready = pod_ready && state == ProcessState::Up;

    let last_exit = container
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| match &t.reason {
            Some(reason) => format!("exited with code {}: {reason}", t.exit_code),
            None => format!("exited with code {}", t.exit_code),
        })
        .or(waiting.filter(|w| w != "ContainerCreating"));

    let running_since = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
        .map(|t| t.0);
    let started: DateTime<Utc> = running_since
        .or_else(|| status.and_then(|s| s.start_time.as_ref()).map(|t| t.0))
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0))
        .and_then(|t| DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs()))
        .unwrap_or_else(Utc::now);

    let port = spec_container
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.container_port).ok());
    let ip: Option<IpAddr> = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let endpoint = match (ip, port) {
        (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
        _ => None,
    };
    let command = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMMAND).cloned())
        .unwrap_or_default();

    Some(ProcessStatus {
        name,
        app,
        ptype,
        release,
        hash,
        state,
        started,
        ready,
        restarts: container
            .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
            .unwrap_or(0),
        pid: None,
        endpoint,
        last_exit,
        command,
        argv: spec_container
            .and_then(|c| c.args.clone())
            .unwrap_or_default(),
        image: spec_container.and_then(|c| c.image.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value, deleting: bool) -> Pod {
        let mut pod = serde_json::json!({
            "metadata": {
                "name": "a-web-5d4f8b9c7-x2x9z",
                "namespace": "a",
                "labels": {"app": "a", "type": "web", "version": "v3", "drycc.cc/hash": "abc"},
                "annotations": {"drycc.cc/command": "serve --port $PORT"},
                "creationTimestamp": "2026-01-01T00:00:00Z"
            },
            "spec": {"containers": [{
                "name": "a-web", "image": "r/a:v3", "args": ["serve", "--port", "5000"],
                "ports": [{"containerPort": 5000}]
            }]},
            "status": status
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z".into();
        }
        serde_json::from_value(pod).unwrap()
    }

    fn running(ready: bool) -> serde_json::Value {
        serde_json::json!({
            "phase": "Running",
            "podIP": "10.244.0.7",
            "startTime": "2026-01-01T00:00:01Z",
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
            "containerStatuses": [{
                "name": "a-web", "image": "r/a:v3", "imageID": "", "ready": ready,
                "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}
            }]
        })
    }

    #[test]
    fn a_running_ready_pod_is_an_up_process() {
        let s = status_of(&pod(running(true), false)).unwrap();
        assert_eq!(s.name, "a-web-5d4f8b9c7-x2x9z");
        assert_eq!(
            (s.app.as_str(), s.ptype.as_str(), s.release),
            ("a", "web", 3)
        );
        assert_eq!(s.hash, "abc");
        assert_eq!((s.state, s.ready, s.restarts), (ProcessState::Up, true, 2));
        assert_eq!(s.endpoint, Some("10.244.0.7:5000".parse().unwrap()));
        assert_eq!(s.started.to_rfc3339(), "2026-01-01T00:00:02+00:00");
        assert_eq!(s.last_exit.as_deref(), Some("exited with code 3: Error"));
        assert_eq!(s.command, "serve --port $PORT");
        assert_eq!(s.argv, vec!["serve", "--port", "5000"]);
        assert_eq!(s.image.as_deref(), Some("r/a:v3"));
    }

    #[test]
    fn states_map_as_the_spec_says() {
        let state = |status: serde_json::Value, deleting: bool| {
            let s = status_of(&pod(status, deleting)).unwrap();
            (s.state, s.ready)
        };
        assert_eq!(
            state(running(false), false),
            (ProcessState::Starting, false)
        );
        assert_eq!(
            state(running(true), true),
            (ProcessState::Terminating, false)
        );
        let pull = serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "a-web", "image": "r/a:v3", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]});
        let s = status_of(&pod(pull, false)).unwrap();
        assert_eq!(s.state, ProcessState::Starting);
        assert_eq!(s.last_exit.as_deref(), Some("ImagePullBackOff"));
        let crash = serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "a-web", "image": "r/a:v3", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
        assert_eq!(state(crash, false), (ProcessState::Crashed, false));
        assert_eq!(
            state(serde_json::json!({"phase": "Succeeded"}), false),
            (ProcessState::Down, false)
        );
        assert_eq!(
            state(serde_json::json!({"phase": "Failed"}), false),
            (ProcessState::Crashed, false)
        );
        assert_eq!(
            state(serde_json::json!({"phase": "Unknown"}), false),
            (ProcessState::Error, false)
        );
        assert_eq!(
            state(serde_json::json!({}), false),
            (ProcessState::Starting, false)
        );
    }
}
