//! Which application a command works on: `-a/--app`, else the first git
//! remote pointing at `<controller>/git/<app>.git`, else the lower-cased
//! name of the current directory.

use crate::client::ApiError;
use reqwest::Url;
use std::path::{Path, PathBuf};

/// The app named by a remote URL of the form `<controller>/git/<app>.git`.
pub fn app_from_remote_url(remote: &str, controller: &str) -> Option<String> {
    let remote = Url::parse(remote.trim()).ok()?;
    let controller = Url::parse(controller).ok()?;
    if !remote.scheme().eq_ignore_ascii_case(controller.scheme())
        || remote.host_str()? != controller.host_str()?
        || remote.port_or_known_default() != controller.port_or_known_default()
    {
        return None;
    }
    let base = controller.path().trim_end_matches('/');
    let rest = remote.path().strip_prefix(base)?.trim_end_matches('/');
    let app = rest.strip_prefix("/git/")?.strip_suffix(".git")?;
    if app.is_empty() || app.contains('/') {
        return None;
    }
    Some(app.to_string())
}

/// The first remote (in configuration order) that names an app: (remote, app).
pub fn app_from_remotes(
    remotes: &[(String, String)],
    controller: &str,
) -> Option<(String, String)> {
    remotes.iter().find_map(|(remote, url)| {
        app_from_remote_url(url, controller).map(|app| (remote.clone(), app))
    })
}

/// The lower-cased name of `dir`.
pub fn app_from_dir(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_string_lossy().to_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Where the app's name came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `-a/--app`.
    Flag,
    /// The named git remote of the repository.
    Remote(String),
    /// The name of this directory.
    Directory(PathBuf),
}

/// The app of a command and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub name: String,
    pub source: Source,
}

/// Resolves the app for a command run in `dir`.
pub fn detect(explicit: Option<&str>, dir: &Path, controller: &str) -> anyhow::Result<Detected> {
    if let Some(app) = explicit {
        let app = app.trim();
        if app.is_empty() {
            anyhow::bail!("the app name given with -a/--app is empty");
        }
        return Ok(Detected {
            name: app.to_string(),
            source: Source::Flag,
        });
    }
    if let Some((remote, name)) = app_from_remotes(&crate::git::remotes(dir), controller) {
        return Ok(Detected {
            name,
            source: Source::Remote(remote),
        });
    }
    app_from_dir(dir)
        .map(|name| Detected {
            name,
            source: Source::Directory(dir.to_path_buf()),
        })
        .ok_or_else(|| anyhow::anyhow!("cannot tell which app to use: pass -a/--app <app>"))
}

/// The controller's answer when the app does not exist (Drycc's words).
const NO_APP: &str = "No App matches the given query.";

/// The app this command works on, once known, so that an error can name it.
static CURRENT: std::sync::OnceLock<Detected> = std::sync::OnceLock::new();

/// Remember the app of this command (the first one wins).
pub fn remember(detected: &Detected) {
    let _ = CURRENT.set(detected.clone());
}

/// An error of a command: "no such app" names the app and where its name
/// came from, and says how to pick another.
pub fn explain(error: anyhow::Error) -> anyhow::Error {
    match CURRENT.get() {
        Some(detected) => explain_with(error, detected),
        None => error,
    }
}

fn explain_with(error: anyhow::Error, detected: &Detected) -> anyhow::Error {
    let is_no_app = error.downcast_ref::<ApiError>().is_some_and(
        |e| matches!(e, ApiError::Status { status: 404, message } if message == NO_APP),
    );
    if !is_no_app {
        return error;
    }
    let name = &detected.name;
    let message = match &detected.source {
        Source::Flag => format!(
            "No app named {name} (given with -a). `drycc apps:list` shows the apps you can use."
        ),
        Source::Remote(remote) => format!(
            "No app named {name} (from the git remote {remote} of this repository); \
             it may have been destroyed. Name an app with -a <app>; `drycc apps:list` shows them."
        ),
        Source::Directory(dir) => format!(
            "No app named {name} (guessed from the directory name {}: no git remote here \
             points at this controller). Run the command in the app's repository or name \
             the app with -a <app>; `drycc apps:list` shows them.",
            dir.display()
        ),
    };
    anyhow::anyhow!(message)
}

/// The git remote URL of `app` on `controller`.
pub fn remote_url(controller: &str, app: &str) -> String {
    format!("{}/git/{app}.git", controller.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const C: &str = "http://127.0.0.1:8000";

    #[test]
    fn remote_urls_of_the_controller_name_the_app() {
        assert_eq!(
            app_from_remote_url("http://127.0.0.1:8000/git/foo-bar.git", C).as_deref(),
            Some("foo-bar")
        );
        assert_eq!(
            app_from_remote_url("http://alice@127.0.0.1:8000/git/foo.git/", C).as_deref(),
            Some("foo")
        );
        assert_eq!(
            app_from_remote_url("http://h/drycc/git/foo.git", "http://h/drycc/").as_deref(),
            Some("foo")
        );
        assert_eq!(
            app_from_remote_url("http://h:80/git/foo.git", "http://h").as_deref(),
            Some("foo")
        );
    }

    #[test]
    fn other_urls_do_not() {
        for url in [
            "http://127.0.0.1:9000/git/foo.git",
            "https://127.0.0.1:8000/git/foo.git",
            "http://localhost:8000/git/foo.git",
            "http://127.0.0.1:8000/foo.git",
            "http://127.0.0.1:8000/git/.git",
            "http://127.0.0.1:8000/git/a/b.git",
            "git@github.com:x/y.git",
            "ssh://git@127.0.0.1:8000/git/foo.git",
        ] {
            assert_eq!(app_from_remote_url(url, C), None, "{url}");
        }
    }

    #[test]
    fn first_matching_remote_wins() {
        let remotes = vec![
            (
                "origin".to_string(),
                "https://github.com/x/y.git".to_string(),
            ),
            ("drycc".to_string(), format!("{C}/git/one.git")),
            ("other".to_string(), format!("{C}/git/two.git")),
        ];
        assert_eq!(
            app_from_remotes(&remotes, C),
            Some(("drycc".to_string(), "one".to_string()))
        );
    }

    #[test]
    fn directory_name_is_lower_cased() {
        assert_eq!(
            app_from_dir(Path::new("/src/MyApp")).as_deref(),
            Some("myapp")
        );
        assert_eq!(app_from_dir(Path::new("/")), None);
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
            .status;
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn detects_from_a_real_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("Some-Dir");
        std::fs::create_dir(&dir).unwrap();
        // Not a repository yet: the directory name.
        assert_eq!(
            detect(None, &dir, C).unwrap(),
            Detected {
                name: "some-dir".into(),
                source: Source::Directory(dir.clone())
            }
        );
        git(&dir, &["init", "-q"]);
        assert_eq!(detect(None, &dir, C).unwrap().name, "some-dir");
        git(
            &dir,
            &["remote", "add", "origin", "https://github.com/x/y.git"],
        );
        git(
            &dir,
            &[
                "remote",
                "add",
                "drycc",
                &format!("{C}/git/steely-mainsail.git"),
            ],
        );
        assert_eq!(
            detect(None, &dir, C).unwrap(),
            Detected {
                name: "steely-mainsail".into(),
                source: Source::Remote("drycc".into())
            }
        );
        // Another controller's remote does not count.
        assert_eq!(
            detect(None, &dir, "http://127.0.0.1:9").unwrap().name,
            "some-dir"
        );
        // -a wins.
        assert_eq!(detect(Some("other"), &dir, C).unwrap().source, Source::Flag);
        assert!(detect(Some(" "), &dir, C).is_err());
    }

    #[test]
    fn no_such_app_names_the_app_and_its_source() {
        let no_app = || {
            anyhow::Error::from(ApiError::Status {
                status: 404,
                message: NO_APP.into(),
            })
        };
        let guessed = Detected {
            name: "tmp".into(),
            source: Source::Directory(PathBuf::from("/tmp")),
        };
        let text = explain_with(no_app(), &guessed).to_string();
        assert!(
            text.starts_with("No app named tmp (guessed from the directory name /tmp"),
            "{text}"
        );
        assert!(text.contains("-a <app>"), "{text}");
        let remote = Detected {
            name: "gone".into(),
            source: Source::Remote("drycc".into()),
        };
        let text = explain_with(no_app(), &remote).to_string();
        assert!(
            text.contains("No app named gone (from the git remote drycc"),
            "{text}"
        );
        // Other errors are left alone.
        let other = anyhow::Error::from(ApiError::Status {
            status: 404,
            message: "process x not found".into(),
        });
        assert_eq!(
            explain_with(other, &remote).to_string(),
            "process x not found"
        );
    }
}
