//! The composition root: start-up and graceful shutdown of the controller
//! (and of the standalone router). Everything is built here, whole, and
//! every loop is started and stopped here.

use std::ops::RangeInclusive;
use std::sync::Arc;

use anyhow::Context;
use drycc_engine::Engine;
use drycc_engine_docker::{DockerConfig, DockerEngine};
use drycc_engine_local::{LocalConfig, LocalEngine};

use crate::engines::Engines;
use drycc_store::Store;
use rand::RngCore;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::http::{HttpState, Shared};
use crate::reconciler::Reconciler;
use crate::service::routes::RoutePublisher;
use crate::service::{Images, Service};
use crate::settings::{EngineKind, Settings};

/// How long a stopping controller lets open requests finish.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let data_dir = settings.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let isolation = crate::isolation::enabled();
    if isolation {
        crate::isolation::private_umask();
    }
    if !isolation {
        tracing::warn!(
            uid = nix::unistd::geteuid().as_raw(),
            "The controller does not run as root: every app's processes run as its own user and share it, so an app can read the controller's data directory and database, the other apps' files and environments, and signal their processes. Run the controller as root for apps of users of their own."
        );
    }
    crate::isolation::protect_data_dir(&data_dir, isolation)?;
    if settings.database_url.as_deref().is_none_or(str::is_empty) {
        create_private(&data_dir.join("drycc.db"))?;
    }
    let store = Store::open(&settings.database_url())
        .await
        .context("cannot open the state store")?
        .with_app_uids(settings.app_uid_range.clone());
    let given = store
        .assign_missing_app_uids()
        .await
        .context("cannot give the apps user ids of their own")?;
    if given > 0 {
        tracing::info!(
            apps = given,
            "Gave apps created before app users existed a user id of their own."
        );
    }
    if isolation {
        give_slugs(&store, &data_dir).await?;
    }
    let (engine, docker) = engines(&settings, &data_dir).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let router_secret = crate::loops::router::secret(&settings)?;
    let identity = crate::loops::leader::identity(&settings);
    let election = crate::loops::leader::start(&settings, identity.clone()).await?;
    let role = match &election {
        Some(election) => election.role.clone(),
        None => crate::role::sole_leader(&identity),
    };
    // Every enqueue is relayed too, for the leader while this one follows.
    let (enqueued, relayed) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(crate::context::Context::new(
        store,
        engine.clone(),
        settings.clone(),
        data_dir.clone(),
        isolation,
    ));
    let routes = Arc::new(RoutePublisher::new());
    let service = Arc::new(Service::new(
        ctx.clone(),
        Reconciler::relaying_to(enqueued),
        routes.clone(),
        role,
        Images::new(docker),
    ));
    let router_metrics: Arc<drycc_router::Metrics> = Arc::default();
    let state: Shared = Arc::new(HttpState::new(
        service.clone(),
        format!("http://{address}"),
        hex::encode(secret),
        router_secret,
        router_metrics.clone(),
    ));
    let builtins = ctx.paths.buildpacks();
    tokio::task::spawn_blocking(move || drycc_buildpacks::builtin::install(&builtins))
        .await
        .context("cannot install the built-in buildpacks")?
        .context("cannot install the built-in buildpacks")?;
    let relay = tokio::spawn(crate::loops::duties::relay(service.clone(), relayed));
    // The reconciler and the autoscaler run while this controller leads.
    let stop_duties = tokio_util::sync::CancellationToken::new();
    let duties = tokio::spawn(crate::loops::duties::run(
        service.clone(),
        stop_duties.clone(),
    ));
    let stop_routes = tokio_util::sync::CancellationToken::new();
    let route_loop = tokio::spawn(crate::loops::routes::run(
        ctx.clone(),
        routes.clone(),
        stop_routes.clone(),
    ));
    crate::service::build::sweep(&service).await;
    // The sweep removed the scratch directories: make them again, private.
    crate::isolation::protect_data_dir(&data_dir, isolation)?;

    let mut router_task = Vec::new();
    for (listen, kind) in crate::loops::router::listeners(&settings) {
        router_task.push(
            crate::loops::router::start(
                listen,
                routes.subscribe(),
                &settings,
                router_metrics.clone(),
                false,
                kind,
            )
            .await?,
        );
    }

    let app = NormalizePathLayer::trim_trailing_slash().layer(crate::http::router(state.clone()));
    tracing::info!(%address, data_dir = %data_dir.display(), "Controller listening.");
    let (stop_sent, stop_requested) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(
        listener,
        // Login limits count per client address.
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown({
        let stopping = service.stopping.clone();
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
    // Exec and log sessions outlive their requests: they end now.
    state.closing.cancel();
    state.sessions.close();
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, state.sessions.wait()).await;
    for router in router_task {
        let _ = tokio::task::spawn_blocking(move || router.stop()).await;
    }
    // Whatever the reconciler was doing is desired state in the store: the
    // next start resumes it.
    stop_routes.cancel();
    let _ = route_loop.await;
    stop_duties.cancel();
    if let Err(error) = duties.await {
        tracing::error!(%error, "The reconciler ended abnormally.");
    }
    // Only once nothing reconciles here may another replica take over.
    if let Some(election) = election {
        election.stop().await;
    }
    relay.abort();
    // A push's build and release outlive their request; they end with the
    // waits, which answer at once now the controller stops.
    service.tasks.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, service.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("Builds still running after the shutdown deadline; leaving them.");
    }
    tracing::info!("Releasing the engine; app processes keep running.");
    engine.close().await;
    remove_default_run_parent(&settings);
    ctx.store.close().await;
    Ok(())
}

/// Create the SQLite file readable by the controller only (SQLite gives
/// its `-wal` and `-shm` files the same mode), before SQLite would create
/// it with the default `0644`.
fn create_private(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Give every app's slugs to the app's user: those built before apps had
/// users of their own were the controller's.
async fn give_slugs(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let apps = store
        .list_apps()
        .await
        .context("cannot read the apps from the store")?;
    let slugs = data_dir.join("slugs");
    tokio::task::spawn_blocking(move || {
        for app in apps {
            if let Some(user) = crate::isolation::run_as(true, &app) {
                let dir = slugs.join(&app.id);
                if let Err(error) = crate::isolation::give_slugs(&dir, user) {
                    tracing::warn!(app = %app.id, %error, "Cannot give the app's slugs to its user; its processes may fail to start.");
                }
            }
        }
    })
    .await
    .context("giving slugs to their apps failed")
}

/// The engine removes an idle run directory (no process records) when it
/// lets go; the shared default parent (`/dev/shm/drycc-local-<uid>` or
/// `$XDG_RUNTIME_DIR/drycc-local`) goes too once no controller uses it.
fn remove_default_run_parent(settings: &Settings) {
    if settings.run_dir.is_none() {
        if let Some(parent) = settings.run_dir().parent() {
            // Only an empty directory is removed.
            let _ = std::fs::remove_dir(parent);
        }
    }
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
        homes_dir: Some(data_dir.join("homes")),
        max_log_line: usize::try_from(settings.max_log_line_kib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024),
        cgroup_parent: format!("drycc-{}", settings.instance()),
        kill_on_drop: false,
        crash_backoff: drycc_engine_local::BackoffPolicy {
            initial: std::time::Duration::from_secs_f64(settings.crash_backoff.max(0.05)),
            ..Default::default()
        },
        process_ports: port_shares().0,
        ..LocalConfig::default()
    })
    .with_context(|| {
        format!(
            "cannot start the local engine on {} (is a controller already running on it?)",
            run_dir.display()
        )
    })
}

/// The engine the controller drives: the local engine, with the Docker
/// engine beside it when one is reachable (images, and with
/// `DRYCC_ENGINE=docker` checkouts too); the Docker client for Dockerfile
/// builds.
async fn engines(
    settings: &Settings,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn Engine>, Option<drycc_images::bollard::Docker>)> {
    if settings.engine == EngineKind::Kubernetes {
        return kube_engine(settings).await;
    }
    let local: Arc<dyn Engine> = local_engine(settings, data_dir)?;
    let checkouts_in_containers = settings.engine == EngineKind::Docker;
    if checkouts_in_containers && settings.slug_image.as_deref().is_none_or(str::is_empty) {
        anyhow::bail!("DRYCC_ENGINE=docker runs source apps in containers of DRYCC_SLUG_IMAGE: set it to an image with /bin/sh and the runtimes your apps need");
    }
    let Some((client, containers)) = docker_engine(settings).await else {
        if checkouts_in_containers {
            anyhow::bail!("DRYCC_ENGINE=docker needs a Docker engine: start dockerd or point DRYCC_DOCKER_HOST (or DOCKER_HOST) at one");
        }
        return Ok((local, None));
    };
    let engine = Engines::new(local, containers, checkouts_in_containers);
    Ok((Arc::new(engine), Some(client)))
}

/// `DRYCC_ENGINE=kubernetes`: every app on the cluster kube's discovery
/// finds (`KUBECONFIG`, else the Pod's service account), and the Docker
/// engine, when one is reachable, to build the images the cluster pulls
/// from `DRYCC_REGISTRY` (slugs, Dockerfile apps).
async fn kube_engine(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Engine>, Option<drycc_images::bollard::Docker>)> {
    let config = drycc_engine_kube::KubeConfig {
        instance: settings.instance(),
        default_port: crate::desired::CONTAINER_PORT,
        node_selector: settings.kube_node_selector.0.clone(),
        tolerations: settings.kube_tolerations.0.clone(),
        ..Default::default()
    };
    let engine = drycc_engine_kube::KubeEngine::infer(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot use the Kubernetes cluster: {}", e.detail()))?;
    tracing::info!("Apps run on the Kubernetes cluster.");
    let docker = match settings.docker_host() {
        Some(host) => match drycc_images::bollard::Docker::connect_with_host(&host) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::warn!(%host, %error, "Cannot use this Docker engine; source and Dockerfile pushes are refused.");
                None
            }
        },
        None => None,
    };
    Ok((Arc::new(engine), docker))
}

/// Host ports for processes: the local engine's share and the Docker
/// engine's (the top quarter), apart so that neither hands out a port the
/// other promised.
fn port_shares() -> (RangeInclusive<u16>, RangeInclusive<u16>) {
    let all = drycc_engine_local::default_process_ports(drycc_engine_local::ephemeral_ports());
    let (start, end) = (*all.start(), *all.end());
    let split = end - (end - start) / 4;
    (start..=split - 1, split..=end)
}

/// The Docker engine of `DRYCC_DOCKER_HOST` (or `DOCKER_HOST`), adopting
/// the containers a previous controller left running. `None` when none is
/// configured or it cannot be reached: image and Dockerfile apps are then
/// refused with a message saying what to start, source apps run as usual.
async fn docker_engine(
    settings: &Settings,
) -> Option<(drycc_images::bollard::Docker, Arc<DockerEngine>)> {
    let host = settings.docker_host()?;
    let client = match drycc_images::bollard::Docker::connect_with_host(&host) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%host, %error, "Cannot use this Docker engine; image and Dockerfile apps are refused.");
            return None;
        }
    };
    let config = DockerConfig {
        host_ports: port_shares().1,
        backoff: drycc_engine_docker::BackoffPolicy {
            initial: std::time::Duration::from_secs_f64(settings.crash_backoff.max(0.05)),
            ..Default::default()
        },
        slug_image: (settings.engine == EngineKind::Docker)
            .then(|| settings.slug_image.clone())
            .flatten(),
        ..DockerConfig::new(settings.instance())
    };
    match DockerEngine::connect(client, config).await {
        Ok(engine) => {
            tracing::info!(%host, "Image and Dockerfile apps run on this Docker engine.");
            Some((engine.docker().clone(), engine))
        }
        Err(error) => {
            tracing::warn!(%host, error = %error.detail(), "No Docker engine; image and Dockerfile apps are refused.");
            None
        }
    }
}

/// `drycc-controller stop-apps`: stop every app process (and container)
/// the (stopped) controller left running.
pub async fn stop_apps(settings: Settings) -> anyhow::Result<()> {
    let (engine, _) = engines(&settings, &settings.data_dir()).await?;
    let mut count = 0;
    for app in engine.apps().await? {
        count += engine.processes(&app).await?.len();
    }
    engine.stop_all().await;
    remove_default_run_parent(&settings);
    println!("Stopped {count} app processes.");
    Ok(())
}

/// `drycc-controller router`: the router on its own, following the
/// controller at `DRYCC_CONTROLLER_URL`. It serves its last table while
/// the controller is away.
pub async fn run_router(settings: Settings) -> anyhow::Result<()> {
    let secret = crate::loops::router::secret(&settings)?;
    let (sender, receiver) = drycc_router::channel();
    // Its counters on `GET /metrics` for a host that is no app's.
    let metrics: Arc<drycc_router::Metrics> = Default::default();
    let mut routers = Vec::new();
    for (listen, kind) in crate::loops::router::listeners(&settings) {
        routers.push(
            crate::loops::router::start(
                listen,
                receiver.clone(),
                &settings,
                metrics.clone(),
                true,
                kind,
            )
            .await?,
        );
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let controller = settings.controller_url.clone();
    let follower = tokio::spawn({
        let stop = stop.clone();
        async move {
            drycc_router::follow::follow(&controller, &secret, sender, stop.cancelled_owned()).await
        }
    });
    tracing::info!(controller = %settings.controller_url, "Following the controller's routing table.");
    shutdown_signal().await;
    stop.cancel();
    let _ = follower.await;
    for router in routers {
        let _ = tokio::task::spawn_blocking(move || router.stop()).await;
    }
    Ok(())
}

pub async fn shutdown_signal() {
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
