//! Apps that cannot reach each other or the platform. A controller that
//! runs as root runs each app's processes as the app's own user (its uid
//! from the store, see `drycc_engine::RunAs`), and keeps its data directory
//! to itself:
//!
//! - the data directory is `0711`: nobody else can list it, and only the
//!   entries below that are meant for apps can be reached through it;
//! - `slugs`, `homes`, `cache` and `tmp` are `0711` too, and so is each
//!   `slugs/<app>`; each slug in it, each `homes/<app>` and `cache/<app>`
//!   and each build's scratch directory in `tmp` is `0700` and owned by the
//!   app's user; `buildpacks` and `buildpacks-fetched` are `0711` with
//!   buildpacks readable by all (builds run as the app's user);
//! - everything else in it (the SQLite database, secrets, repositories,
//!   build caches, logs) is for the controller alone (`0700`/`0600`):
//!   what was there before is made so at start, and what the controller
//!   (or git, or a build) creates later is, by its umask (`0077`; app
//!   processes get the usual `0022` back).
//!
//! A controller that is not root cannot switch users: apps then share its
//! user, and it says so at start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use drycc_engine::RunAs;

/// The entries of the data directory that apps (and their builds) reach,
/// each through its own `0700` subdirectory (the built-in and fetched
/// buildpacks are open to all).
pub const APP_FACING: &[&str] = &[
    "slugs",
    "homes",
    "cache",
    "tmp",
    "buildpacks",
    "buildpacks-fetched",
];

/// What the controller creates from now on is its own alone (see the
/// module docs).
pub fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Whether apps can run as users of their own: only root can switch.
pub fn enabled() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The user an app's processes run as, when isolation is on.
pub fn run_as(enabled: bool, app: &drycc_store::App) -> Option<RunAs> {
    if !enabled {
        return None;
    }
    app.uid.map(|uid| RunAs { uid, gid: uid })
}

/// Parse `DRYCC_APP_UID_RANGE` (`first-last`).
pub fn parse_uid_range(text: &str) -> Result<std::ops::RangeInclusive<u32>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not a range such as 200000-299999"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not a user id"))
    };
    let (first, last) = (parse(first)?, parse(last)?);
    // Ids of accounts (root, daemons, people) stay out of reach.
    if first < 1000 || last < first || last == u32::MAX {
        return Err(format!(
            "{text:?}: expected first-last with 1000 <= first <= last < 4294967295"
        ));
    }
    Ok(first..=last)
}

/// Make the data directory the controller's (see the module docs), and
/// check that app users can reach their directories through its parents.
pub fn protect_data_dir(data_dir: &Path, enabled: bool) -> anyhow::Result<()> {
    if enabled {
        reachable_by_others(data_dir)?;
    }
    set_mode(data_dir, 0o711)?;
    // The others are made when first needed (and removed at start when
    // they hold only scratch).
    for name in ["slugs", "homes"] {
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let entries = std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot read {}", data_dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let app_facing = APP_FACING.iter().any(|n| entry.file_name() == *n);
        let mode = if app_facing && meta.is_dir() {
            0o711
        } else {
            // Nothing for group or others.
            meta.mode() & 0o700
        };
        if meta.mode() & 0o777 != mode {
            set_mode(&path, mode)?;
        }
    }
    Ok(())
}

/// Every parent of `dir` must let others through (`o+x`), or an app's
/// user could not reach its checkout: a data directory under `/root`
/// (`0700`) cannot serve isolated apps.
fn reachable_by_others(dir: &Path) -> anyhow::Result<()> {
    let absolute =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    for parent in absolute.ancestors().skip(1) {
        let meta = std::fs::metadata(parent)
            .with_context(|| format!("cannot read {}", parent.display()))?;
        if meta.mode() & 0o001 == 0 {
            anyhow::bail!(
                "apps run as users of their own and must reach their checkouts under the data directory {}, but {} (mode {:o}) lets no other user through: choose a data directory elsewhere (DRYCC_DATA_DIR, e.g. /var/lib/drycc) or allow others to traverse it (chmod o+x {})",
                dir.display(),
                parent.display(),
                meta.mode() & 0o7777,
                parent.display()
            );
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {} to {mode:o}", path.display()))
}

/// Give a slug (a build's directory, `slugs/<app>/<slug>`) and everything
/// in it to the app's user, the top `0700`. `slugs/<app>` itself stays the
/// controller's (`0711`): an app that owned it could swap a slug for a
/// symbolic link while the controller works in it.
///
/// The top is closed first and given last, and every directory is given
/// after what it holds, never following a link: by the time the app can
/// change anything in a directory, nothing of it is looked at again.
pub fn give_slug(slug: &Path, user: RunAs) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(slug) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(());
    }
    if let Some(parent) = slug.parent() {
        let parent_meta = std::fs::symlink_metadata(parent)?;
        if parent_meta.uid() != nix::unistd::geteuid().as_raw()
            || parent_meta.mode() & 0o777 != 0o711
        {
            std::os::unix::fs::lchown(parent, Some(nix::unistd::geteuid().as_raw()), None)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
        }
    }
    if meta.uid() == user.uid && meta.gid() == user.gid && meta.mode() & 0o777 == 0o700 {
        return Ok(());
    }
    std::fs::set_permissions(slug, std::fs::Permissions::from_mode(0o700))?;
    chown_tree(slug, user)
}

/// `chown -R`, children before their directory, never following a link.
fn chown_tree(dir: &Path, user: RunAs) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            chown_tree(&path, user)?;
        } else {
            std::os::unix::fs::lchown(&path, Some(user.uid), Some(user.gid))?;
        }
    }
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))
}

/// Give every slug of an app to its user (slugs built before apps had
/// users were the controller's).
pub fn give_slugs(app_dir: &Path, user: RunAs) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(app_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        give_slug(&entry?.path(), user)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges() {
        assert_eq!(parse_uid_range("200000-299999"), Ok(200_000..=299_999));
        assert_eq!(parse_uid_range(" 5000 - 5000 "), Ok(5000..=5000));
        for bad in [
            "",
            "200000",
            "0-10",
            "999-2000",
            "300-200",
            "a-b",
            "1000-4294967295",
        ] {
            assert!(parse_uid_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_data_dir_keeps_its_files_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("drycc.db"), "x").unwrap();
        std::fs::set_permissions(
            data.join("drycc.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        protect_data_dir(&data, false).unwrap();
        let mode = |p: &str| std::fs::metadata(data.join(p)).unwrap().mode() & 0o777;
        assert_eq!(mode(""), 0o711);
        assert_eq!(mode("drycc.db"), 0o600);
        assert_eq!(mode("slugs"), 0o711);
        assert_eq!(mode("homes"), 0o711);
    }

    #[test]
    fn a_data_dir_behind_a_closed_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let error = protect_data_dir(&data, true).unwrap_err().to_string();
        assert!(error.contains("DRYCC_DATA_DIR"), "{error}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        // /tmp and / let others through.
        protect_data_dir(&data, true).unwrap();
    }
}
