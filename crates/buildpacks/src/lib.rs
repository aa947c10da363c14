//! Buildpack builds by the Heroku buildpack API, the contract of Heroku's
//! classic stacks, Dokku's herokuish and Drycc's slug builder:
//! which buildpacks build an app (`BUILDPACK_URL`, `.buildpacks`, or
//! detection over the platform's list), fetching and caching them by URL
//! and ref, and detect / compile / release against a build directory, a
//! per-app cache directory and an env directory of the app's config.
//!
//! The build directory becomes the slug: the caller compiles in the
//! directory the processes will run in, so paths that tools bake into what
//! they install (virtualenvs, scripts' `#!` lines) stay valid.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod builtin;
mod error;
pub mod release;
mod runner;
pub mod slug;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::Rng;
use tokio::sync::mpsc;

pub use error::{BuildpackError, Result};
pub use runner::Buildpack;
pub use source::Source;

/// The config value naming the app's buildpack.
pub const BUILDPACK_URL: &str = "BUILDPACK_URL";
/// The file listing an app's buildpacks, one per line, run in order.
pub const BUILDPACKS_FILE: &str = ".buildpacks";

/// Where the buildpacks of a build come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Named by the app; each must detect, and all run in order.
    Explicit(Vec<String>),
    /// The first of the platform's buildpacks whose detect passes.
    Detect,
}

/// `BUILDPACK_URL` of the config, else the lines of `.buildpacks` (blank
/// lines and `#` comments skipped), else detection.
pub fn select(config: &BTreeMap<String, String>, build_dir: &Path) -> Result<Selection> {
    if let Some(url) = config.get(BUILDPACK_URL).filter(|u| !u.trim().is_empty()) {
        return Ok(Selection::Explicit(vec![url.trim().to_string()]));
    }
    let file = build_dir.join(BUILDPACKS_FILE);
    if file.is_file() {
        let text =
            std::fs::read_to_string(&file).map_err(BuildpackError::io("cannot read", &file))?;
        let specs: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        if !specs.is_empty() {
            return Ok(Selection::Explicit(specs));
        }
    }
    Ok(Selection::Detect)
}

/// Directories of one build.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// The app's source, compiled in place into the slug.
    pub build: PathBuf,
    /// The app's cache, kept between builds.
    pub cache: PathBuf,
    /// Scratch space of this build (the env dir goes here); removed after.
    pub work: PathBuf,
    /// Where the built-in buildpacks were installed.
    pub builtins: PathBuf,
    /// Fetched buildpacks, one directory per URL and ref.
    pub buildpacks_cache: PathBuf,
    /// The app's own user (uid, gid): the buildpacks' programs run as it
    /// (no supplementary groups, `no_new_privs`), as the app's processes
    /// will, so that what a push brings runs with no more rights than
    /// the app. `build` and `cache` must be the user's, and `builtins`
    /// and the fetched buildpacks readable by it. `None`: the caller's
    /// user.
    pub user: Option<(u32, u32)>,
}

/// What a successful build produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The buildpacks that ran, as their detect named them, in order.
    pub names: Vec<String>,
    /// The specs of the buildpacks that ran.
    pub specs: Vec<String>,
    /// Default process types of the releases (a later buildpack wins).
    pub default_process_types: BTreeMap<String, String>,
}

/// Select, fetch, detect and compile; then collect the release defaults.
/// `env` is the environment of the buildpack programs; `config` goes to
/// the env dir. Progress lines go to `output`.
pub async fn build(
    dirs: &Dirs,
    config: &BTreeMap<String, String>,
    env: &[(String, String)],
    output: &mpsc::Sender<String>,
) -> Result<Outcome> {
    let env_dir = dirs.work.join("env");
    write_env_dir(&env_dir, config).await?;
    if let Some(user) = dirs.user {
        give_env_dir(&dirs.work, &env_dir, user)?;
    }
    let result = run_build(dirs, &env_dir, config, env, output).await;
    let _ = tokio::fs::remove_dir_all(&dirs.work).await;
    result
}

async fn run_build(
    dirs: &Dirs,
    env_dir: &Path,
    config: &BTreeMap<String, String>,
    env: &[(String, String)],
    output: &mpsc::Sender<String>,
) -> Result<Outcome> {
    tokio::fs::create_dir_all(&dirs.cache)
        .await
        .map_err(BuildpackError::io("cannot create", &dirs.cache))?;
    let selected = {
        let (config, build) = (config.clone(), dirs.build.clone());
        tokio::task::spawn_blocking(move || select(&config, &build))
            .await
            .map_err(|e| BuildpackError::Io {
                context: "cannot read",
                path: dirs.build.join(BUILDPACKS_FILE),
                source: std::io::Error::other(e),
            })??
    };
    let mut chosen: Vec<(Buildpack, String)> = Vec::new();
    match selected {
        Selection::Explicit(specs) => {
            for spec in specs {
                let pack = fetch(&spec, dirs, output).await?;
                let name = pack
                    .detect(&dirs.build, env)
                    .await?
                    .ok_or_else(|| BuildpackError::NotDetected(spec.clone()))?;
                chosen.push((pack, name));
            }
        }
        Selection::Detect => {
            for spec in builtin::NAMES {
                let pack = fetch(spec, dirs, output).await?;
                if let Some(name) = pack.detect(&dirs.build, env).await? {
                    chosen.push((pack, name));
                    break;
                }
            }
            if chosen.is_empty() {
                return Err(BuildpackError::NoneDetected(builtin::NAMES.join(", ")));
            }
        }
    }
    let mut outcome = Outcome {
        names: Vec::new(),
        specs: Vec::new(),
        default_process_types: BTreeMap::new(),
    };
    for (pack, name) in &chosen {
        let _ = output.send(format!("-----> {name} app detected")).await;
        pack.compile(name, (&dirs.build, &dirs.cache, env_dir), env, output)
            .await?;
        let defaults = pack.release(name, &dirs.build, env).await?;
        outcome.default_process_types.extend(defaults);
        outcome.names.push(name.clone());
        outcome.specs.push(pack.spec.clone());
    }
    Ok(outcome)
}

async fn fetch(spec: &str, dirs: &Dirs, output: &mpsc::Sender<String>) -> Result<Buildpack> {
    let source = Source::parse(spec)?;
    if matches!(source, Source::Git { .. } | Source::Archive { .. })
        && !dirs.buildpacks_cache.join(source::cache_key(spec)).is_dir()
    {
        let _ = output
            .send(format!("-----> Fetching buildpack {spec}"))
            .await;
    }
    let dir = source
        .fetch(spec, &dirs.builtins, &dirs.buildpacks_cache)
        .await?;
    if dirs.user.is_some() && matches!(source, Source::Git { .. } | Source::Archive { .. }) {
        let open = dir.clone();
        tokio::task::spawn_blocking(move || open_to_all(&open))
            .await
            .map_err(std::io::Error::other)
            .and_then(|opened| opened)
            .map_err(BuildpackError::io("cannot open to the app's user", &dir))?;
    }
    Ok(Buildpack {
        spec: spec.to_string(),
        dir,
        user: dirs.user,
    })
}

/// One file per config value, named by the variable (Heroku's ENV_DIR).
async fn write_env_dir(dir: &Path, config: &BTreeMap<String, String>) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(BuildpackError::io("cannot create", dir))?;
    for (name, value) in config {
        // A name with a path separator cannot be a file name (nor a
        // variable); config validation refuses such names anyway.
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            continue;
        }
        let path = dir.join(name);
        tokio::fs::write(&path, value)
            .await
            .map_err(BuildpackError::io("cannot write", &path))?;
    }
    Ok(())
}

/// The scratch directory and the env dir (flat: one file per variable)
/// to the build's user, who must read them.
fn give_env_dir(work: &Path, env_dir: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    let give = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(BuildpackError::io("cannot give to the app's user", path))
    };
    let entries = std::fs::read_dir(env_dir).map_err(BuildpackError::io("cannot read", env_dir))?;
    for entry in entries {
        let entry = entry.map_err(BuildpackError::io("cannot read", env_dir))?;
        give(&entry.path())?;
    }
    give(env_dir)?;
    give(work)
}

/// What a fetched buildpack holds, readable (and its programs runnable) by
/// every user: builds of apps that run as users of their own use it.
fn open_to_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let wanted = if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
            mode | 0o755
        } else if mode & 0o100 != 0 {
            mode | 0o755
        } else {
            mode | 0o644
        };
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}

/// A short random name part for temporary files.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}
