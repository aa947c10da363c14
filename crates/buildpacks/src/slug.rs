//! Slugs: the compiled directory of one build, immutable once its build
//! succeeded and kept with its release (a rollback runs it again), and how
//! processes start in one (`.profile.d/*.sh` sourced first).

use std::collections::BTreeSet;
use std::path::Path;

/// The directory name of a new slug of commit `sha`: unique per build, so a
/// second build of the same commit never touches the first one's slug.
pub fn new_name(sha: &str) -> String {
    let short = &crate::random_suffix()[..8];
    format!("{sha}-{short}")
}

/// Bytes used by the files of a directory tree (symlinks not followed).
/// Blocking.
pub fn size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The directory of `.profile.d` scripts, sourced before each process.
pub const PROFILE_D: &str = ".profile.d";

/// A command that first sources every `.profile.d/*.sh` of the working
/// directory (Heroku's convention), then runs `command`: with `exec` when
/// it is one simple command of plain words, so the process is the app and
/// not a shell; as written otherwise (shell syntax keeps its meaning).
pub fn with_profile(command: &str) -> String {
    let source = format!("for f in {PROFILE_D}/*.sh; do [ -r \"$f\" ] && . \"./$f\"; done");
    let plain = command
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " -_./:,+@%=".contains(c))
        && command
            .split_whitespace()
            .next()
            .is_some_and(|first| !first.contains('=') && first != "exec");
    if plain {
        format!("{source}; exec {command}")
    } else {
        format!("{source}\n{command}")
    }
}

/// Remove the slugs named in `candidates` that are not in `keep`, under
/// `app_dir`. Only names of recorded builds are ever candidates, so a slug
/// being compiled right now (not recorded yet) is never removed. Returns
/// the names removed. Blocking.
pub fn prune(app_dir: &Path, candidates: &[String], keep: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    for name in candidates {
        if keep.contains(name) || name.is_empty() || name.contains('/') || name.starts_with('.') {
            continue;
        }
        let dir = app_dir.join(name);
        if dir.is_dir() && std::fs::remove_dir_all(&dir).is_ok() {
            removed.push(name.clone());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_build() {
        let (a, b) = (new_name("abc"), new_name("abc"));
        assert!(a.starts_with("abc-") && b.starts_with("abc-"));
        assert_ne!(a, b);
    }

    #[test]
    fn plain_commands_are_execd_after_the_profile() {
        let wrapped = with_profile("python3 app.py --port=5000");
        assert!(
            wrapped.ends_with("; exec python3 app.py --port=5000"),
            "{wrapped}"
        );
        assert!(wrapped.starts_with("for f in .profile.d/*.sh;"));
        let shell = with_profile("echo $PORT && sleep 1");
        assert!(shell.ends_with("\necho $PORT && sleep 1"), "{shell}");
        assert!(with_profile("A=1 run").ends_with("\nA=1 run"));
    }

    #[test]
    fn the_profile_is_sourced_in_the_process_shell() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(PROFILE_D)).unwrap();
        std::fs::write(dir.path().join(".profile.d/a.sh"), "export GREETING=hi\n").unwrap();
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(with_profile("printenv GREETING"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    }

    #[test]
    fn sizes_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["old", "kept", "building"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("f"), vec![0u8; 2048]).unwrap();
        }
        assert_eq!(size(&dir.path().join("old")), 2048);
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(10), "10 B");
        let removed = prune(
            dir.path(),
            &["old".into(), "kept".into(), "missing".into()],
            &BTreeSet::from(["kept".to_string()]),
        );
        assert_eq!(removed, vec!["old".to_string()]);
        assert!(dir.path().join("kept").is_dir());
        assert!(dir.path().join("building").is_dir());
    }
}
