//! Running one buildpack's programs against a build directory, by the
//! Heroku buildpack API: `bin/detect BUILD_DIR` (exit 0 and a name on
//! stdout), `bin/compile BUILD_DIR CACHE_DIR ENV_DIR` (output streamed line
//! by line), `bin/release BUILD_DIR` (YAML on stdout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::error::{BuildpackError, Result};

/// A fetched buildpack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buildpack {
    /// As the user wrote it (`python`, `file:///srv/bp.git#v2`).
    pub spec: String,
    /// The directory holding `bin/`.
    pub dir: PathBuf,
    /// The user its programs run as (see `Dirs::user`).
    pub user: Option<(u32, u32)>,
}

/// Run `command` as `user`: its uid and gid, no supplementary groups
/// (dropped by the standard library when it sets the uid), and
/// `no_new_privs`, with the usual umask.
fn run_as(command: &mut Command, user: Option<(u32, u32)>) {
    let Some((uid, gid)) = user else {
        return;
    };
    command.uid(uid).gid(gid);
    // SAFETY: prctl and umask are async-signal-safe and touch no memory
    // of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::umask(0o022);
            Ok(())
        });
    }
}

impl Buildpack {
    fn command(&self, program: &str, env: &[(String, String)]) -> Command {
        let mut command = Command::new(self.dir.join("bin").join(program));
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        run_as(&mut command, self.user);
        command
    }

    /// `Some(name)` when `bin/detect` passes (the first line it prints, or
    /// the spec when it prints nothing).
    pub async fn detect(
        &self,
        build_dir: &Path,
        env: &[(String, String)],
    ) -> Result<Option<String>> {
        let output = self
            .command("detect", env)
            .arg(build_dir)
            .current_dir(build_dir)
            .stderr(Stdio::null())
            .output()
            .await
            .map_err(BuildpackError::io(
                "cannot run",
                self.dir.join("bin/detect"),
            ))?;
        if !output.status.success() {
            return Ok(None);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let name = stdout.lines().next().unwrap_or_default().trim();
        Ok(Some(if name.is_empty() {
            self.spec.clone()
        } else {
            name.to_string()
        }))
    }

    /// `bin/compile`, its stdout and stderr merged and sent line by line.
    pub async fn compile(
        &self,
        name: &str,
        dirs: (&Path, &Path, &Path),
        env: &[(String, String)],
        output: &mpsc::Sender<String>,
    ) -> Result<()> {
        let (build_dir, cache_dir, env_dir) = dirs;
        let script = self.dir.join("bin/compile");
        // The shell merges stderr into stdout, so lines keep their order.
        let mut command = Command::new("/bin/sh");
        run_as(&mut command, self.user);
        let mut child = command
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(&script)
            .args([build_dir, cache_dir, env_dir])
            .current_dir(build_dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(BuildpackError::io("cannot run", &script))?;
        if let Some(stdout) = child.stdout.take() {
            let mut reader = tokio::io::BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        // Progress bars redraw with \r: keep the last frame.
                        let text = text.trim_end().rsplit('\r').next().unwrap_or_default();
                        let _ = output.send(text.to_string()).await;
                    }
                }
            }
        }
        let status = child
            .wait()
            .await
            .map_err(BuildpackError::io("cannot wait for", &script))?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildpackError::CompileFailed {
                name: name.to_string(),
                status: status.to_string(),
            })
        }
    }

    /// The `default_process_types` of `bin/release` (none without one).
    pub async fn release(
        &self,
        name: &str,
        build_dir: &Path,
        env: &[(String, String)],
    ) -> Result<BTreeMap<String, String>> {
        if !self.dir.join("bin/release").is_file() {
            return Ok(BTreeMap::new());
        }
        let failed = |reason: String| BuildpackError::ReleaseFailed {
            name: name.to_string(),
            reason,
        };
        let output = self
            .command("release", env)
            .arg(build_dir)
            .current_dir(build_dir)
            .output()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!("{}: {}", output.status, stderr.trim())));
        }
        let yaml = String::from_utf8(output.stdout)
            .map_err(|_| failed("its output is not UTF-8".into()))?;
        crate::release::default_process_types(&yaml).map_err(failed)
    }
}
