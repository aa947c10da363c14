//! The internal build endpoint called by the pre-receive hook: move the
//! pushed checkout into a new slug, run the app's buildpacks in it
//! (`drycc_buildpacks`), take the process types from the Procfile over the
//! buildpacks' defaults, create build + release, roll it out, and stream
//! progress lines back. A failed build removes its slug and changes
//! nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use drycc_buildpacks::{slug, Dirs};
use drycc_model::scale::structure_after_deploy;
use drycc_store::{BuildRef, NewBuild, NewConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{RESULT_FAILED, RESULT_OK, SECRET_HEADER};
use crate::deploy::{self, ReleaseChange};
use crate::state::Shared;

#[derive(serde::Deserialize)]
pub struct BuildRequest {
    app: String,
    user: String,
    sha: String,
}

pub async fn build(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<BuildRequest>,
) -> Response {
    let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    if secret != Some(state.hook_secret.as_str()) {
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    }
    let (sender, receiver) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let result = run(&state, &request, &sender).await;
        let last = match result {
            Ok(()) => RESULT_OK.to_string(),
            Err(message) => {
                for line in message.lines() {
                    let _ = sender.send(format!("-----> {line}")).await;
                }
                RESULT_FAILED.to_string()
            }
        };
        let _ = sender.send(last).await;
    });
    let stream = ReceiverStream::new(receiver)
        .map(|line| Ok::<_, std::convert::Infallible>(format!("{line}\n")));
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn run(
    state: &Shared,
    request: &BuildRequest,
    progress: &mpsc::Sender<String>,
) -> Result<(), String> {
    let checkout = state.checkouts_dir().join(&request.app).join(&request.sha);
    if !checkout.is_dir() {
        return Err(format!("the checkout of {} is missing", request.sha));
    }
    let dockerfile = checkout.join("Dockerfile").is_file();
    let app = state
        .store
        .get_app(&request.app)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("app {} does not exist", request.app))?;
    // The config of the release the app should run; a failed release's
    // config is not carried forward.
    let latest = match state
        .store
        .desired_release(&app.id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(release) => release,
        None => state
            .store
            .latest_release(&app.id)
            .await
            .map_err(|e| e.to_string())?,
    };
    if dockerfile {
        let built = dockerfile_build(state, request, &checkout, progress).await;
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        let build = built?;
        return release_build(state, &app, request, build, &latest, progress).await;
    }
    // The checkout becomes the slug: compiled where its processes will run,
    // in a directory of its own, so the running release's slug is never
    // touched and a failed build leaves nothing behind.
    let slug = slug::new_name(&request.sha);
    let slug_dir = state.slugs_dir().join(&app.id).join(&slug);
    if let Err(error) = move_checkout(&checkout, &slug_dir).await {
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        return Err(format!("cannot prepare the build: {error}"));
    }
    let compiled = compile(
        state,
        &app.id,
        state.run_as(&app),
        request,
        &slug_dir,
        &latest.config.values,
        progress,
    )
    .await;
    let (procfile, buildpacks) = match compiled {
        Ok(built) => built,
        Err(message) => {
            let _ = tokio::fs::remove_dir_all(&slug_dir).await;
            return Err(message);
        }
    };
    let mut build = NewBuild {
        image: slug,
        stack: buildpacks,
        sha: request.sha.clone(),
        procfile,
        dockerfile: String::new(),
        image_config: None,
    };
    if let Some(registry) = cluster_registry(state)? {
        let published =
            publish_slug(state, &app.id, &registry, &slug_dir, &mut build, progress).await;
        // The image is the slug from now on: the cluster pulls it.
        let _ = tokio::fs::remove_dir_all(&slug_dir).await;
        published?;
    }
    release_build(state, &app, request, build, &latest, progress).await
}

/// Where images for a cluster go: `DRYCC_REGISTRY` with
/// `DRYCC_ENGINE=kubernetes` (whose nodes pull every image), else `None`
/// (images stay on this machine's Docker engine, slugs in their directory).
fn cluster_registry(state: &Shared) -> Result<Option<String>, String> {
    if state.settings.engine != crate::settings::EngineKind::Kubernetes {
        return Ok(None);
    }
    match state.settings.registry.as_deref().map(|r| r.trim_end_matches('/')) {
        Some(registry) if !registry.is_empty() => Ok(Some(registry.to_string())),
        _ => Err("apps built here run on the cluster from a registry: set DRYCC_REGISTRY (host[:port][/prefix]) on the controller and push again".into()),
    }
}

/// Make the compiled slug an image for the cluster (`DRYCC_SLUG_IMAGE`
/// with the slug at /app), push it to the registry, and make `build` run
/// it.
async fn publish_slug(
    state: &Shared,
    app: &str,
    registry: &str,
    slug_dir: &Path,
    build: &mut NewBuild,
    progress: &mpsc::Sender<String>,
) -> Result<(), String> {
    let Some(docker) = &state.docker else {
        return Err("source apps run on the cluster as slug images, built by a Docker engine, and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one), restart the controller and push again".into());
    };
    let Some(base) = state
        .settings
        .slug_image
        .as_deref()
        .filter(|b| !b.is_empty())
    else {
        return Err("source apps run on the cluster in containers of DRYCC_SLUG_IMAGE: set it on the controller to an image with /bin/sh and the runtimes your apps need".into());
    };
    let tag = format!("{registry}/{app}:{}", build.image);
    let _ = progress
        .send(format!("-----> Publishing the slug as {tag}"))
        .await;
    drycc_images::build_slug_image(docker, base, slug_dir.to_path_buf(), &tag, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    drycc_images::push_image(docker, &tag, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let record = deploy::ImageRecord {
        entrypoint: vec!["/bin/sh".to_string(), "-c".to_string()],
        cmd: Vec::new(),
        exposed_ports: Vec::new(),
        working_dir: Some(drycc_images::SLUG_DIR.to_string()),
        digest: None,
        web_is_cmd: false,
        slug: true,
    };
    build.image = tag;
    build.image_config = Some(serde_json::to_value(&record).map_err(|e| e.to_string())?);
    Ok(())
}

/// Release a new build with the config of `latest` and roll it out.
async fn release_build(
    state: &Shared,
    app: &drycc_store::App,
    request: &BuildRequest,
    build: NewBuild,
    latest: &drycc_store::Release,
    progress: &mpsc::Sender<String>,
) -> Result<(), String> {
    let say = |line: String| async move {
        let _ = progress.send(line).await;
    };
    let type_set = build.procfile.keys().cloned().collect();
    let structure = structure_after_deploy(&app.structure, &type_set);
    let short = &request.sha[..request.sha.len().min(7)];
    let change = ReleaseChange {
        owner: request.user.clone(),
        summary: format!("{} deployed {short}", request.user),
        build: BuildRef::New(build),
        config: NewConfig::from(&latest.config),
        structure: Some(structure),
    };
    let released = deploy::release(state, &app.id, change, Some(progress)).await;
    prune_slugs(state, &app.id).await;
    match released {
        Ok(release) => {
            say(format!("-----> Launching... done, v{}", release.version)).await;
            say(String::new()).await;
            say(format!(
                "       {} deployed; try: curl http://{}.{}:{}/",
                app.id,
                app.id,
                state.settings.domain,
                router_port(&state.settings.router_listen)
            ))
            .await;
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Build the pushed Dockerfile app's image on the Docker engine, its
/// output shown in the push, and make its build row. Nothing is written
/// before the image exists.
async fn dockerfile_build(
    state: &Shared,
    request: &BuildRequest,
    checkout: &Path,
    progress: &mpsc::Sender<String>,
) -> Result<NewBuild, String> {
    let Some(docker) = &state.docker else {
        return Err("Dockerfile apps are built and run by a Docker engine and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one), restart the controller and push again".into());
    };
    let dockerfile = tokio::fs::read_to_string(checkout.join("Dockerfile"))
        .await
        .map_err(|e| format!("cannot read the Dockerfile: {e}"))?;
    let procfile = read_procfile(checkout, &state.settings)?;
    let short = &request.sha[..request.sha.len().min(12)];
    let registry = cluster_registry(state)?;
    let repository = registry.as_deref().unwrap_or(IMAGE_REPOSITORY);
    let tag = format!("{repository}/{}:git-{short}", request.app);
    let _ = progress
        .send("-----> Building Docker image".to_string())
        .await;
    let (lines, mut receiver) = mpsc::unbounded_channel::<String>();
    let forward = async {
        while let Some(line) = receiver.recv().await {
            let _ = progress.send(format!("       {line}")).await;
        }
    };
    let build = drycc_images::build_image(docker, &tag, checkout.to_path_buf(), move |line| {
        let _ = lines.send(line.to_string());
    });
    let (built, ()) = tokio::join!(build, forward);
    built.map_err(|e| e.to_string())?;
    if registry.is_some() {
        let _ = progress.send(format!("-----> Pushing {tag}")).await;
        drycc_images::push_image(docker, &tag, |_| {})
            .await
            .map_err(|e| e.to_string())?;
    }
    let image = state
        .images
        .inspect(&tag, None)
        .await
        .map_err(|e| format!("cannot read the built image: {e}"))?;
    crate::image_build::new_build(&tag, &image, procfile, request.sha.clone(), dockerfile)
}

/// The repository of images built from pushed Dockerfiles (local to the
/// Docker engine): `<this>/<app>:git-<commit>`.
const IMAGE_REPOSITORY: &str = "drycc-apps";

/// At start, before the API serves (so no build runs): remove what builds
/// interrupted by a stop or a crash left behind: checkouts, scratch
/// directories, and slugs that no build row names.
pub async fn sweep(state: &Shared) {
    let apps = match state.store.list_apps().await {
        Ok(apps) => apps,
        Err(error) => {
            tracing::warn!(%error, "Cannot list apps to remove unfinished builds.");
            return;
        }
    };
    let mut recorded: Vec<(std::path::PathBuf, BTreeSet<String>)> = Vec::new();
    for app in apps {
        match state.store.list_builds(&app.id).await {
            Ok(builds) => recorded.push((
                state.slugs_dir().join(&app.id),
                builds.iter().map(deploy::slug_name).collect(),
            )),
            Err(error) => {
                tracing::warn!(app = %app.id, %error, "Cannot list builds to remove unfinished ones.");
                return;
            }
        }
    }
    let scratch = [state.checkouts_dir(), state.data_dir.join("tmp")];
    let removed = tokio::task::spawn_blocking(move || {
        let mut removed = 0;
        for dir in scratch {
            if std::fs::remove_dir_all(&dir).is_ok() {
                removed += 1;
            }
        }
        for (app_dir, names) in recorded {
            let Ok(entries) = std::fs::read_dir(&app_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !names.contains(&name) && std::fs::remove_dir_all(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    })
    .await
    .unwrap_or(0);
    if removed > 0 {
        tracing::info!(removed, "Removed what unfinished builds left behind.");
    }
}

/// Rename the hook's checkout to the slug directory (both in the data dir).
async fn move_checkout(checkout: &Path, slug_dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = slug_dir.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(checkout, slug_dir).await
}

/// Run the app's buildpacks in `slug_dir`; the process types (the
/// Procfile's, over the buildpacks' defaults) and the buildpacks that ran.
async fn compile(
    state: &Shared,
    app: &str,
    user: Option<drycc_engine::RunAs>,
    request: &BuildRequest,
    slug_dir: &Path,
    config: &BTreeMap<String, String>,
    progress: &mpsc::Sender<String>,
) -> Result<(BTreeMap<String, String>, String), String> {
    // A bad Procfile fails the push before anything is installed.
    let procfile = read_procfile(slug_dir, &state.settings)?;
    let home = match user {
        Some(user) => Some(prepare_isolated_build(state, app, slug_dir, user).await?),
        None => None,
    };
    let dirs = Dirs {
        build: slug_dir.to_path_buf(),
        cache: state.cache_dir().join(app),
        work: state
            .data_dir
            .join("tmp")
            .join(format!("build-{app}-{}", uuid::Uuid::new_v4().simple())),
        builtins: state.buildpacks_dir(),
        buildpacks_cache: state.fetched_buildpacks_dir(),
        user: user.map(|u| (u.uid, u.gid)),
    };
    // Buildpack output goes to the push through a filter: a line that
    // looks like the build's verdict is escaped, so no buildpack can make
    // the hook accept a failed push.
    let (output, mut lines) = mpsc::channel::<String>(64);
    let forward = async {
        while let Some(line) = lines.recv().await {
            let line = if line.trim_start().starts_with("DRYCC-RESULT") {
                format!(" {line}")
            } else {
                line
            };
            let _ = progress.send(line).await;
        }
    };
    let env = build_env(app, &request.sha, home.as_deref());
    let built = async move {
        let result = drycc_buildpacks::build(&dirs, config, &env, &output).await;
        drop(output);
        result
    };
    let (outcome, ()) = tokio::join!(built, forward);
    let outcome = outcome.map_err(|error| error.to_string())?;
    let mut types = outcome.default_process_types;
    let _ = progress
        .send("-----> Discovering process types".into())
        .await;
    match procfile {
        Some(declared) => {
            let names: Vec<&str> = declared.keys().map(String::as_str).collect();
            let _ = progress
                .send(format!(
                    "-----> Procfile declares types -> {}",
                    names.join(", ")
                ))
                .await;
            types.extend(declared);
        }
        None => {
            let names: Vec<&str> = types.keys().map(String::as_str).collect();
            let _ = progress
                .send(format!(
                    "-----> Default types for buildpack -> {}",
                    names.join(", ")
                ))
                .await;
        }
    }
    if types.is_empty() {
        return Err("no process types: add a Procfile with a line such as `web: <command that listens on $PORT>`".into());
    }
    let dir = slug_dir.to_path_buf();
    let size = tokio::task::spawn_blocking(move || slug::size(&dir))
        .await
        .unwrap_or(0);
    let _ = progress
        .send(format!(
            "-----> Compiled slug size is {}",
            slug::human_size(size)
        ))
        .await;
    Ok((types, outcome.specs.join(", ")))
}

/// Make what a build of an app that runs as its own user touches that
/// user's: the slug and the build cache (given while the controller alone
/// can reach them), a scratch parent it can pass, and its home (returned).
async fn prepare_isolated_build(
    state: &Shared,
    app: &str,
    slug_dir: &Path,
    user: drycc_engine::RunAs,
) -> Result<std::path::PathBuf, String> {
    let (slug, cache, homes) = (
        slug_dir.to_path_buf(),
        state.cache_dir().join(app),
        state.homes_dir(),
    );
    // Parents the build's user passes through (and cannot list).
    let passed = [state.data_dir.join("tmp"), state.fetched_buildpacks_dir()];
    let app = app.to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        crate::isolation::give_slug(&slug, user)?;
        std::fs::create_dir_all(&cache)?;
        crate::isolation::give_slug(&cache, user)?;
        for dir in passed {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        }
        drycc_engine_local::prepare_home(&homes, &app, user)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|prepared| prepared.map_err(|e| e.to_string()))
    .map_err(|e| format!("cannot prepare the build for the app's user: {e}"))
}

/// The environment of buildpack programs: the controller's `PATH` (the
/// runtimes the built-in buildpacks use), never the rest of its
/// environment (which may hold the database URL). The app's config
/// reaches buildpacks through the env dir.
///
/// Builds of apps that run as users of their own (builds included) get
/// the `PATH` of the app's processes instead, and the app's home: what a
/// build links to (a virtualenv's interpreter) must be reachable by the
/// app's user, and a runtime installed in the controller's home
/// (`/root/.pyenv`) is not.
fn build_env(app: &str, sha: &str, home: Option<&Path>) -> Vec<(String, String)> {
    let mut env = vec![
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("STACK".to_string(), "drycc-native".to_string()),
        ("SOURCE_VERSION".to_string(), sha.to_string()),
        ("DRYCC_APP".to_string(), app.to_string()),
    ];
    for name in ["PATH", "HOME", "TMPDIR"] {
        match (name, home) {
            ("PATH", Some(_)) => {
                let path = drycc_engine_local::DEFAULT_PATH.to_string();
                env.push((name.to_string(), path));
                continue;
            }
            ("HOME", Some(home)) => {
                env.push((name.to_string(), home.display().to_string()));
                continue;
            }
            // The controller's TMPDIR may be closed to the app's user;
            // without one, /tmp, every user's, is used.
            ("TMPDIR", Some(_)) => continue,
            _ => {}
        }
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    }
    env
}

/// Remove the slugs of all but the newest `DRYCC_SLUGS_KEEP` builds,
/// never the one of the release the app should run.
async fn prune_slugs(state: &Shared, app: &str) {
    let builds = match state.store.list_builds(app).await {
        Ok(builds) => builds,
        Err(error) => {
            tracing::warn!(app, %error, "Cannot list builds to remove old slugs.");
            return;
        }
    };
    let keep_count = usize::try_from(state.settings.slugs_keep).unwrap_or(usize::MAX);
    let mut keep: BTreeSet<String> = builds
        .iter()
        .take(keep_count)
        .map(deploy::slug_name)
        .collect();
    for release in [
        state.store.desired_release(app).await,
        state.store.last_good_release(app).await,
    ]
    .into_iter()
    .flatten()
    .flatten()
    {
        if let Some(build) = &release.build {
            keep.insert(deploy::slug_name(build));
        }
    }
    let candidates: Vec<String> = builds.iter().map(deploy::slug_name).collect();
    let app_dir = state.slugs_dir().join(app);
    let removed = tokio::task::spawn_blocking(move || slug::prune(&app_dir, &candidates, &keep))
        .await
        .unwrap_or_default();
    if !removed.is_empty() {
        tracing::info!(app, removed = ?removed, "Removed old slugs.");
    }
}

fn router_port(listen: &str) -> String {
    listen.rsplit(':').next().unwrap_or("8080").to_string()
}

/// The Procfile's types, `None` without a Procfile; errors point at the
/// line and column.
pub fn read_procfile(
    checkout: &Path,
    settings: &crate::settings::Settings,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let path = checkout.join("Procfile");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(_) => return Ok(None),
    };
    // A link could name any file of the controller's machine.
    if meta.file_type().is_symlink() {
        return Err("Procfile is a symbolic link: commit the file itself".into());
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let max_bytes = u64::from(settings.max_procfile_kib).saturating_mul(1024);
    if meta.len() > max_bytes {
        return Err(format!(
            "Procfile too large: {} bytes, at most {max_bytes} are accepted (DRYCC_MAX_PROCFILE_KIB)",
            meta.len()
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read Procfile: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "Procfile is not valid UTF-8".to_string())?;
    crate::limits::check_procfile(
        &text,
        settings.max_procfile_kib as usize,
        settings.max_procfile_lines as usize,
    )?;
    let parsed = drycc_procfile::parse(&text).map_err(|e| format!("Procfile error:\n{e}"))?;
    if parsed.is_empty() {
        return Err(
            "Procfile declares no process types: add a line such as `web: <command>`".into(),
        );
    }
    Ok(Some(parsed.to_map()))
}
