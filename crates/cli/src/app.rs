//! Which application a command works on: `-a/--app`, else the first git
//! remote pointing at `<controller>/git/<app>.git`, else the lower-cased
//! name of the current directory.

use reqwest::Url;
use std::path::Path;

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

/// The first remote (in configuration order) that names an app.
pub fn app_from_remotes(remotes: &[(String, String)], controller: &str) -> Option<String> {
    remotes
        .iter()
        .find_map(|(_, url)| app_from_remote_url(url, controller))
}

/// The lower-cased name of `dir`.
pub fn app_from_dir(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_string_lossy().to_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Resolves the app for a command run in `dir`.
pub fn detect(explicit: Option<&str>, dir: &Path, controller: &str) -> anyhow::Result<String> {
    if let Some(app) = explicit {
        let app = app.trim();
        if app.is_empty() {
            anyhow::bail!("the app name given with -a/--app is empty");
        }
        return Ok(app.to_string());
    }
    if let Some(app) = app_from_remotes(&crate::git::remotes(dir), controller) {
        return Ok(app);
    }
    app_from_dir(dir)
        .ok_or_else(|| anyhow::anyhow!("cannot tell which app to use: pass -a/--app <app>"))
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
        assert_eq!(app_from_remotes(&remotes, C).as_deref(), Some("one"));
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
        assert_eq!(detect(None, &dir, C).unwrap(), "some-dir");
        git(&dir, &["init", "-q"]);
        assert_eq!(detect(None, &dir, C).unwrap(), "some-dir");
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
        assert_eq!(detect(None, &dir, C).unwrap(), "steely-mainsail");
        // Another controller's remote does not count.
        assert_eq!(
            detect(None, &dir, "http://127.0.0.1:9").unwrap(),
            "some-dir"
        );
        // -a wins.
        assert_eq!(detect(Some("other"), &dir, C).unwrap(), "other");
        assert!(detect(Some(" "), &dir, C).is_err());
    }
}
