//! The platform's own buildpacks, compiled into the binary and written out
//! at start, so they work from `cargo run`, an installed binary and a test
//! binary alike. They use the runtimes already on the machine (python3 with
//! venv, node and npm) and download nothing when an app's dependencies are
//! all in its repository.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{BuildpackError, Result};

/// The built-in buildpacks in detection order: the first whose `bin/detect`
/// passes builds an app that names no buildpack.
pub const NAMES: &[&str] = &["nodejs", "python", "ruby", "procfile"];

macro_rules! script {
    ($name:literal, $file:literal) => {
        (
            concat!($name, "/bin/", $file),
            include_str!(concat!("../builtin/", $name, "/bin/", $file)),
        )
    };
}

const SCRIPTS: &[(&str, &str)] = &[
    script!("nodejs", "detect"),
    script!("nodejs", "compile"),
    script!("nodejs", "release"),
    script!("python", "detect"),
    script!("python", "compile"),
    script!("python", "release"),
    script!("ruby", "detect"),
    script!("ruby", "compile"),
    script!("ruby", "release"),
    script!("procfile", "detect"),
    script!("procfile", "compile"),
    script!("procfile", "release"),
];

/// Write the built-in buildpacks under `dir` (`dir/python/bin/compile`,
/// ...), replacing files whose content differs. Each file is written to a
/// temporary name and renamed, so a build running meanwhile never sees a
/// half-written script. Blocking: call it from a blocking context.
pub fn install(dir: &Path) -> Result<()> {
    for (relative, content) in SCRIPTS {
        let path = dir.join(relative);
        if std::fs::read(&path).is_ok_and(|existing| existing == content.as_bytes()) {
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(BuildpackError::io("cannot create", parent))?;
        let temp = parent.join(format!(".{}.new", crate::random_suffix()));
        std::fs::write(&temp, content).map_err(BuildpackError::io("cannot write", &temp))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
            .map_err(BuildpackError::io("cannot make executable", &temp))?;
        std::fs::rename(&temp, &path).map_err(BuildpackError::io("cannot write", &path))?;
    }
    // Readable by every user, whatever the umask: builds of apps that run
    // as users of their own run these.
    let mut dirs = vec![dir.to_path_buf()];
    for name in NAMES {
        dirs.push(dir.join(name));
        dirs.push(dir.join(name).join("bin"));
    }
    for dir in dirs {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(BuildpackError::io("cannot open to all", &dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_every_builtin_executable_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path()).unwrap();
        for name in NAMES {
            for file in ["detect", "compile", "release"] {
                let path = dir.path().join(name).join("bin").join(file);
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o111, 0o111, "{}", path.display());
            }
        }
        std::fs::write(dir.path().join("python/bin/detect"), "changed").unwrap();
        install(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("python/bin/detect")).unwrap();
        assert!(text.starts_with("#!/bin/sh"));
    }
}
