//! The API server's refusals, as the engine's calls meet them, mapped to
//! the engine's errors with a sentence for the user.

use drycc_engine::EngineError;
use drycc_engine_kube::errors::{engine_error, is_conflict, is_not_found};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::mock::{failure, play, scripted, Server};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/myapp/deployments";

/// Run `call` against a server that answers its one request with `answer`
/// after checking it is `method path`.
async fn refused<T, F, Fut>(
    method: Method,
    path: &str,
    answer: crate::mock::Answer,
    call: F,
) -> kube::Error
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
    T: std::fmt::Debug,
{
    let (client, mut server): (Client, Server) = scripted();
    let path = path.to_string();
    play(call(client), async move {
        let seen = server.expect(method, &path).await;
        seen.respond.send_response(answer);
    })
    .await
    .expect_err("the server refused the call")
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "myapp"},
        "spec": {
            "selector": {"matchLabels": {"app": "myapp", "type": "web"}},
            "template": {"spec": {"containers": [{"name": "web"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_missing_pod_is_a_missing_process() {
    let pod = "myapp-web-5d8f7c9b4-7p7dh";
    let error = refused(
        Method::DELETE,
        &format!("/api/v1/namespaces/myapp/pods/{pod}"),
        failure(
            404,
            "NotFound",
            &format!(r#"pods "{pod}" not found"#),
            json!({"name": pod, "kind": "pods"}),
        ),
        |client| async move {
            Api::<Pod>::namespaced(client, "myapp")
                .delete(pod, &DeleteParams::default())
                .await
        },
    )
    .await;
    assert!(is_not_found(&error));
    let error = engine_error(&format!("restart process {pod}"), error);
    assert!(
        matches!(&error, EngineError::ProcessNotFound(name) if name == pod),
        "{error:?}"
    );
    assert_eq!(error.to_string(), format!("process {pod} not found"));
}

#[tokio::test]
async fn a_pod_named_only_in_the_message_is_a_missing_process_too() {
    let error = refused(
        Method::GET,
        "/api/v1/namespaces/myapp/pods/myapp-web-a-1",
        failure(
            404,
            "NotFound",
            r#"pods "myapp-web-a-1" not found"#,
            json!(null),
        ),
        |client| async move {
            Api::<Pod>::namespaced(client, "myapp")
                .get("myapp-web-a-1")
                .await
        },
    )
    .await;
    let error = engine_error("describe process myapp-web-a-1", error);
    assert!(
        matches!(&error, EngineError::ProcessNotFound(name) if name == "myapp-web-a-1"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_missing_deployment_says_what_is_missing() {
    let error = refused(
        Method::PATCH,
        &format!("{DEPLOYMENTS}/myapp-web/scale"),
        failure(
            404,
            "NotFound",
            r#"deployments.apps "myapp-web" not found"#,
            json!({"name": "myapp-web", "group": "apps", "kind": "deployments"}),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .patch_scale(
                    "myapp-web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": 3}})),
                )
                .await
        },
    )
    .await;
    let error = engine_error("scale web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: scale web of myapp: deployment \"myapp-web\" not found in the cluster"
    );
}

#[tokio::test]
async fn rbac_refusal_names_verb_resource_and_namespace() {
    let error = refused(
        Method::PATCH,
        &format!("{DEPLOYMENTS}/myapp-web/scale"),
        failure(
            403,
            "Forbidden",
            r#"deployments.apps "myapp-web" is forbidden: User "system:serviceaccount:drycc:drycc-controller" cannot patch resource "deployments/scale" in API group "apps" in the namespace "myapp""#,
            json!({"name": "myapp-web", "group": "apps", "kind": "deployments"}),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .patch_scale(
                    "myapp-web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": 3}})),
                )
                .await
        },
    )
    .await;
    let error = engine_error("scale web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: scale web of myapp: the controller's service account \
         (system:serviceaccount:drycc:drycc-controller) lacks the permission to patch \
         deployments/scale.apps in namespace \"myapp\"; grant it in the controller's RBAC rules"
    );
}

#[tokio::test]
async fn rbac_refusal_at_cluster_scope() {
    let error = refused(
        Method::POST,
        "/api/v1/namespaces",
        failure(
            403,
            "Forbidden",
            r#"namespaces is forbidden: User "system:serviceaccount:drycc:drycc-controller" cannot create resource "namespaces" in API group "" at the cluster scope"#,
            json!({"kind": "namespaces"}),
        ),
        |client| async move {
            let namespace = serde_json::from_value(json!({"metadata": {"name": "myapp"}})).unwrap();
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
                .create(&PostParams::default(), &namespace)
                .await
        },
    )
    .await;
    let error = engine_error("create app myapp", error);
    assert_eq!(
        error.to_string(),
        "engine unavailable: create app myapp: the controller's service account \
         (system:serviceaccount:drycc:drycc-controller) lacks the permission to create \
         namespaces at cluster scope; grant it in the controller's RBAC rules"
    );
}

#[tokio::test]
async fn a_namespace_being_deleted_is_said_so() {
    let error = refused(
        Method::POST,
        DEPLOYMENTS,
        failure(
            403,
            "Forbidden",
            r#"deployments.apps "myapp-web" is forbidden: unable to create new content in namespace myapp because it is being terminated"#,
            json!({"name": "myapp-web", "group": "apps", "kind": "deployments"}),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .create(&PostParams::default(), &deployment("myapp-web"))
                .await
        },
    )
    .await;
    let error = engine_error("deploy web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("engine unavailable: deploy web of myapp: the app's namespace is being deleted, retry once it is gone"),
        "{error}"
    );
}

#[tokio::test]
async fn a_conflict_asks_for_a_retry() {
    let error = refused(
        Method::PUT,
        &format!("{DEPLOYMENTS}/myapp-web"),
        failure(
            409,
            "Conflict",
            r#"Operation cannot be fulfilled on deployments.apps "myapp-web": the object has been modified; please apply your changes to the latest version and try again"#,
            json!({"name": "myapp-web", "group": "apps", "kind": "deployments"}),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .replace("myapp-web", &PostParams::default(), &deployment("myapp-web"))
                .await
        },
    )
    .await;
    assert!(is_conflict(&error));
    let error = engine_error("deploy web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: conflict: deploy web of myapp: deployment \"myapp-web\" \
         changed meanwhile, retry"
    );
}

#[tokio::test]
async fn an_object_created_meanwhile_is_a_conflict_too() {
    let error = refused(
        Method::POST,
        DEPLOYMENTS,
        failure(
            409,
            "AlreadyExists",
            r#"deployments.apps "myapp-web" already exists"#,
            json!({"name": "myapp-web", "group": "apps", "kind": "deployments"}),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .create(&PostParams::default(), &deployment("myapp-web"))
                .await
        },
    )
    .await;
    assert!(is_conflict(&error));
    let error = engine_error("deploy web of myapp", error);
    assert!(
        error
            .to_string()
            .starts_with("engine unavailable: conflict: "),
        "{error}"
    );
}

#[tokio::test]
async fn an_invalid_object_names_the_refused_fields() {
    let error = refused(
        Method::POST,
        DEPLOYMENTS,
        failure(
            422,
            "Invalid",
            r#"Deployment.apps "myapp-web" is invalid: [spec.template.spec.containers[0].image: Required value, spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1]"#,
            json!({
                "name": "myapp-web",
                "group": "apps",
                "kind": "Deployment",
                "causes": [
                    {"reason": "FieldValueRequired", "message": "Required value",
                     "field": "spec.template.spec.containers[0].image"},
                    {"reason": "FieldValueInvalid",
                     "message": "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                     "field": "spec.template.spec.containers[0].resources.requests"}
                ]
            }),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .create(&PostParams::default(), &deployment("myapp-web"))
                .await
        },
    )
    .await;
    let error = engine_error("deploy web of myapp", error);
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "deploy web of myapp: the cluster refused deployment \"myapp-web\": \
         spec.template.spec.containers[0].image: Required value; \
         spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": \
         must be less than or equal to cpu limit of 1"
    );
}

#[tokio::test]
async fn an_invalid_object_without_causes_keeps_the_message() {
    let error = refused(
        Method::POST,
        DEPLOYMENTS,
        failure(
            422,
            "Invalid",
            r#"Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"#,
            json!(null),
        ),
        |client| async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .create(&PostParams::default(), &deployment("Bad_Name"))
                .await
        },
    )
    .await;
    let error = engine_error("deploy web of myapp", error);
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
    assert!(
        error.to_string().starts_with(
            "deploy web of myapp: the cluster refused it: Deployment.apps \"Bad_Name\" is invalid: metadata.name"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_timeout_keeps_its_cause() {
    let (client, mut server) = scripted();
    let error = play(
        async move {
            Api::<Deployment>::namespaced(client, "myapp")
                .get("myapp-web")
                .await
        },
        async move {
            let seen = server
                .expect(Method::GET, &format!("{DEPLOYMENTS}/myapp-web"))
                .await;
            seen.respond.send_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "operation timed out",
            ));
        },
    )
    .await
    .unwrap_err();
    let error = engine_error("read deployment web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: read deployment web of myapp: the Kubernetes API server did not \
         answer in time"
    );
    assert_eq!(
        error.detail(),
        "engine unavailable: read deployment web of myapp: the Kubernetes API server did not \
         answer in time: operation timed out"
    );
}

#[tokio::test]
async fn a_server_timeout_status_asks_for_a_retry() {
    let error = refused(
        Method::GET,
        &format!("{DEPLOYMENTS}/myapp-web"),
        failure(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
            json!(null),
        ),
        |client| async move { Api::<Deployment>::namespaced(client, "myapp").get("myapp-web").await },
    )
    .await;
    let error = engine_error("read deployment web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the Kubernetes API server is too busy to answer in time, retry"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_server_keeps_the_cause_chain() {
    // A port that was free a moment ago and has nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let error = tokio::time::timeout(
        crate::mock::GUARD,
        Api::<Deployment>::namespaced(client, "myapp").get("myapp-web"),
    )
    .await
    .unwrap()
    .unwrap_err();
    let error = engine_error("read deployment web of myapp", error);
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "engine unavailable: read deployment web of myapp: cannot reach the Kubernetes API server"
    );
    let detail = error.detail();
    assert!(
        detail.to_ascii_lowercase().contains("connection refused"),
        "{detail}"
    );
    // Each cause is said once.
    assert_eq!(detail.matches("onnection refused").count(), 1, "{detail}");
}
