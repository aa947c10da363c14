//! The few git operations the client needs, run with the `git` binary in a
//! given directory: reading remotes, adding/removing one, and installing the
//! credential helper that answers `git push` with the user's token.

use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

struct Output {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn git(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    Ok(Output {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git(dir, args)?;
    if !out.ok {
        return Err(GitError::Failed {
            args: args.join(" "),
            stderr: out.stderr,
        });
    }
    Ok(out.stdout)
}

/// Is `dir` inside a git work tree? (No git at all counts as "no".)
pub fn is_repo(dir: &Path) -> bool {
    matches!(git(dir, &["rev-parse", "--git-dir"]), Ok(o) if o.ok)
}

/// The remotes of the repository at `dir` as `(name, url)`, in the order
/// of the configuration; empty outside a repository.
pub fn remotes(dir: &Path) -> Vec<(String, String)> {
    match git(dir, &["config", "--get-regexp", r"^remote\..*\.url$"]) {
        Ok(out) if out.ok => parse_remote_config(&out.stdout),
        _ => Vec::new(),
    }
}

/// Parses `git config --get-regexp` lines: `remote.<name>.url <url>`.
pub fn parse_remote_config(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, url) = line.split_once(' ')?;
            let name = key.strip_prefix("remote.")?.strip_suffix(".url")?;
            Some((name.to_string(), url.trim().to_string()))
        })
        .collect()
}

/// The URL of remote `name`, if it exists.
pub fn remote_url(dir: &Path, name: &str) -> Option<String> {
    remotes(dir)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, url)| url)
}

pub fn add_remote(dir: &Path, name: &str, url: &str) -> Result<(), GitError> {
    git_ok(dir, &["remote", "add", name, url]).map(|_| ())
}

pub fn remove_remote(dir: &Path, name: &str) -> Result<(), GitError> {
    git_ok(dir, &["remote", "remove", name]).map(|_| ())
}

/// Quotes `s` for a POSIX shell inside double quotes (git runs `!` helpers
/// through the shell).
fn shell_double_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `credential.<url>.helper` value: `!"<drycc>" [--config "<file>"] git-credential`.
pub fn helper_command(exe: &Path, config_file: Option<&Path>) -> String {
    let mut cmd = format!("!{}", shell_double_quote(&exe.to_string_lossy()));
    if let Some(file) = config_file {
        cmd.push_str(" --config ");
        cmd.push_str(&shell_double_quote(&file.to_string_lossy()));
    }
    cmd.push_str(" git-credential");
    cmd
}

/// Makes `git push` to `controller` in this repository authenticate with
/// our helper. An empty helper first clears helpers configured elsewhere
/// (e.g. `store`), so that no other helper writes the token to a file.
pub fn install_credential_helper(
    dir: &Path,
    controller: &str,
    username: &str,
    helper: &str,
) -> Result<(), GitError> {
    let helper_key = format!("credential.{controller}.helper");
    let user_key = format!("credential.{controller}.username");
    let out = git(dir, &["config", "--local", "--unset-all", &helper_key])?;
    // Exit 5: there was nothing to unset.
    if !out.ok && out.code != Some(5) {
        return Err(GitError::Failed {
            args: format!("config --unset-all {helper_key}"),
            stderr: out.stderr,
        });
    }
    git_ok(dir, &["config", "--local", "--add", &helper_key, ""])?;
    git_ok(dir, &["config", "--local", "--add", &helper_key, helper])?;
    git_ok(dir, &["config", "--local", &user_key, username])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_remote_config_lines() {
        let text = "remote.origin.url https://github.com/x/y.git\n\
                    remote.drycc.url http://127.0.0.1:8000/git/foo.git\n\
                    remote.with.dot.url http://h/git/z.git\n";
        assert_eq!(
            parse_remote_config(text),
            vec![
                ("origin".into(), "https://github.com/x/y.git".into()),
                ("drycc".into(), "http://127.0.0.1:8000/git/foo.git".into()),
                ("with.dot".into(), "http://h/git/z.git".into()),
            ]
        );
    }

    #[test]
    fn helper_command_quotes_paths() {
        assert_eq!(
            helper_command(Path::new("/usr/bin/drycc"), None),
            r#"!"/usr/bin/drycc" git-credential"#
        );
        assert_eq!(
            helper_command(
                Path::new("/opt/my $dir/drycc"),
                Some(&PathBuf::from("/h/.drycc/a\"b.json"))
            ),
            r#"!"/opt/my \$dir/drycc" --config "/h/.drycc/a\"b.json" git-credential"#
        );
    }
}
