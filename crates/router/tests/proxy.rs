//! The router against real backends on free loopback ports: forwarding
//! headers, WebSocket pass-through, retry on a refused connection, the
//! error answers (404, 503, 431), routing disabled, header read timeout,
//! and a table update taking effect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use drycc_router::{AppRoute, Config, RouteTable, Router, Routes};

/// A backend answering with its name and the request's headers as
/// `name: value` lines; it echoes WebSocket messages on `/ws`.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                // A WebSocket client first sends `GET /ws`.
                let mut head = [0u8; 8];
                let n = stream.peek(&mut head).await.unwrap_or(0);
                if head[..n].starts_with(b"GET /ws ") {
                    if let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await {
                        while let Some(Ok(message)) = socket.next().await {
                            if message.is_text() || message.is_binary() {
                                let _ = socket.send(message).await;
                            }
                        }
                    }
                    return;
                }
                let service = hyper::service::service_fn(move |request: Request<_>| async move {
                    let mut text = format!("backend {name}\n");
                    for (key, value) in request.headers() {
                        text.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// An address nothing listens on (connections are refused).
fn refused() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn app(name: &str, backends: Vec<SocketAddr>, routable: bool) -> AppRoute {
    AppRoute {
        app: name.into(),
        hosts: vec![format!("{name}.localhost")],
        backends,
        routable,
    }
}

struct Running {
    url: String,
    port: u16,
    table: tokio::sync::watch::Sender<Arc<RouteTable>>,
}

impl Running {
    fn publish(&self, generation: u64, apps: Vec<AppRoute>) {
        self.table.send_replace(Arc::new(RouteTable::new(Routes {
            generation,
            apps,
            certs: Vec::new(),
        })));
    }
}

async fn router(apps: Vec<AppRoute>, config: Config) -> Running {
    let (table, receiver) = drycc_router::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let running = Running {
        url: format!("http://127.0.0.1:{port}"),
        port,
        table,
    };
    running.publish(1, apps);
    tokio::spawn(Router::new(receiver, config).serve(listener, std::future::pending()));
    running
}

async fn get(running: &Running, host: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = client
        .get(format!("{}/path?q=1", running.url))
        .header("Host", host);
    for (key, value) in headers {
        request = request.header(*key, *value);
    }
    let response = request.send().await.expect("router answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn forwarding_headers_reach_the_backend() {
    let one = backend("one").await;
    let running = router(vec![app("web", vec![one], true)], Config::default()).await;
    let (status, body) = get(&running, "web.localhost", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("backend one"), "{body}");
    assert!(body.contains("host: web.localhost\n"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(
        body.contains(&format!("x-forwarded-port: {}\n", running.port)),
        "{body}"
    );
    assert!(body.contains("x-request-id: "), "{body}");

    let (_, body) = get(
        &running,
        "web.localhost",
        &[
            ("X-Request-Id", "client-id-1"),
            ("X-Forwarded-For", "192.0.2.1"),
            ("Connection", "keep-alive, x-hop"),
            ("X-Hop", "secret"),
        ],
    )
    .await;
    assert!(body.contains("x-request-id: client-id-1\n"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 192.0.2.1, 127.0.0.1\n"),
        "{body}"
    );
    assert!(!body.contains("x-hop"), "{body}");
}

#[tokio::test]
async fn requests_alternate_between_backends() {
    let one = backend("one").await;
    let two = backend("two").await;
    let running = router(vec![app("web", vec![one, two], true)], Config::default()).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, body) = get(&running, "web.localhost", &[]).await;
        assert_eq!(status, 200);
        seen.insert(body.lines().next().unwrap_or_default().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_backend() {
    let one = backend("one").await;
    let dead = refused();
    let running = router(vec![app("web", vec![dead, one], true)], Config::default()).await;
    for _ in 0..6 {
        let (status, body) = get(&running, "web.localhost", &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("backend one"), "{body}");
    }
    // With no other backend to try, the client learns that none answered.
    running.publish(2, vec![app("web", vec![dead], true)]);
    let (status, body) = get(&running, "web.localhost", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("no web process answered"), "{body}");
}

async fn get_path(running: &Running, host: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", running.url))
        .header("Host", host)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("router answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn metrics_count_answers_retries_and_latency_per_app() {
    let one = backend("one").await;
    let dead = refused();
    let config = Config {
        metrics_on_other_hosts: true,
        ..Config::default()
    };
    let metrics = config.metrics.clone();
    let running = router(
        vec![
            app("counted", vec![dead, one], true),
            app("idle", vec![], true),
        ],
        config,
    )
    .await;
    for _ in 0..4 {
        assert_eq!(get(&running, "counted.localhost", &[]).await.0, 200);
    }
    // An app's own /metrics is the app's.
    let (status, body) = get_path(&running, "counted.localhost", "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("backend one"), "{body}");
    assert_eq!(get(&running, "idle.localhost", &[]).await.0, 503);
    assert_eq!(get(&running, "nobody.localhost", &[]).await.0, 404);
    // A new table keeps the counts.
    running.publish(2, vec![app("counted", vec![one], true)]);
    assert_eq!(get(&running, "counted.localhost", &[]).await.0, 200);

    let (status, text) = get_path(&running, "127.0.0.1", "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, metrics.render());
    for line in [
        r#"drycc_router_requests_total{app="counted",status="2xx"} 6"#,
        r#"drycc_router_requests_total{app="counted",status="5xx"} 0"#,
        r#"drycc_router_requests_total{app="idle",status="5xx"} 1"#,
        // Five requests started on the refused backend every other time.
        r#"drycc_router_retries_total{app="counted"} 3"#,
        r#"drycc_router_backend_latency_seconds_bucket{app="counted",le="+Inf"} 6"#,
        r#"drycc_router_backend_latency_seconds_count{app="counted"} 6"#,
        "drycc_router_unknown_host_requests_total 1",
    ] {
        assert!(has_line(&text, line), "{line} in\n{text}");
    }
    // Without the setting, /metrics on another host is a 404 like any.
    let plain = router(vec![], Config::default()).await;
    assert_eq!(get_path(&plain, "127.0.0.1", "/metrics").await.0, 404);
}

/// Log lines written by `tracing` in this thread, for the access log.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn access_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(drycc_router::access::TARGET))
            .map(str::to_string)
            .collect()
    }

    /// Wait (bounded) until `count` access lines were written: a proxied
    /// answer is logged when its body is done with.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.access_lines();
            if lines.len() >= count || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn the_access_log_has_a_line_per_request_when_on() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let one = backend("one").await;
    let quiet = router(vec![app("quiet", vec![one], true)], Config::default()).await;
    assert_eq!(get(&quiet, "quiet.localhost", &[]).await.0, 200);

    let config = Config {
        access_log: true,
        ..Config::default()
    };
    let running = router(vec![app("logged", vec![one], true)], config).await;
    let (status, body) = get(&running, "logged.localhost", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(get(&running, "nobody.localhost", &[]).await.0, 404);
    let lines = captured.wait_for(2).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let proxied = lines.iter().find(|l| l.contains("logged.localhost"));
    let proxied = proxied.unwrap_or_else(|| panic!("{lines:#?}"));
    for field in [
        "method=GET".to_string(),
        "path=\"/path?q=1\"".to_string(),
        "status=200".to_string(),
        format!("bytes={}", body.len()),
        format!("backend={one}"),
        "micros=".to_string(),
    ] {
        assert!(proxied.contains(&field), "{field} in {proxied}");
    }
    let unknown = lines.iter().find(|l| l.contains("nobody.localhost"));
    let unknown = unknown.unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(unknown.contains("status=404"), "{unknown}");
    assert!(!unknown.contains("backend="), "{unknown}");
}

/// A backend that answers the first request of each connection, keeps
/// it open, and closes it when the next request arrives (as an app whose
/// keep-alive timeout fires just as a request is sent).
async fn closing_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        true
    }
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut stream).await {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh";
                    let _ = stream.write_all(answer).await;
                    read_head(&mut stream).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_get_sent_on_a_connection_the_app_just_closed_is_sent_again() {
    let backend = closing_backend().await;
    let config = Config::default();
    let metrics = config.metrics.clone();
    let running = router(vec![app("closing", vec![backend], true)], config).await;
    assert_eq!(
        get(&running, "closing.localhost", &[]).await,
        (200, "fresh".to_string())
    );
    // Not a synchronisation: the pooled connection must have been idle for
    // a while to be suspected of an app-side keep-alive timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&running, "closing.localhost", &[]).await,
        (200, "fresh".to_string())
    );
    let text = metrics.render();
    let line = r#"drycc_router_retries_total{app="closing"} 1"#;
    assert!(has_line(&text, line), "{line} in\n{text}");
}

#[tokio::test]
async fn unknown_hosts_idle_apps_and_disabled_routing_get_clear_answers() {
    let one = backend("one").await;
    let running = router(
        vec![app("idle", vec![], true), app("hidden", vec![one], false)],
        Config::default(),
    )
    .await;
    let (status, body) = get(&running, "nope.localhost:8080", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("nope.localhost"), "{body}");
    let (status, body) = get(&running, "idle.localhost", &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("app idle has no ready web process"), "{body}");
    let (status, body) = get(&running, "hidden.localhost", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("routing:enable"), "{body}");
    // A new table: routing enabled, the idle app scaled up.
    running.publish(
        2,
        vec![app("idle", vec![one], true), app("hidden", vec![one], true)],
    );
    assert_eq!(get(&running, "hidden.localhost", &[]).await.0, 200);
    assert_eq!(get(&running, "idle.localhost", &[]).await.0, 200);
}

#[tokio::test]
async fn a_router_without_a_table_says_so() {
    let (_table, receiver) = drycc_router::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Router::new(receiver, Config::default()).serve(listener, std::future::pending()));
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let one = backend("one").await;
    let config = Config {
        max_header_bytes: 8192,
        ..Config::default()
    };
    let running = router(vec![app("web", vec![one], true)], config).await;
    let big = "x".repeat(16 * 1024);
    let (status, _) = get(&running, "web.localhost", &[("X-Big", &big)]).await;
    assert_eq!(status, 431);
    let (status, _) = get(&running, "web.localhost", &[("X-Small", "x")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let one = backend("one").await;
    let config = Config {
        header_read_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let running = router(vec![app("web", vec![one], true)], config).await;
    let mut stream = TcpStream::connect(("127.0.0.1", running.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web.localhost\r\n")
        .await
        .unwrap();
    // The router closes the connection (possibly after an error status);
    // a router that waited forever would fail this read's deadline.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(!String::from_utf8_lossy(&rest).contains("backend one"));
}

#[tokio::test]
async fn websockets_pass_through() {
    let one = backend("one").await;
    let running = router(vec![app("web", vec![one], true)], Config::default()).await;
    let stream = TcpStream::connect(("127.0.0.1", running.port))
        .await
        .unwrap();
    let request = Request::get("ws://web.localhost/ws")
        .header("Host", "web.localhost")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgraded through the router");
    assert_eq!(response.status().as_u16(), 101);
    for text in ["hello", "again"] {
        socket.send(Message::Text(text.into())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo")
            .expect("a message")
            .expect("no error");
        assert_eq!(echoed, Message::Text(text.into()));
    }
}
