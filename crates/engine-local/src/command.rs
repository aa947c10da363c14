//! How a Procfile command is launched: under `/bin/sh -c <command>`, except
//! for a command that is one simple command of plain words (no quoting,
//! expansion, redirection, operator, assignment or builtin), optionally
//! prefixed by `exec`. Such a command is exec'd directly, with the program
//! found in the process's `PATH` exactly as the shell would find it and the
//! same argv: this is the "one-shot" shortcut of `bash -c`, which dash
//! lacks. It saves one shell start per process (half the exec cost of a
//! mass scale-up) and leaves nothing observable behind: `PWD` (the one
//! variable dash adds) is part of every process's environment anyway.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What to spawn for a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Launch {
    /// `program` with `argv` (`argv[0]` as written in the command).
    Direct { program: PathBuf, argv: Vec<String> },
    /// `/bin/sh -c <command>`.
    Shell,
}

/// Words of dash's grammar that are not plain commands, and its builtins
/// (a builtin must keep running in the shell, not as the external program
/// of the same name).
const NOT_PLAIN: &[&str] = &[
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then",
    "until", "while", "function", "select", "time", ".", ":", "[", "alias", "bg", "break", "cd",
    "chdir", "command", "continue", "echo", "eval", "exec", "exit", "export", "false", "fc", "fg",
    "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return",
    "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "wait",
];

/// Characters that mean nothing to the shell inside a word.
fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:,+@%=".contains(c)
}

/// Decide how to launch `command` with the process's `PATH` and working
/// directory.
pub(crate) fn plan(command: &str, path: Option<&str>, workdir: &Path) -> Launch {
    // Only blanks separate words; a newline would separate commands.
    if command.contains(|c: char| !(plain_char(c) || c == ' ' || c == '\t')) {
        return Launch::Shell;
    }
    let mut words: Vec<&str> = command
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    if words.first() == Some(&"exec") {
        words.remove(0);
    }
    let Some(first) = words.first() else {
        return Launch::Shell;
    };
    // `NAME=value cmd` is an assignment; a leading `-` would be an option
    // of `exec`.
    if first.contains('=') || first.starts_with('-') || NOT_PLAIN.contains(first) {
        return Launch::Shell;
    }
    let Some(program) = find_program(first, path, workdir) else {
        // Let the shell report "not found" (exit 127) as usual.
        return Launch::Shell;
    };
    Launch::Direct {
        program,
        argv: words.iter().map(|w| w.to_string()).collect(),
    }
}

/// The shell's command search: a name with a `/` is a path (relative to the
/// working directory); otherwise the first executable regular file in
/// `PATH` (an empty entry is the working directory).
fn find_program(name: &str, path: Option<&str>, workdir: &Path) -> Option<PathBuf> {
    if name.contains('/') {
        let candidate = workdir.join(name);
        return executable(&candidate).then_some(candidate);
    }
    path?
        .split(':')
        .map(|dir| {
            workdir
                .join(if dir.is_empty() { "." } else { dir })
                .join(name)
        })
        .find(|candidate| executable(candidate))
}

fn executable(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => {
            meta.is_file()
                && meta.permissions().mode() & 0o111 != 0
                && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: Option<&str> = Some("/usr/local/bin:/usr/bin:/bin");

    fn direct(command: &str) -> Option<(PathBuf, Vec<String>)> {
        match plan(command, PATH, Path::new("/")) {
            Launch::Direct { program, argv } => Some((program, argv)),
            Launch::Shell => None,
        }
    }

    #[test]
    fn plain_commands_are_exec_directly() {
        let (program, argv) = direct("exec sleep 600").unwrap();
        assert!(program.ends_with("sleep"));
        assert_eq!(argv, ["sleep", "600"]);
        let (_, argv) = direct("  sleep\t600 ").unwrap();
        assert_eq!(argv, ["sleep", "600"]);
        let (_, argv) = direct("python3 -m http.server --bind=127.0.0.1").unwrap();
        assert_eq!(argv, ["python3", "-m", "http.server", "--bind=127.0.0.1"]);
        let (program, _) = direct("/bin/sh -x").unwrap();
        assert_eq!(program, Path::new("/bin/sh"));
    }

    #[test]
    fn anything_shell_like_goes_to_the_shell() {
        for command in [
            "sleep $PORT",
            "python3 -m http.server ${PORT}",
            "trap '' TERM; sleep 100",
            "sleep 1 && sleep 2",
            "sleep 1 | cat",
            "echo hi > file",
            "FOO=1 sleep 1",
            "sleep \"1\"",
            "ls *.txt",
            "ls ~",
            "sleep 1 # comment",
            "sleep 1\nsleep 2",
            "exec",
            "exec -a name sleep 1",
            "",
            "   ",
            "cd /tmp",
            "echo hi",
            "true",
            "if",
            "no-such-program-anywhere 1",
            "./missing-script",
            "sleep \\1",
            "sleep 1 &",
            "(sleep 1)",
            "héllo",
        ] {
            assert_eq!(direct(command), None, "{command:?}");
        }
    }

    #[test]
    fn relative_programs_resolve_against_the_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data.txt");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(
            plan("./run.sh a", None, dir.path()),
            Launch::Direct {
                program: dir.path().join("./run.sh"),
                argv: vec!["./run.sh".to_string(), "a".to_string()],
            }
        );
        // Not executable: the shell reports it.
        assert_eq!(plan("./data.txt", None, dir.path()), Launch::Shell);
        // An empty PATH entry is the working directory.
        assert!(matches!(
            plan("run.sh", Some("/nonexistent:"), dir.path()),
            Launch::Direct { .. }
        ));
        assert_eq!(
            plan("run.sh", Some("/nonexistent"), dir.path()),
            Launch::Shell
        );
    }
}
