//! `GET /v2/openapi.json`: the document parses, names exactly the routes
//! the controller serves under /v2 (each documented operation reaches its
//! handler, each undocumented method on a documented path is a 405), and
//! its schemas accept real answers of a deployed app.

mod support;

use serde_json::{json, Value};
use support::{deployed, Api};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn document(api: &Api) -> Value {
    let response = api
        .client
        .get(format!("{}/v2/openapi.json", api.url))
        .send()
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    serde_json::from_str(&response.text().expect("body")).expect("the document is JSON")
}

/// The documented operations: (METHOD, path, operationId).
fn operations(document: &Value) -> Vec<(String, String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            operations.push((method.to_uppercase(), path.clone(), id.to_string()));
        }
    }
    operations
}

/// `path` with each `{parameter}` replaced by a name nothing has.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "nothing-here"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What is wrong with `body` as `method path`'s answer `status`, by the
/// document's schema, resolving `$ref`s inside the document (JSON Schema
/// 2020-12, which OpenAPI 3.1 uses).
fn schema_errors(
    document: &Value,
    path: &str,
    method: &str,
    status: u16,
    body: &Value,
) -> Vec<String> {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let pointer = format!(
        "#/paths/{escaped}/{}/responses/{status}/content/application~1json/schema",
        method.to_lowercase()
    );
    assert!(
        document.pointer(&pointer[1..]).is_some(),
        "no schema for {method} {path} {status}"
    );
    // A `$ref` is a URI: braces of path templates are percent-encoded.
    let mut schema = document.clone();
    schema["$ref"] = json!(pointer.replace('{', "%7B").replace('}', "%7D"));
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn assert_matches(document: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let errors = schema_errors(document, path, method, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body:#}"
    );
}

#[test]
fn the_document_lists_exactly_the_served_routes() {
    let (controller, api) = deployed("described", &[]);

    // Open to all, like the rest of the API's description.
    let anonymous = Api::new(&controller.url);
    let doc = document(&anonymous);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
    let operations = operations(&doc);
    assert!(operations.len() >= 40, "{} operations", operations.len());
    for (_, path, _) in &operations {
        assert!(path.starts_with("/v2"), "{path}");
    }

    // Every documented operation reaches a handler: the router's own
    // answers to a route it does not have are 404 "Not found." and 405.
    // Logging out revokes the token, so it goes last.
    let mut ordered = operations.clone();
    ordered.sort_by_key(|(_, _, id)| id == "auth_logout");
    for (method, path, id) in &ordered {
        let body = (method == "POST").then(|| json!({}));
        let answer = api.request(method, &concrete(path), body);
        let fallback =
            answer.status == 405 || (answer.status == 404 && answer.body["detail"] == "Not found.");
        assert!(
            !fallback,
            "{id}: {method} {path} is documented but not served: {} {}",
            answer.status, answer.text
        );
        assert!(
            answer.status < 500,
            "{id}: {} {}",
            answer.status,
            answer.text
        );
    }

    // And no path serves a method it does not document.
    let mut paths: Vec<&String> = operations.iter().map(|(_, path, _)| path).collect();
    paths.dedup();
    for path in paths {
        let documented: Vec<&str> = operations
            .iter()
            .filter(|(_, p, _)| p == path)
            .map(|(m, _, _)| m.as_str())
            .collect();
        for method in METHODS.iter().filter(|m| !documented.contains(m)) {
            let answer = anonymous.request(method, &concrete(path), None);
            assert_eq!(
                answer.status, 405,
                "{method} {path} is served but not documented: {}",
                answer.text
            );
        }
    }
}

#[test]
fn the_schemas_accept_real_answers() {
    let (_controller, mut api) = deployed("shapes", &[]);
    let doc = document(&api);
    let set = api.post(
        "/v2/apps/shapes/config/",
        json!({"values": {"GREETING": "hi"}, "cpu": {"web": "100m"}}),
    );
    assert_eq!(set.status, 201, "{}", set.text);
    assert_matches(&doc, "/v2/apps/{app}/config", "POST", 201, &set.body);
    let pods = api.pods("shapes");
    let pod = pods[0]["name"].as_str().expect("a pod").to_string();

    let reads = [
        ("/v2/auth/whoami", "/v2/auth/whoami/".to_string()),
        ("/v2/apps", "/v2/apps/".to_string()),
        ("/v2/apps/{app}", "/v2/apps/shapes/".to_string()),
        (
            "/v2/apps/{app}/builds",
            "/v2/apps/shapes/builds/".to_string(),
        ),
        (
            "/v2/apps/{app}/releases",
            "/v2/apps/shapes/releases/".to_string(),
        ),
        (
            "/v2/apps/{app}/releases/{version}",
            "/v2/apps/shapes/releases/v2/".to_string(),
        ),
        (
            "/v2/apps/{app}/config",
            "/v2/apps/shapes/config/".to_string(),
        ),
        (
            "/v2/apps/{app}/pods",
            "/v2/apps/shapes/pods/?usage=true".to_string(),
        ),
        (
            "/v2/apps/{app}/pods/{target}",
            "/v2/apps/shapes/pods/web/".to_string(),
        ),
        (
            "/v2/apps/{app}/pods/{target}/describe",
            format!("/v2/apps/shapes/pods/{pod}/describe/"),
        ),
        (
            "/v2/apps/{app}/settings",
            "/v2/apps/shapes/settings/".to_string(),
        ),
        (
            "/v2/apps/{app}/settings/autoscale/{ptype}/history",
            "/v2/apps/shapes/settings/autoscale/web/history/".to_string(),
        ),
        ("/v2/apps/{app}/perms", "/v2/apps/shapes/perms/".to_string()),
        (
            "/v2/apps/{app}/domains",
            "/v2/apps/shapes/domains/".to_string(),
        ),
        ("/v2/certs", "/v2/certs/".to_string()),
    ];
    for (template, path) in reads {
        let answer = api.get(&path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert_matches(&doc, template, "GET", 200, &answer.body);
    }

    // Errors are `{"detail": ...}` as documented.
    let missing = api.get("/v2/apps/nothing-here/");
    assert_eq!(missing.status, 404);
    assert_matches(&doc, "/v2/apps/{app}", "GET", 404, &missing.body);
    api.token = None;
    let anonymous = api.get("/v2/apps/");
    assert_eq!(anonymous.status, 401);
    assert_matches(&doc, "/v2/apps", "GET", 401, &anonymous.body);

    // The schemas are strict enough to refuse a wrong shape.
    let mut wrong = set.body.clone();
    wrong["values"] = json!(["not", "a", "map"]);
    let errors = schema_errors(&doc, "/v2/apps/{app}/config", "POST", 201, &wrong);
    assert!(!errors.is_empty(), "a config with a list of values passed");
}
