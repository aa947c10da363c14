//! `drycc-bench-router`: the router against Debian's nginx, in one run, on
//! the same two backends, with `wrk` at a fixed connection count. Prints
//! requests/s, p50 and p99 of each and their ratio.
//!
//! The backends are this program started again as `backend <port>` (a
//! minimal hyper server, one thread each); the router is this program as
//! `router <port> <backend>...` (the drycc-router library with a fixed
//! table, the same code the controller runs); nginx gets a configuration in
//! a temporary directory (2 workers, upstream keepalive) and runs in the
//! foreground, stopped by pid.
//!
//! Environment: `DRYCC_BENCH_SECONDS` (10), `DRYCC_BENCH_CONNECTIONS` (32),
//! `DRYCC_BENCH_ROUNDS` (3).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use drycc_bench::free_port;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const HOST: &str = "bench.localhost";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("backend") => backend(args.get(2).context("backend <port>")?.parse()?),
        Some("router") => router(&args[2..]),
        _ => compare(),
    }
}

/// A fixed answer on `port`, HTTP/1.1 keep-alive, one thread.
fn backend(port: u16) -> Result<()> {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"hello from a bench backend\n"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The drycc router on `args[0]` with a fixed table sending `bench.localhost`
/// to the backends `args[1..]`.
fn router(args: &[String]) -> Result<()> {
    let port: u16 = args
        .first()
        .context("router <port> <backend>...")?
        .parse()?;
    let backends = args[1..]
        .iter()
        .map(|a| a.parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let (table, receiver) = drycc_router::channel();
    table.send_replace(Arc::new(drycc_router::RouteTable::new(
        drycc_router::Routes {
            generation: 1,
            apps: vec![drycc_router::AppRoute {
                app: "bench".into(),
                hosts: vec![HOST.into()],
                backends,
                routable: true,
            }],
            certs: Vec::new(),
        },
    )));
    let running = drycc_router::threads::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        drycc_router::threads::default_threads(),
        receiver,
        drycc_router::Config::default(),
    )?;
    // Serves until the benchmark stops this process.
    loop {
        std::thread::park();
        let _ = (&table, &running);
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) by its pid when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Wait until `port` answers `GET /` for `HOST` with 200.
fn wait_ready(port: u16, what: &str, process: &mut Process) -> Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("Host", HOST)
            .send()
        {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            bail!("{what} exited at start: {status}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not answer on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn nginx_config(dir: &std::path::Path, port: u16, backends: &[u16]) -> String {
    let d = dir.display();
    let servers: String = backends
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        r#"worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream app {{
{servers}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id;
    }}
  }}
}}
"#
    )
}

/// One wrk run: (requests/s, p50, p99, errors line if any).
#[derive(Clone, Debug)]
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: Option<String>,
}

fn duration(text: &str) -> Option<Duration> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

fn wrk(wrk: &std::path::Path, port: u16, connections: u32, seconds: u32) -> Result<Run> {
    let output = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Host: {HOST}"),
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.trim().to_string())
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p50 = field("50%").and_then(|v| duration(&v)).context("no p50")?;
    let p99 = field("99%").and_then(|v| duration(&v)).context("no p99")?;
    let errors = text
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(|l| l.trim().to_string());
    Ok(Run {
        rps,
        p50,
        p99,
        errors,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn compare() -> Result<()> {
    let nginx = on_path("nginx")
        .context("nginx is not installed: `apt-get install -y nginx` (Debian's), then run again")?;
    let wrk_path =
        on_path("wrk").context("wrk is not installed: `apt-get install -y wrk`, then run again")?;
    let seconds = env_number("DRYCC_BENCH_SECONDS", 10);
    let connections = env_number("DRYCC_BENCH_CONNECTIONS", 32);
    let rounds = env_number("DRYCC_BENCH_ROUNDS", 3).max(1);
    let me = std::env::current_exe()?;

    let mut children = Vec::new();
    let mut backend_ports = Vec::new();
    for _ in 0..2 {
        let port = free_port()?;
        let child = Command::new(&me)
            .args(["backend", &port.to_string()])
            .stdin(Stdio::null())
            .spawn()?;
        let mut process = Process(child);
        wait_ready(port, "a backend", &mut process)?;
        children.push(process);
        backend_ports.push(port);
    }
    let router_port = free_port()?;
    let mut router_args = vec!["router".to_string(), router_port.to_string()];
    router_args.extend(backend_ports.iter().map(|p| format!("127.0.0.1:{p}")));
    let mut router = Process(Command::new(&me).args(&router_args).spawn()?);
    wait_ready(router_port, "the drycc router", &mut router)?;

    let dir = tempfile::tempdir()?;
    let nginx_port = free_port()?;
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        nginx_config(dir.path(), nginx_port, &backend_ports),
    )?;
    let error_log = dir.path().join("error.log");
    let mut nginx = Process(
        Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&config)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start nginx")?,
    );
    if let Err(error) = wait_ready(nginx_port, "nginx", &mut nginx) {
        let log = std::fs::read_to_string(&error_log).unwrap_or_default();
        bail!("{error}\nnginx's error log:\n{log}");
    }

    println!(
        "wrk -t1 -c{connections} -d{seconds}s, 2 backends, {rounds} rounds (router and nginx alternate)"
    );
    // Warm both up: pools filled, pages touched.
    wrk(&wrk_path, router_port, connections, 2)?;
    wrk(&wrk_path, nginx_port, connections, 2)?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 1..=rounds {
        for (name, port, runs) in [
            ("drycc-router", router_port, &mut ours),
            ("nginx", nginx_port, &mut theirs),
        ] {
            let run = wrk(&wrk_path, port, connections, seconds)?;
            println!(
                "round {round} {name:<13} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms{}",
                run.rps,
                run.p50.as_secs_f64() * 1e3,
                run.p99.as_secs_f64() * 1e3,
                run.errors
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            runs.push(run);
        }
    }
    let summary = |runs: &[Run]| {
        (
            median(runs.iter().map(|r| r.rps).collect()),
            median(runs.iter().map(|r| r.p50.as_secs_f64() * 1e3).collect()),
            median(runs.iter().map(|r| r.p99.as_secs_f64() * 1e3).collect()),
        )
    };
    let (our_rps, our_p50, our_p99) = summary(&ours);
    let (their_rps, their_p50, their_p99) = summary(&theirs);
    println!();
    println!("median         req/s     p50 ms   p99 ms");
    println!("drycc-router {our_rps:>9.0} {our_p50:>8.2} {our_p99:>8.2}");
    println!("nginx        {their_rps:>9.0} {their_p50:>8.2} {their_p99:>8.2}");
    println!(
        "ratio (router / nginx): throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        our_rps / their_rps.max(1.0),
        our_p50 / their_p50.max(1e-9),
        our_p99 / their_p99.max(1e-9)
    );
    drop(nginx);
    drop(router);
    drop(children);
    Ok(())
}
