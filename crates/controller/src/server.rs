//! Start-up and graceful shutdown of the controller.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, post};
use axum::Router;
use drycc_engine::local::{LocalConfig, LocalEngine};
use drycc_engine::Engine;
use drycc_store::Store;
use rand::RngCore;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::settings::{EngineKind, Settings};
use crate::state::{AppState, Shared};

/// How long a stopping controller lets open requests finish.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.engine == EngineKind::Kubernetes {
        anyhow::bail!(
            "the kubernetes engine is not available in this build yet; use --engine local"
        );
    }
    let data_dir = settings.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let store = Store::open(&settings.database_url())
        .await
        .context("cannot open the state store")?;
    let engine: Arc<dyn Engine> = local_engine(&settings, &data_dir)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let state: Shared = Arc::new(AppState::new(
        store,
        engine.clone(),
        settings.clone(),
        data_dir.clone(),
        format!("http://{address}"),
        hex::encode(secret),
    ));
    let builtins = state.buildpacks_dir();
    tokio::task::spawn_blocking(move || drycc_buildpacks::builtin::install(&builtins))
        .await
        .context("cannot install the built-in buildpacks")?
        .context("cannot install the built-in buildpacks")?;
    let stop_reconciler = tokio_util::sync::CancellationToken::new();
    let reconciler = tokio::spawn(crate::reconciler::run(
        state.clone(),
        stop_reconciler.clone(),
    ));
    resume(&state).await?;
    crate::git::build::sweep(&state).await;

    let router_task = start_router(&state).await?;

    let git = Router::new()
        .route("/git/{repo}/{*rest}", any(crate::git::cgi::serve))
        .route("/internal/git/build", post(crate::git::build::build))
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());
    let app = crate::api::router(state.clone()).merge(git);
    let app = NormalizePathLayer::trim_trailing_slash().layer(app);
    tracing::info!(%address, data_dir = %data_dir.display(), "Controller listening.");
    let (stop_sent, stop_requested) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .with_graceful_shutdown({
        let stopping = state.stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.cancel();
            let _ = stop_sent.send(());
        }
    });
    // Requests in flight may finish, but followers and exec sessions would
    // hold the stop forever: the whole stop has a deadline.
    let deadline = async {
        if stop_requested.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_DEADLINE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => served?,
        () = deadline => tracing::warn!(
            seconds = SHUTDOWN_DEADLINE.as_secs(),
            "Requests still open after the shutdown deadline; closing them."
        ),
    }
    if let Some((stop, task)) = router_task {
        let _ = stop.send(());
        let _ = task.await;
    }
    // Whatever the reconciler was doing is desired state in the store: the
    // next start resumes it.
    stop_reconciler.cancel();
    if let Err(error) = reconciler.await {
        tracing::error!(%error, "The reconciler ended abnormally.");
    }
    tracing::info!("Releasing the engine; app processes keep running.");
    engine.close().await;
    state.store.close().await;
    Ok(())
}

/// The local engine on the controller's run and data directories. It adopts
/// the app processes a previous controller left running.
fn local_engine(
    settings: &Settings,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<LocalEngine>> {
    let run_dir = settings.run_dir();
    LocalEngine::new(LocalConfig {
        run_dir: run_dir.clone(),
        log_dir: Some(
            settings
                .log_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("logs")),
        ),
        log_file_bytes: settings.log_kib_per_process.saturating_mul(1024),
        crash_backoff: drycc_engine::local::BackoffPolicy {
            initial: std::time::Duration::from_secs_f64(settings.crash_backoff.max(0.05)),
            ..Default::default()
        },
        ..LocalConfig::default()
    })
    .with_context(|| {
        format!(
            "cannot start the local engine on {} (is a controller already running on it?)",
            run_dir.display()
        )
    })
}

/// `drycc-controller stop-apps`: stop every app process the (stopped)
/// controller left running.
pub async fn stop_apps(settings: Settings) -> anyhow::Result<()> {
    let engine = local_engine(&settings, &settings.data_dir())?;
    let mut count = 0;
    for app in engine.apps().await? {
        count += engine.processes(&app).await?.len();
    }
    engine.stop_all().await;
    println!("Stopped {count} app processes.");
    Ok(())
}

/// Hand every app to the reconciler: those in the store (a `pending`
/// release is judged again, never assumed good) and those the engine runs
/// (what the store no longer has is removed). Does not wait for any of it.
async fn resume(state: &Shared) -> anyhow::Result<()> {
    let mut apps: std::collections::BTreeSet<String> = state
        .store
        .list_apps()
        .await
        .context("cannot read the apps from the store")?
        .into_iter()
        .map(|app| app.id)
        .collect();
    match state.engine.apps().await {
        Ok(running) => apps.extend(running),
        Err(error) => {
            tracing::warn!(%error, "Cannot list the engine's apps; only the store's are reconciled.")
        }
    }
    tracing::info!(apps = apps.len(), "Reconciling every app.");
    for app in &apps {
        state.reconciler.enqueue(app);
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Ready `web` processes of an app, as the router needs them.
struct EngineBackends(Shared);

#[async_trait::async_trait]
impl drycc_router::Backends for EngineBackends {
    async fn web_backends(&self, app: &str) -> Option<Vec<std::net::SocketAddr>> {
        let state = &self.0;
        state.store.get_app(app).await.ok()??;
        let processes = state.engine.processes(app).await.ok()?;
        Some(
            processes
                .iter()
                .filter(|p| {
                    p.ptype == "web" && p.ready && p.state == drycc_engine::ProcessState::Up
                })
                .filter_map(|p| p.port)
                .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .collect(),
        )
    }
}

type RouterTask = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

async fn start_router(state: &Shared) -> anyhow::Result<Option<RouterTask>> {
    let listen = state.settings.router_listen.trim();
    if listen.eq_ignore_ascii_case("off") || listen.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} for the router (DRYCC_ROUTER_LISTEN=off disables it)"
            )
        })?;
    let router = drycc_router::Router::new(
        state.settings.domain.clone(),
        Arc::new(EngineBackends(state.clone())),
    );
    tracing::info!(address = %listen, domain = %state.settings.domain, "Router listening.");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(router.serve(listener, async move {
        let _ = stopped.await;
    }));
    Ok(Some((stop, task)))
}
