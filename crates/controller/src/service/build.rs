//! A push's build, as the pre-receive hook asks for it (through
//! `http::git::build`): move the pushed checkout into a new slug, run the app's buildpacks in it
//! (`drycc_buildpacks`), take the process types from the Procfile over the
//! buildpacks' defaults, create build + release, roll it out, and stream
//! progress lines back. A failed build removes its slug and changes
//! nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use drycc_buildpacks::{slug, Dirs};
use drycc_model::scale::structure_after_deploy;
use drycc_store::{BuildRef, NewBuild, NewConfig};
use tokio::sync::mpsc;

use super::rollout::{self, ReleaseChange};
use super::{DeployError, Service};
use crate::desired;

/// A push to build: the app, who pushed, and the commit.
#[derive(serde::Deserialize)]
pub struct BuildRequest {
    pub app: String,
    pub user: String,
    pub sha: String,
}

/// Why a push was not built and released; each is shown in the push's
/// output, and the push is refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// What was pushed is wrong (its Procfile, no process types, a
    /// Dockerfile image with nothing to run): the pusher must fix it.
    #[error("{0}")]
    Pushed(String),
    /// The controller lacks what this build needs (a Docker engine, a
    /// registry, a slug image): its operator must set it up.
    #[error("{0}")]
    Setup(String),
    #[error("app {0} does not exist")]
    NoApp(String),
    #[error("the checkout of {0} is missing")]
    NoCheckout(String),
    #[error("cannot prepare the build: {0}")]
    Prepare(#[source] std::io::Error),
    #[error("cannot prepare the build for the app's user: {0}")]
    PrepareUser(#[source] std::io::Error),
    /// A buildpack failed to detect, fetch or compile.
    #[error(transparent)]
    Buildpacks(#[from] drycc_buildpacks::BuildpackError),
    /// The image was not built or pushed.
    #[error(transparent)]
    Image(#[from] drycc_images::ImageError),
    #[error("cannot read the built image: {0}")]
    ReadImage(#[source] drycc_images::ImageError),
    #[error("the state store failed: {0}")]
    Store(#[from] drycc_store::StoreError),
    /// Released, but the release did not roll out.
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

pub async fn run(
    svc: &Service,
    request: &BuildRequest,
    progress: &mpsc::Sender<String>,
) -> Result<(), BuildError> {
    let checkout = svc.paths.checkouts().join(&request.app).join(&request.sha);
    if !tokio::fs::metadata(&checkout)
        .await
        .is_ok_and(|meta| meta.is_dir())
    {
        return Err(BuildError::NoCheckout(request.sha.clone()));
    }
    let dockerfile = tokio::fs::metadata(checkout.join("Dockerfile"))
        .await
        .is_ok_and(|meta| meta.is_file());
    let app = svc
        .store
        .get_app(&request.app)
        .await?
        .ok_or_else(|| BuildError::NoApp(request.app.clone()))?;
    // The config of the release the app should run; a failed release's
    // config is not carried forward.
    let latest = match svc.store.desired_release(&app.id).await? {
        Some(release) => release,
        None => svc.store.latest_release(&app.id).await?,
    };
    if dockerfile {
        let built = dockerfile_build(svc, request, &checkout, progress).await;
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        let build = built?;
        return release_build(svc, &app, request, build, &latest, progress).await;
    }
    // The checkout becomes the slug: compiled where its processes will run,
    // in a directory of its own, so the running release's slug is never
    // touched and a failed build leaves nothing behind.
    let slug = slug::new_name(&request.sha);
    let slug_dir = svc.paths.slugs().join(&app.id).join(&slug);
    if let Err(error) = move_checkout(&checkout, &slug_dir).await {
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        return Err(BuildError::Prepare(error));
    }
    let compiled = compile(
        svc,
        &app.id,
        svc.run_as(&app),
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
    if let Some(registry) = cluster_registry(svc)? {
        let published =
            publish_slug(svc, &app.id, &registry, &slug_dir, &mut build, progress).await;
        // The image is the slug from now on: the cluster pulls it.
        let _ = tokio::fs::remove_dir_all(&slug_dir).await;
        published?;
    }
    release_build(svc, &app, request, build, &latest, progress).await
}

/// Where images for a cluster go: `DRYCC_REGISTRY` with
/// `DRYCC_ENGINE=kubernetes` (whose nodes pull every image), else `None`
/// (images stay on this machine's Docker engine, slugs in their directory).
fn cluster_registry(svc: &Service) -> Result<Option<String>, BuildError> {
    if svc.settings.engine != crate::settings::EngineKind::Kubernetes {
        return Ok(None);
    }
    match svc.settings.registry.as_deref().map(|r| r.trim_end_matches('/')) {
        Some(registry) if !registry.is_empty() => Ok(Some(registry.to_string())),
        _ => Err(BuildError::Setup("apps built here run on the cluster from a registry: set DRYCC_REGISTRY (host[:port][/prefix]) on the controller and push again".into())),
    }
}

/// Make the compiled slug an image for the cluster (`DRYCC_SLUG_IMAGE`
/// with the slug at /app), push it to the registry, and make `build` run
/// it.
async fn publish_slug(
    svc: &Service,
    app: &str,
    registry: &str,
    slug_dir: &Path,
    build: &mut NewBuild,
    progress: &mpsc::Sender<String>,
) -> Result<(), BuildError> {
    let Some(docker) = &svc.images.docker else {
        return Err(BuildError::Setup("source apps run on the cluster as slug images, built by a Docker engine, and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one), restart the controller and push again".into()));
    };
    let Some(base) = svc.settings.slug_image.as_deref().filter(|b| !b.is_empty()) else {
        return Err(BuildError::Setup("source apps run on the cluster in containers of DRYCC_SLUG_IMAGE: set it on the controller to an image with /bin/sh and the runtimes your apps need".into()));
    };
    let tag = format!("{registry}/{app}:{}", build.image);
    let _ = progress
        .send(format!("-----> Publishing the slug as {tag}"))
        .await;
    drycc_images::build_slug_image(docker, base, slug_dir.to_path_buf(), &tag, |_| {}).await?;
    drycc_images::push_image(docker, &tag, |_| {}).await?;
    let record = desired::ImageRecord {
        entrypoint: vec!["/bin/sh".to_string(), "-c".to_string()],
        cmd: Vec::new(),
        exposed_ports: Vec::new(),
        working_dir: Some(drycc_images::SLUG_DIR.to_string()),
        digest: None,
        web_is_cmd: false,
        slug: true,
    };
    build.image = tag;
    // An ImageRecord is plain strings and numbers: it always serialises.
    build.image_config = serde_json::to_value(&record).ok();
    Ok(())
}

/// Release a new build with the config of `latest` and roll it out.
async fn release_build(
    svc: &Service,
    app: &drycc_store::App,
    request: &BuildRequest,
    build: NewBuild,
    latest: &drycc_store::Release,
    progress: &mpsc::Sender<String>,
) -> Result<(), BuildError> {
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
    let released = rollout::release(svc, &app.id, change, Some(progress)).await;
    prune_slugs(svc, &app.id).await;
    match released {
        Ok(release) => {
            say(format!("-----> Launching... done, v{}", release.version)).await;
            say(String::new()).await;
            say(format!(
                "       {} deployed; try: curl http://{}.{}:{}/",
                app.id,
                app.id,
                svc.settings.domain,
                router_port(&svc.settings.router_listen)
            ))
            .await;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Build the pushed Dockerfile app's image on the Docker engine, its
/// output shown in the push, and make its build row. Nothing is written
/// before the image exists.
async fn dockerfile_build(
    svc: &Service,
    request: &BuildRequest,
    checkout: &Path,
    progress: &mpsc::Sender<String>,
) -> Result<NewBuild, BuildError> {
    let Some(docker) = &svc.images.docker else {
        return Err(BuildError::Setup("Dockerfile apps are built and run by a Docker engine and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one), restart the controller and push again".into()));
    };
    let dockerfile = tokio::fs::read_to_string(checkout.join("Dockerfile"))
        .await
        .map_err(|e| BuildError::Pushed(format!("cannot read the Dockerfile: {e}")))?;
    let procfile = procfile_of(checkout, &svc.settings).await?;
    let short = &request.sha[..request.sha.len().min(12)];
    let registry = cluster_registry(svc)?;
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
    built?;
    if registry.is_some() {
        let _ = progress.send(format!("-----> Pushing {tag}")).await;
        drycc_images::push_image(docker, &tag, |_| {}).await?;
    }
    let image = svc
        .images
        .inspector
        .inspect(&tag, None)
        .await
        .map_err(BuildError::ReadImage)?;
    super::image_build::new_build(&tag, &image, procfile, request.sha.clone(), dockerfile)
        .map_err(BuildError::Pushed)
}

/// The repository of images built from pushed Dockerfiles (local to the
/// Docker engine): `<this>/<app>:git-<commit>`.
const IMAGE_REPOSITORY: &str = "drycc-apps";

/// At start, before the API serves (so no build runs): remove what builds
/// interrupted by a stop or a crash left behind: checkouts, scratch
/// directories, and slugs that no build row names.
pub async fn sweep(svc: &Service) {
    let apps = match svc.store.list_apps().await {
        Ok(apps) => apps,
        Err(error) => {
            tracing::warn!(%error, "Cannot list apps to remove unfinished builds.");
            return;
        }
    };
    let mut recorded: Vec<(std::path::PathBuf, BTreeSet<String>)> = Vec::new();
    for app in apps {
        match svc.store.list_builds(&app.id).await {
            Ok(builds) => recorded.push((
                svc.paths.slugs().join(&app.id),
                builds.iter().map(desired::slug_name).collect(),
            )),
            Err(error) => {
                tracing::warn!(app = %app.id, %error, "Cannot list builds to remove unfinished ones.");
                return;
            }
        }
    }
    let scratch = [svc.paths.checkouts(), svc.paths.tmp()];
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
    svc: &Service,
    app: &str,
    user: Option<drycc_engine::RunAs>,
    request: &BuildRequest,
    slug_dir: &Path,
    config: &BTreeMap<String, String>,
    progress: &mpsc::Sender<String>,
) -> Result<(BTreeMap<String, String>, String), BuildError> {
    // A bad Procfile fails the push before anything is installed.
    let procfile = procfile_of(slug_dir, &svc.settings).await?;
    let home = match user {
        Some(user) => Some(prepare_isolated_build(svc, app, slug_dir, user).await?),
        None => None,
    };
    let dirs = Dirs {
        build: slug_dir.to_path_buf(),
        cache: svc.paths.cache().join(app),
        work: svc
            .paths
            .tmp()
            .join(format!("build-{app}-{}", uuid::Uuid::new_v4().simple())),
        builtins: svc.paths.buildpacks(),
        buildpacks_cache: svc.paths.fetched_buildpacks(),
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
    let outcome = outcome?;
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
        return Err(BuildError::Pushed("no process types: add a Procfile with a line such as `web: <command that listens on $PORT>`".into()));
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
    svc: &Service,
    app: &str,
    slug_dir: &Path,
    user: drycc_engine::RunAs,
) -> Result<std::path::PathBuf, BuildError> {
    let (slug, cache, homes) = (
        slug_dir.to_path_buf(),
        svc.paths.cache().join(app),
        svc.paths.homes(),
    );
    // Parents the build's user passes through (and cannot list).
    let passed = [svc.paths.tmp(), svc.paths.fetched_buildpacks()];
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
    .map_err(std::io::Error::other)
    .and_then(|prepared| prepared)
    .map_err(BuildError::PrepareUser)
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
async fn prune_slugs(svc: &Service, app: &str) {
    let builds = match svc.store.list_builds(app).await {
        Ok(builds) => builds,
        Err(error) => {
            tracing::warn!(app, %error, "Cannot list builds to remove old slugs.");
            return;
        }
    };
    let keep_count = usize::try_from(svc.settings.slugs_keep).unwrap_or(usize::MAX);
    let mut keep: BTreeSet<String> = builds
        .iter()
        .take(keep_count)
        .map(desired::slug_name)
        .collect();
    for release in [
        svc.store.desired_release(app).await,
        svc.store.last_good_release(app).await,
    ]
    .into_iter()
    .flatten()
    .flatten()
    {
        if let Some(build) = &release.build {
            keep.insert(desired::slug_name(build));
        }
    }
    let candidates: Vec<String> = builds.iter().map(desired::slug_name).collect();
    let app_dir = svc.paths.slugs().join(app);
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

/// [`read_procfile`] on the blocking pool.
async fn procfile_of(
    dir: &Path,
    settings: &crate::settings::Settings,
) -> Result<Option<BTreeMap<String, String>>, BuildError> {
    let (dir, settings) = (dir.to_path_buf(), settings.clone());
    tokio::task::spawn_blocking(move || read_procfile(&dir, &settings))
        .await
        .map_err(|error| BuildError::Prepare(std::io::Error::other(error)))?
        .map_err(BuildError::Pushed)
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
    super::limits::check_procfile(
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
