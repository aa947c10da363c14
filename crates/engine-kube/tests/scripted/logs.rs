//! `tail` and `follow` against the Pods' `log` subresource.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use drycc_engine::EngineError;
use drycc_engine_kube::logs;
use futures::StreamExt;
use http::{Method, StatusCode};
use serde_json::json;

use crate::mock::{chunked, failure, ok, play, scripted, text, Seen};

fn at(stamp: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(stamp)
        .unwrap()
        .with_timezone(&Utc)
}

fn log_path(pod: &str) -> String {
    format!("/api/v1/namespaces/myapp/pods/{pod}/log")
}

#[tokio::test]
async fn tail_merges_the_pods_by_time_and_keeps_the_last_lines() {
    let (client, mut server) = scripted();
    let pods = ["myapp-web-5d8f7c9b4-7p7dh", "myapp-worker-6b7c8d9f5-x2k4q"];
    let lines = play(logs::tail(client, "myapp", &pods, 3), async move {
        // Both Pods are read at once, so either may ask first.
        for _ in 0..2 {
            let seen: Seen = server.next().await;
            assert_eq!(seen.method, Method::GET);
            assert_eq!(seen.query_sorted(), ["tailLines=3", "timestamps=true"]);
            let body = if seen.path == log_path(pods[0]) {
                "2026-12-03T10:00:01.000000001Z web one\n\
                     2026-12-03T10:00:03.5Z web three\n\
                     2026-12-03T10:00:05.123456789Z web five\n"
            } else {
                assert_eq!(seen.path, log_path(pods[1]));
                "2026-12-03T10:00:02Z worker two\n\
                     2026-12-03T10:00:04Z worker four\r\n\
                     2026-12-03T10:00:06Z worker six\n"
            };
            seen.respond.send_response(ok(body));
        }
    })
    .await
    .unwrap();
    let got: Vec<(&str, &str, DateTime<Utc>)> = lines
        .iter()
        .map(|l| (l.source.as_str(), l.text.as_str(), l.time))
        .collect();
    assert_eq!(
        got,
        [
            (pods[1], "worker four", at("2026-12-03T10:00:04Z")),
            (pods[0], "web five", at("2026-12-03T10:00:05.123456789Z")),
            (pods[1], "worker six", at("2026-12-03T10:00:06Z")),
        ]
    );
    assert!(lines.iter().all(|l| l.app == "myapp"));
}

#[tokio::test]
async fn tail_skips_pods_that_are_gone_or_not_started() {
    let (client, mut server) = scripted();
    let pods = ["myapp-web-a-1", "myapp-web-a-2", "myapp-web-a-3"];
    let lines = play(logs::tail(client, "myapp", &pods, 10), async move {
        for _ in 0..3 {
            let seen = server.next().await;
            let answer = if seen.path == log_path(pods[0]) {
                failure(
                    404,
                    "NotFound",
                    r#"pods "myapp-web-a-1" not found"#,
                    json!({"name": "myapp-web-a-1", "kind": "pods"}),
                )
            } else if seen.path == log_path(pods[1]) {
                failure(
                    400,
                    "BadRequest",
                    r#"container "web" in pod "myapp-web-a-2" is waiting to start: ContainerCreating"#,
                    json!(null),
                )
            } else {
                ok("2026-12-03T10:00:00Z only line\n")
            };
            seen.respond.send_response(answer);
        }
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].source, pods[2]);
    assert_eq!(lines[0].text, "only line");
}

#[tokio::test]
async fn tail_of_nothing_asks_nothing() {
    // Nobody answers: a request would hang until the guard fails the test.
    let (client, _server) = scripted();
    let none: [&str; 0] = [];
    let guard = crate::mock::GUARD;
    let lines = tokio::time::timeout(guard, logs::tail(client.clone(), "myapp", &none, 10));
    assert!(lines.await.unwrap().unwrap().is_empty());
    let lines = tokio::time::timeout(guard, logs::tail(client, "myapp", &["p"], 0));
    assert!(lines.await.unwrap().unwrap().is_empty());
}

#[tokio::test]
async fn tail_refused_by_rbac_says_which_permission_is_missing() {
    let (client, mut server) = scripted();
    let error = play(logs::tail(client, "myapp", &["myapp-web-a-1"], 5), async move {
        let seen = server.expect(Method::GET, &log_path("myapp-web-a-1")).await;
        seen.respond.send_response(failure(
            403,
            "Forbidden",
            r#"pods "myapp-web-a-1" is forbidden: User "system:serviceaccount:drycc:drycc-controller" cannot get resource "pods/log" in API group "" in the namespace "myapp""#,
            json!({"name": "myapp-web-a-1", "kind": "pods"}),
        ));
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: read the logs of myapp-web-a-1: the controller's service account \
         (system:serviceaccount:drycc:drycc-controller) lacks the permission to get pods/log \
         in namespace \"myapp\"; grant it in the controller's RBAC rules"
    );
}

#[tokio::test]
async fn tail_of_a_server_error_without_a_status_keeps_its_text() {
    let (client, mut server) = scripted();
    let error = play(logs::tail(client, "myapp", &["p"], 5), async move {
        let seen = server.expect(Method::GET, &log_path("p")).await;
        seen.respond
            .send_response(text(StatusCode::BAD_GATEWAY, "upstream connect error"));
    })
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "engine unavailable: read the logs of p: the Kubernetes API server failed (502): \
         upstream connect error"
    );
}

#[tokio::test]
async fn follow_streams_lines_as_the_chunks_arrive() {
    let (client, mut server) = scripted();
    let pod = "myapp-web-5d8f7c9b4-7p7dh";
    let mut stream = Box::pin(logs::follow(client, "myapp", pod));
    let (chunks, answer) = chunked();
    let before = Utc::now();
    let server_side = tokio::spawn(async move {
        let seen = server.expect(Method::GET, &log_path(pod)).await;
        assert_eq!(seen.param("follow"), Some("true"));
        assert_eq!(seen.param("timestamps"), Some("true"));
        assert_eq!(seen.param("tailLines"), None);
        let since = at(seen.param("sinceTime").expect("a sinceTime"));
        seen.respond.send_response(answer);
        since
    });
    chunks
        .send(Bytes::from(
            "2026-12-03T10:00:01Z first\n2026-12-03T10:00:02Z sec",
        ))
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    assert_eq!(
        (
            first.app.as_str(),
            first.source.as_str(),
            first.text.as_str()
        ),
        ("myapp", pod, "first")
    );
    assert_eq!(first.time, at("2026-12-03T10:00:01Z"));
    // The line split across two chunks comes whole, once its end arrived.
    chunks.send(Bytes::from("ond\n")).await.unwrap();
    let second = stream.next().await.unwrap();
    assert_eq!(second.text, "second");
    assert_eq!(second.time, at("2026-12-03T10:00:02Z"));
    chunks
        .send(Bytes::from("a line without a time\n"))
        .await
        .unwrap();
    let third = stream.next().await.unwrap();
    assert_eq!(third.text, "a line without a time");
    assert_eq!(third.time, second.time);
    // The container exited: the kubelet ends the body, the stream ends.
    drop(chunks);
    assert!(stream.next().await.is_none());
    let since = server_side.await.unwrap();
    // From now on, to the second (never after now).
    assert!(since <= Utc::now());
    assert!(since >= before - chrono::Duration::seconds(1));
}

#[tokio::test]
async fn follow_of_a_missing_pod_ends_at_once() {
    let (client, mut server) = scripted();
    let stream = logs::follow(client, "myapp", "gone");
    let lines: Vec<_> = play(stream.collect::<Vec<_>>(), async move {
        let seen = server.expect(Method::GET, &log_path("gone")).await;
        seen.respond.send_response(failure(
            404,
            "NotFound",
            r#"pods "gone" not found"#,
            json!(null),
        ));
    })
    .await;
    assert!(lines.is_empty());
}

/// A Pod of `myapp` as the reflector holds it.
fn pod(name: &str, uid: &str, restarts: i32, running: bool) -> k8s_openapi::api::core::v1::Pod {
    let state = if running {
        json!({"running": {"startedAt": "2026-12-03T10:00:00Z"}})
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "myapp", "uid": uid},
        "status": {"containerStatuses": [{
            "name": "web", "image": "web", "imageID": "", "ready": running,
            "restartCount": restarts, "state": state
        }]}
    }))
    .unwrap()
}

/// The next line a follower gets: its source and text.
async fn next_line(follow: &mut drycc_engine::LogStream) -> (String, String) {
    match tokio::time::timeout(crate::mock::GUARD, follow.next())
        .await
        .expect("no line")
    {
        Some(drycc_engine::Followed::Line(line)) => (line.source, line.text),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn follow_app_follows_each_run_of_each_running_container() {
    use kube::runtime::{reflector, watcher};

    let (client, mut server) = scripted();
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Apply(pod("myapp-web-a-1", "u1", 0, true)));
    writer.apply_watcher_event(&watcher::Event::Apply(pod("myapp-web-a-2", "u2", 0, false)));
    // Another app's Pod is none of this follower's business.
    let mut other = pod("other-web-a-1", "u9", 0, true);
    other.metadata.namespace = Some("other".to_string());
    writer.apply_watcher_event(&watcher::Event::Apply(other));
    let (changes, changed) = tokio::sync::watch::channel(0u64);
    let before = Utc::now();
    let mut follow = logs::follow_app(client, "myapp", store, changed);

    // Only the running container is followed, from when the reader began.
    let seen = server.expect(Method::GET, &log_path("myapp-web-a-1")).await;
    assert_eq!(seen.param("follow"), Some("true"));
    let since = at(seen.param("sinceTime").unwrap());
    assert!(since <= before && since > before - chrono::Duration::seconds(2));
    let (first, first_answer) = chunked();
    seen.respond.send_response(first_answer);
    first
        .send(Bytes::from("2026-12-03T10:00:01Z one\n"))
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut follow).await,
        ("myapp-web-a-1".to_string(), "one".to_string())
    );

    // The second Pod starts: the change counter says to look again.
    writer.apply_watcher_event(&watcher::Event::Apply(pod("myapp-web-a-2", "u2", 0, true)));
    changes.send_modify(|n| *n += 1);
    let seen = server.expect(Method::GET, &log_path("myapp-web-a-2")).await;
    let (second, second_answer) = chunked();
    seen.respond.send_response(second_answer);
    second
        .send(Bytes::from("2026-12-03T10:00:02Z two\n"))
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut follow).await,
        ("myapp-web-a-2".to_string(), "two".to_string())
    );

    // The first container restarts: its old stream ends, a new run is
    // followed under the same Pod name.
    drop(first);
    writer.apply_watcher_event(&watcher::Event::Apply(pod("myapp-web-a-1", "u1", 1, true)));
    changes.send_modify(|n| *n += 1);
    let seen = server.expect(Method::GET, &log_path("myapp-web-a-1")).await;
    let (again, again_answer) = chunked();
    seen.respond.send_response(again_answer);
    again
        .send(Bytes::from("2026-12-03T10:00:03Z one again\n"))
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut follow).await,
        ("myapp-web-a-1".to_string(), "one again".to_string())
    );

    // A change that starts nothing new asks nothing new: the next request
    // the server sees is none (the reader goes away and the client with it).
    changes.send_modify(|n| *n += 1);
    second
        .send(Bytes::from("2026-12-03T10:00:04Z still two\n"))
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut follow).await,
        ("myapp-web-a-2".to_string(), "still two".to_string())
    );
    drop(follow);
    // The followers end with the reader: their bodies are dropped.
    tokio::time::timeout(crate::mock::GUARD, again.closed())
        .await
        .expect("a follower outlived its reader");
    tokio::time::timeout(crate::mock::GUARD, second.closed())
        .await
        .expect("a follower outlived its reader");
}

#[tokio::test]
async fn tail_leaves_out_a_pod_whose_node_cannot_be_reached() {
    let (client, mut server) = scripted();
    let pods = ["myapp-web-a-1", "myapp-web-a-2"];
    let lines = play(logs::tail(client, "myapp", &pods, 10), async move {
        for _ in 0..2 {
            let seen = server.next().await;
            let answer = if seen.path == log_path(pods[0]) {
                failure(
                    500,
                    "InternalError",
                    r#"Get "https://10.0.0.7:10250/containerLogs/myapp/myapp-web-a-1/web": dial tcp 10.0.0.7:10250: connect: connection refused"#,
                    json!(null),
                )
            } else {
                ok("2026-12-03T10:00:00Z from the other node\n")
            };
            seen.respond.send_response(answer);
        }
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].source, pods[1]);
    assert_eq!(lines[0].text, "from the other node");
}
