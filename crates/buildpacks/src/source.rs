//! Where a buildpack comes from (a built-in name, a local directory, a git
//! URL with an optional `#ref`, or an archive URL) and fetching it once
//! into a cache keyed by URL and ref.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::error::{BuildpackError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// One of the platform's buildpacks, by name (`python`).
    Builtin(String),
    /// A directory on the controller's machine, used in place.
    Local(PathBuf),
    /// A git repository; `reference` is a branch, tag or commit.
    Git {
        url: String,
        reference: Option<String>,
    },
    /// A `.tgz`, `.tar.gz` or `.tar` archive fetched with curl.
    Archive { url: String },
}

const ARCHIVE_SUFFIXES: &[&str] = &[".tgz", ".tar.gz", ".tar"];
const GIT_SCHEMES: &[&str] = &["http://", "https://", "file://", "git://", "ssh://"];

impl Source {
    /// Parse a buildpack as users write it (`BUILDPACK_URL`, `.buildpacks`).
    pub fn parse(spec: &str) -> Result<Source> {
        let spec = spec.trim();
        let invalid = |reason: &str| BuildpackError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec.is_empty() {
            return Err(invalid("it is empty"));
        }
        if spec.starts_with('-') || spec.chars().any(char::is_whitespace) {
            return Err(invalid("it may not start with '-' or contain blanks"));
        }
        if spec.starts_with('/') {
            return Ok(Source::Local(PathBuf::from(spec)));
        }
        if spec
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Ok(Source::Builtin(spec.to_string()));
        }
        let (url, reference) = match spec.split_once('#') {
            Some((url, reference)) => (url, Some(reference)),
            None => (spec, None),
        };
        if let Some(reference) = reference {
            if reference.is_empty() || reference.starts_with('-') {
                return Err(invalid("the ref after '#' must be a branch, tag or commit"));
            }
        }
        let is_git_url = GIT_SCHEMES.iter().any(|s| url.starts_with(s))
            || (url.starts_with("git@") && url.contains(':'));
        if !is_git_url {
            return Err(invalid(
                "use a built-in name, an absolute directory, a git URL (http, https, file, git, ssh) or an archive URL",
            ));
        }
        if ARCHIVE_SUFFIXES.iter().any(|s| url.ends_with(s)) {
            if reference.is_some() {
                return Err(invalid("an archive URL takes no #ref"));
            }
            return Ok(Source::Archive {
                url: url.to_string(),
            });
        }
        Ok(Source::Git {
            url: url.to_string(),
            reference: reference.map(str::to_string),
        })
    }

    /// The directory holding the buildpack's `bin/`, fetching it into
    /// `cache` (one directory per URL and ref) the first time.
    pub async fn fetch(&self, spec: &str, builtins: &Path, cache: &Path) -> Result<PathBuf> {
        let dir = match self {
            Source::Builtin(name) => {
                let dir = builtins.join(name);
                if !dir.is_dir() {
                    return Err(BuildpackError::UnknownBuiltin(
                        name.clone(),
                        crate::builtin::NAMES.join(", "),
                    ));
                }
                dir
            }
            Source::Local(dir) => dir.clone(),
            Source::Git { .. } | Source::Archive { .. } => {
                let target = cache.join(cache_key(spec));
                if !target.is_dir() {
                    self.download(spec, cache, &target).await?;
                }
                target
            }
        };
        for (file, missing) in [("bin/detect", "detect"), ("bin/compile", "compile")] {
            if !dir.join(file).is_file() {
                return Err(BuildpackError::NotABuildpack {
                    spec: spec.to_string(),
                    missing,
                });
            }
        }
        Ok(dir)
    }

    /// Fetch into a temporary sibling of `target`, then rename, so that a
    /// half-fetched buildpack is never used and concurrent fetches agree.
    async fn download(&self, spec: &str, cache: &Path, target: &Path) -> Result<()> {
        tokio::fs::create_dir_all(cache)
            .await
            .map_err(BuildpackError::io("cannot create", cache))?;
        let temp = cache.join(format!(".fetch-{}", crate::random_suffix()));
        let fetched = match self {
            Source::Git { url, reference } => fetch_git(url, reference.as_deref(), &temp).await,
            Source::Archive { url } => fetch_archive(url, &temp).await,
            Source::Builtin(_) | Source::Local(_) => Ok(temp.clone()),
        };
        let root = match fetched {
            Ok(root) => root,
            Err(reason) => {
                let _ = tokio::fs::remove_dir_all(&temp).await;
                return Err(BuildpackError::Fetch {
                    spec: spec.to_string(),
                    reason,
                });
            }
        };
        let renamed = tokio::fs::rename(&root, target).await;
        let _ = tokio::fs::remove_dir_all(&temp).await;
        match renamed {
            Ok(()) => Ok(()),
            // Another build fetched the same buildpack first.
            Err(_) if target.is_dir() => Ok(()),
            Err(error) => Err(BuildpackError::io("cannot store the buildpack in", target)(
                error,
            )),
        }
    }
}

/// The cache directory name of a buildpack URL and ref.
pub fn cache_key(spec: &str) -> String {
    hex::encode(&Sha256::digest(spec.trim().as_bytes())[..12])
}

async fn run(command: &mut Command) -> std::result::Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.trim().lines().last().unwrap_or("failed").to_string())
    }
}

async fn fetch_git(
    url: &str,
    reference: Option<&str>,
    temp: &Path,
) -> std::result::Result<PathBuf, String> {
    run(Command::new("git")
        .args(["clone", "--quiet", "--", url])
        .arg(temp))
    .await?;
    if let Some(reference) = reference {
        // A tag or commit first, then a branch of the remote.
        let direct = run(Command::new("git")
            .arg("-C")
            .arg(temp)
            .args(["checkout", "--quiet", "--detach", reference]))
        .await;
        if direct.is_err() {
            run(Command::new("git").arg("-C").arg(temp).args([
                "checkout",
                "--quiet",
                "--detach",
                &format!("origin/{reference}"),
            ]))
            .await
            .map_err(|_| format!("no branch, tag or commit named {reference}"))?;
        }
    }
    Ok(temp.to_path_buf())
}

async fn fetch_archive(url: &str, temp: &Path) -> std::result::Result<PathBuf, String> {
    let unpacked = temp.join("unpacked");
    tokio::fs::create_dir_all(&unpacked)
        .await
        .map_err(|e| e.to_string())?;
    let archive = temp.join("archive");
    run(Command::new("curl")
        .args(["-fsSL", "--proto", "=http,https,file", "-o"])
        .arg(&archive)
        .arg("--")
        .arg(url))
    .await?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked))
    .await?;
    // Archives of a repository usually wrap everything in one directory.
    let mut root = unpacked.clone();
    if !root.join("bin").is_dir() {
        let entries: Vec<PathBuf> = std::fs::read_dir(&unpacked)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if let [only] = entries.as_slice() {
            if only.is_dir() {
                root = only.clone();
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            Source::parse("python").unwrap(),
            Source::Builtin("python".into())
        );
        assert_eq!(
            Source::parse(" /opt/bp ").unwrap(),
            Source::Local("/opt/bp".into())
        );
        assert_eq!(
            Source::parse("https://github.com/heroku/heroku-buildpack-python.git#v200").unwrap(),
            Source::Git {
                url: "https://github.com/heroku/heroku-buildpack-python.git".into(),
                reference: Some("v200".into())
            }
        );
        assert_eq!(
            Source::parse("file:///tmp/bp").unwrap(),
            Source::Git {
                url: "file:///tmp/bp".into(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse("https://example.com/bp.tgz").unwrap(),
            Source::Archive {
                url: "https://example.com/bp.tgz".into()
            }
        );
        assert!(matches!(
            Source::parse("git@github.com:me/bp.git").unwrap(),
            Source::Git { .. }
        ));
    }

    #[test]
    fn refuses_what_it_cannot_fetch() {
        for bad in [
            "",
            "-upload-pack=x",
            "ftp://x/y",
            "https://x/y#",
            "https://x/y#-x",
            "a b",
            "https://x/y.tgz#v1",
            "Relative/Dir",
        ] {
            let error = Source::parse(bad).unwrap_err();
            assert!(
                matches!(error, BuildpackError::InvalidSpec { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn cache_keys_differ_by_ref() {
        assert_ne!(cache_key("file:///a#v1"), cache_key("file:///a#v2"));
        assert_eq!(cache_key("file:///a"), cache_key(" file:///a "));
    }
}
