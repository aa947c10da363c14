//! Custom domains through the API and the router: an added domain reaches
//! the app at the router, a removed one gets the router's 404, bad input is
//! refused with what is allowed, and the auth rules are the config's. A
//! certificate attached to a domain is served on the TLS listener for that
//! SNI name; a host without one fails the handshake.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{client, deployed, free_port, through, Api, Controller};

#[test]
fn an_added_domain_reaches_the_app_and_a_removed_one_does_not() {
    let app = "domained";
    let (controller, api) = deployed(app, &[]);
    let client = client();
    let router = controller.router_url.clone();
    let domains = format!("/v2/apps/{app}/domains/");

    let (status, body) = through(&client, &router, "www.example.com");
    assert_eq!(status, 404, "{body}");
    let empty = api.get(&domains);
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body["count"], 0);

    // Added (lower-cased): the router answers for it once the API has.
    let added = api.post(&domains, json!({"domain": "WWW.Example.com"}));
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["domain"], "www.example.com");
    assert_eq!(added.body["app"], app);
    assert_eq!(added.body["owner"], "alice");
    let (status, body) = through(&client, &router, "www.example.com:8080");
    assert_eq!(status, 200, "{body}\n{}", controller.log());
    assert!(body.contains(&format!("{app}-web-")), "{body}");
    // The platform's host still answers.
    let (status, _) = through(&client, &router, &format!("{app}.localhost"));
    assert_eq!(status, 200);

    let list = api.get(&domains);
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["next"], serde_json::Value::Null);
    let first = &list.body["results"][0];
    for field in ["uuid", "app", "owner", "domain", "created", "updated"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["domain"], "www.example.com");

    // Removed: the router's 404 naming the host.
    let removed = api.request("DELETE", &format!("{domains}www.example.com/"), None);
    assert_eq!(removed.status, 204, "{}", removed.text);
    let (status, body) = through(&client, &router, "www.example.com");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("www.example.com"), "{body}");
    let again = api.request("DELETE", &format!("{domains}www.example.com/"), None);
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(api.get(&domains).body["count"], 0);
}

#[test]
fn bad_domains_conflicts_and_strangers_are_refused() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    for app in ["first-app", "second-app"] {
        let created = api.post("/v2/apps/", json!({"id": app}));
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let domains = "/v2/apps/first-app/domains/";

    for bad in [
        json!({"domain": "*.example.com"}),
        json!({"domain": "-bad.example.com"}),
        json!({"domain": "under_score.example.com"}),
        json!({"domain": ""}),
        json!({"domain": "com"}),
        json!({"domain": format!("{}.com", "a".repeat(64))}),
        json!({"domain": 7}),
        json!({}),
    ] {
        let answer = api.post(domains, bad.clone());
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
        assert!(answer.body["detail"].is_string(), "{}", answer.text);
    }
    let answer = api.post(domains, json!({"domain": "*.example.com"}));
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("a-z, 0-9 and hyphens"), "{detail}");
    assert!(detail.contains("no wildcard"), "{detail}");

    // The platform's own hosts.
    for own in ["second-app.localhost", "first-app.localhost", "localhost"] {
        let answer = api.post(domains, json!({"domain": own}));
        assert_eq!(answer.status, 400, "{own}: {}", answer.text);
    }

    // One app per domain.
    let added = api.post(domains, json!({"domain": "shop.example.com"}));
    assert_eq!(added.status, 201, "{}", added.text);
    let twice = api.post(domains, json!({"domain": "shop.example.com"}));
    assert_eq!(twice.status, 409, "{}", twice.text);
    let taken = api.post(
        "/v2/apps/second-app/domains/",
        json!({"domain": "Shop.Example.com."}),
    );
    assert_eq!(taken.status, 409, "{}", taken.text);

    // Someone without access: 404 to read, 403 to write; shared: allowed.
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    assert_eq!(bob.get(domains).status, 404);
    assert_eq!(
        bob.post(domains, json!({"domain": "bob.example.com"}))
            .status,
        403
    );
    assert_eq!(
        bob.request("DELETE", &format!("{domains}shop.example.com/"), None)
            .status,
        403
    );
    assert_eq!(bob.get("/v2/apps/no-such-app/domains/").status, 404);
    let shared = api.post("/v2/apps/first-app/perms/", json!({"username": "bob"}));
    assert_eq!(shared.status, 201, "{}", shared.text);
    assert_eq!(bob.get(domains).body["count"], 1);
    let by_bob = bob.post(domains, json!({"domain": "bob.example.com"}));
    assert_eq!(by_bob.status, 201, "{}", by_bob.text);
    assert_eq!(by_bob.body["owner"], "bob");

    // Destroying the app frees its domains.
    let destroyed = api.request("DELETE", "/v2/apps/first-app/", None);
    assert_eq!(destroyed.status, 204, "{}", destroyed.text);
    let moved = api.post(
        "/v2/apps/second-app/domains/",
        json!({"domain": "shop.example.com"}),
    );
    assert_eq!(moved.status, 201, "{}", moved.text);
}

/// `GET https://<host>:<port>/` with SNI `host`, trusting `root`, sent to
/// 127.0.0.1 (rustls on a blocking socket, HTTP/1.1 by hand, so that
/// reqwest's own TLS stays out of the controller's build): (status, body),
/// or the error.
fn https(host: &str, port: u16, root: &str) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(root.as_bytes())
        .map_err(|e| e.to_string())?;
    roots.add(der).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(
        tls,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("handshake or write: {e}"))?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // Some servers close without close_notify; what was read counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {answer}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate");
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

#[test]
fn an_attached_certificate_is_served_by_sni() {
    let app = "secured";
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let (controller, api) = deployed(app, &[("DRYCC_ROUTER_TLS_LISTEN", &listen)]);
    let (cert, key) = self_signed(&["secure.example.com"]);
    let (_, other_key) = self_signed(&["secure.example.com"]);

    // Refused: a key of another certificate, no PEM, a bad name.
    for (body, expected) in [
        (
            json!({"name": "secure", "certificate": cert, "key": other_key}),
            "does not match",
        ),
        (
            json!({"name": "secure", "certificate": "hello", "key": key}),
            "certificate",
        ),
        (
            json!({"name": "secure", "certificate": cert, "key": "hello"}),
            "key",
        ),
        (
            json!({"name": "Not A Name", "certificate": cert, "key": key}),
            "name",
        ),
    ] {
        let answer = api.post("/v2/certs/", body);
        assert_eq!(answer.status, 400, "{}", answer.text);
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "{detail}");
    }

    let added = api.post(
        "/v2/certs/",
        json!({"name": "secure", "certificate": cert, "key": key}),
    );
    assert_eq!(added.status, 201, "{}", added.text);
    assert!(added.body.get("key").is_none(), "{}", added.text);
    assert!(!added.text.contains("PRIVATE KEY"), "{}", added.text);
    let twice = api.post(
        "/v2/certs/",
        json!({"name": "secure", "certificate": cert, "key": key}),
    );
    assert_eq!(twice.status, 409, "{}", twice.text);
    for domain in ["secure.example.com", "plain.example.com"] {
        let answer = api.post(
            &format!("/v2/apps/{app}/domains/"),
            json!({"domain": domain}),
        );
        assert_eq!(answer.status, 201, "{}", answer.text);
    }

    // Attaching: only to a domain the certificate is valid for, and that
    // some app has.
    let wrong = api.post(
        "/v2/certs/secure/domain/",
        json!({"domain": "plain.example.com"}),
    );
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    let nowhere = api.post(
        "/v2/certs/secure/domain/",
        json!({"domain": "nowhere.example.com"}),
    );
    assert_eq!(nowhere.status, 404, "{}", nowhere.text);
    let attached = api.post(
        "/v2/certs/secure/domain/",
        json!({"domain": "secure.example.com"}),
    );
    assert_eq!(attached.status, 201, "{}", attached.text);
    let shown = api.get("/v2/certs/secure/");
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body["domains"], json!(["secure.example.com"]));
    assert!(!shown.text.contains("PRIVATE KEY"), "{}", shown.text);
    let list = api.get("/v2/certs/");
    assert_eq!(list.body["count"], 1, "{}", list.text);
    assert!(!list.text.contains("PRIVATE KEY"), "{}", list.text);

    // Someone else sees nothing of it and cannot touch it.
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    assert_eq!(bob.get("/v2/certs/secure/").status, 404);
    assert_eq!(bob.get("/v2/certs/").body["count"], 0);
    assert_eq!(bob.request("DELETE", "/v2/certs/secure/", None).status, 404);

    // HTTPS through the router, by SNI.
    let (status, body) = https("secure.example.com", tls_port, &cert)
        .unwrap_or_else(|e| panic!("{e}\n{}", controller.log()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("{app}-web-")), "{body}");
    // A host without a certificate: no handshake.
    assert!(https("plain.example.com", tls_port, &cert).is_err());
    // Plain HTTP still answers for both.
    let client = client();
    assert_eq!(
        through(&client, &controller.router_url, "plain.example.com").0,
        200
    );

    // Detached: the handshake fails for it too.
    let detached = api.request(
        "DELETE",
        "/v2/certs/secure/domain/secure.example.com/",
        None,
    );
    assert_eq!(detached.status, 204, "{}", detached.text);
    assert!(https("secure.example.com", tls_port, &cert).is_err());
    let again = api.request(
        "DELETE",
        "/v2/certs/secure/domain/secure.example.com/",
        None,
    );
    assert_eq!(again.status, 404, "{}", again.text);
    let deleted = api.request("DELETE", "/v2/certs/secure/", None);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(api.get("/v2/certs/secure/").status, 404);
}
