//! Running an app's commands as the app's own user: its uid and gid, no
//! supplementary groups, `no_new_privs` (no set-uid program can give it
//! more), and a private home. A process under another uid can neither
//! read the app's files (its checkout and home are `0700`), nor its
//! `/proc/<pid>/environ`, nor signal it.
//!
//! The engine (the controller's user, root for isolation to be possible)
//! opens whatever the process needs before the switch: its log file and
//! standard descriptors are inherited, so nothing of the engine's own
//! directories has to be reachable by the app.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use drycc_engine::RunAs;

/// Make `cmd` run as `user` (nothing changes for `None`).
///
/// Setting the uid makes the standard library drop every supplementary
/// group (`setgroups(0)`) before `setgid` and `setuid`; `no_new_privs` is
/// set after the switch, right before `exec`, with the umask `0022`.
pub(crate) fn run_as(cmd: &mut tokio::process::Command, user: Option<RunAs>) {
    let Some(user) = user else {
        return;
    };
    cmd.uid(user.uid).gid(user.gid);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The usual mask, whatever the engine's own (a controller keeps
            // what it creates to itself with 0077).
            libc::umask(0o022);
            Ok(())
        });
    }
}

/// The private home of `app` under `homes`: created if missing, owned by
/// `user`, mode `0700`; `homes` itself is made searchable (not listable)
/// by others, so each app reaches its own home and no other. Tools need a
/// writable home (caches, dot files); the engine's own `HOME` is not theirs.
pub fn prepare_home(homes: &Path, app: &str, user: RunAs) -> io::Result<PathBuf> {
    let home = homes.join(app);
    if let Ok(meta) = std::fs::symlink_metadata(&home) {
        if meta.is_dir()
            && meta.uid() == user.uid
            && meta.gid() == user.gid
            && meta.mode() & 0o777 == 0o700
        {
            return Ok(home);
        }
    }
    if !homes.is_dir() {
        std::fs::create_dir_all(homes)?;
        std::fs::set_permissions(homes, std::fs::Permissions::from_mode(0o711))?;
    }
    match std::fs::create_dir(&home) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !std::fs::symlink_metadata(&home)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", home.display()),
        ));
    }
    // Only the top: what the app wrote inside is its own already.
    std::os::unix::fs::lchown(&home, Some(user.uid), Some(user.gid))?;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
    Ok(home)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_is_private_to_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let homes = dir.path().join("homes");
        let me = RunAs {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let home = prepare_home(&homes, "web", me).unwrap();
        assert_eq!(home, homes.join("web"));
        let meta = std::fs::metadata(&home).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), me.uid);
        let parent = std::fs::metadata(&homes).unwrap();
        assert_eq!(parent.mode() & 0o777, 0o711);
        // Loosened by someone: tightened again.
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_home(&homes, "web", me).unwrap();
        assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o777, 0o700);
        // A file where the home should be is an error, not followed.
        std::fs::write(homes.join("file"), "x").unwrap();
        assert!(prepare_home(&homes, "file", me).is_err());
    }
}
