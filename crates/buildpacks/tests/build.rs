//! Builds against real buildpacks: local git repositories (with a ref), an
//! archive, the built-in Python and Node.js buildpacks, the cache between
//! builds and failures.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use drycc_buildpacks::{build, builtin, BuildpackError, Dirs, Outcome};
use tokio::sync::mpsc;

struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        builtin::install(&root.path().join("builtins")).unwrap();
        std::fs::create_dir_all(root.path().join("app")).unwrap();
        Fixture { root }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.root.path().join(name)
    }

    fn dirs(&self) -> Dirs {
        Dirs {
            build: self.path("app"),
            cache: self.path("cache"),
            work: self.path("work"),
            builtins: self.path("builtins"),
            buildpacks_cache: self.path("buildpacks"),
            user: None,
        }
    }

    async fn build(
        &self,
        config: &[(&str, &str)],
    ) -> (Result<Outcome, BuildpackError>, Vec<String>) {
        let config: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("HOME".to_string(), self.root.path().display().to_string()),
        ];
        let (sender, mut receiver) = mpsc::channel(1024);
        let result = build(&self.dirs(), &config, &env, &sender).await;
        drop(sender);
        let mut lines = Vec::new();
        while let Some(line) = receiver.recv().await {
            lines.push(line);
        }
        (result, lines)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    if path.parent().unwrap().ends_with("bin") {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A buildpack in a git repository: v1 on tag `v1`, v2 on `main`.
fn custom_buildpack(dir: &Path) {
    write(&dir.join("bin/detect"), "#!/bin/sh\necho Custom\n");
    write(
        &dir.join("bin/compile"),
        "#!/bin/sh\nset -e\necho \"compiling v1 with GREETING=$(cat $3/GREETING)\"\n\
         [ -f $2/seen ] && echo \"cache has: $(cat $2/seen)\"\necho first > $2/seen\n\
         echo 'echo hi' > $1/run.sh\n",
    );
    write(
        &dir.join("bin/release"),
        "#!/bin/sh\necho '---'\necho 'default_process_types:'\necho '  web: sh run.sh'\n",
    );
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "v1"]);
    git(dir, &["tag", "v1"]);
    write(&dir.join("bin/compile"), "#!/bin/sh\necho compiling v2\n");
    git(dir, &["commit", "-qam", "v2"]);
}

#[tokio::test]
async fn a_git_buildpack_at_a_ref_with_config_cache_and_release() {
    let fixture = Fixture::new();
    custom_buildpack(&fixture.path("bp"));
    let url = format!("file://{}#v1", fixture.path("bp").display());
    let config = [("BUILDPACK_URL", url.as_str()), ("GREETING", "hello")];
    let (result, lines) = fixture.build(&config).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.names, vec!["Custom".to_string()]);
    assert_eq!(outcome.default_process_types["web"], "sh run.sh");
    assert!(
        lines.contains(&"compiling v1 with GREETING=hello".to_string()),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("-----> Fetching buildpack")));
    assert!(!fixture.path("work").exists(), "the env dir is removed");
    // Second build: fetched once, the cache of the first compile is seen.
    let (result, lines) = fixture.build(&config).await;
    result.unwrap();
    assert!(lines.contains(&"cache has: first".to_string()), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("-----> Fetching")),
        "{lines:?}"
    );
    // Without a ref: the default branch.
    let url = format!("file://{}", fixture.path("bp").display());
    let (result, lines) = fixture.build(&[("BUILDPACK_URL", url.as_str())]).await;
    result.unwrap();
    assert!(lines.contains(&"compiling v2".to_string()), "{lines:?}");
}

#[tokio::test]
async fn buildpacks_file_runs_each_in_order_and_an_archive_works() {
    let fixture = Fixture::new();
    for (name, text) in [
        ("one", "echo first >> $1/order"),
        ("two", "echo second >> $1/order"),
    ] {
        let dir = fixture.path(name);
        write(
            &dir.join("bin/detect"),
            &format!("#!/bin/sh\necho {name}\n"),
        );
        write(&dir.join("bin/compile"), &format!("#!/bin/sh\n{text}\n"));
    }
    let archive = fixture.path("two.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(fixture.root.path())
        .arg("two")
        .status()
        .unwrap();
    assert!(status.success());
    write(
        &fixture.path("app/.buildpacks"),
        &format!(
            "# comment\n{}\n\nfile://{}\n",
            fixture.path("one").display(),
            archive.display()
        ),
    );
    let (result, lines) = fixture.build(&[]).await;
    let outcome = result.unwrap();
    assert_eq!(
        outcome.names,
        vec!["one".to_string(), "two".to_string()],
        "{lines:?}"
    );
    let order = std::fs::read_to_string(fixture.path("app/order")).unwrap();
    assert_eq!(order, "first\nsecond\n");
}

#[tokio::test]
async fn failures_say_what_failed() {
    let fixture = Fixture::new();
    let bp = fixture.path("failing");
    write(&bp.join("bin/detect"), "#!/bin/sh\nexit 0\n");
    write(
        &bp.join("bin/compile"),
        "#!/bin/sh\necho out\necho 'broken dependency' >&2\nexit 3\n",
    );
    let spec = bp.display().to_string();
    let (result, lines) = fixture.build(&[("BUILDPACK_URL", &spec)]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, BuildpackError::CompileFailed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("exit status: 3"), "{error}");
    assert!(
        lines.contains(&"broken dependency".to_string()),
        "{lines:?}"
    );

    write(&bp.join("bin/detect"), "#!/bin/sh\nexit 1\n");
    let error = fixture
        .build(&[("BUILDPACK_URL", &spec)])
        .await
        .0
        .unwrap_err();
    assert!(matches!(error, BuildpackError::NotDetected(_)), "{error}");

    let error = fixture
        .build(&[("BUILDPACK_URL", "nosuch")])
        .await
        .0
        .unwrap_err();
    assert!(
        error.to_string().contains("unknown built-in buildpack"),
        "{error}"
    );
    let missing = format!("file://{}", fixture.path("missing.git").display());
    let error = fixture
        .build(&[("BUILDPACK_URL", &missing)])
        .await
        .0
        .unwrap_err();
    assert!(matches!(error, BuildpackError::Fetch { .. }), "{error}");

    // Nothing detected: an empty app.
    let error = fixture.build(&[]).await.0.unwrap_err();
    assert!(matches!(error, BuildpackError::NoneDetected(_)), "{error}");
}

#[tokio::test]
async fn builtin_python_installs_a_local_package_offline() {
    let fixture = Fixture::new();
    let app = fixture.path("app");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-greeting");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", examples.display()))
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(app.join("Procfile")).ok();
    let (result, lines) = fixture.build(&[]).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert_eq!(outcome.names, vec!["Python".to_string()]);
    assert_eq!(outcome.default_process_types["web"], "python3 app.py");
    assert!(lines.iter().any(|l| l.contains("--no-index")), "{lines:?}");
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(drycc_buildpacks::slug::with_profile(
            "python3 -c 'import greeting; print(greeting.hello(\"slug\"))'",
        ))
        .current_dir(&app)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello, slug!\n");

    // The next build of the same requirements installs from the cache.
    std::fs::remove_dir_all(app.join(".venv")).unwrap();
    let (result, lines) = fixture.build(&[]).await;
    result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert!(
        lines.iter().any(|l| l.contains("Requirements unchanged")),
        "{lines:?}"
    );
    let output = Command::new(app.join(".venv/bin/python"))
        .args(["-c", "import greeting; print(greeting.hello('cache'))"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello, cache!\n");
    // A change to the package in the app is installed again.
    std::fs::write(
        app.join("vendor/greeting/greeting/__init__.py"),
        "def hello(name):\n    return 'changed'\n",
    )
    .unwrap();
    std::fs::remove_dir_all(app.join(".venv")).unwrap();
    let (result, lines) = fixture.build(&[]).await;
    result.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Installing requirements with pip")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn builtin_nodejs_installs_a_local_file_dependency_offline() {
    let fixture = Fixture::new();
    let app = fixture.path("app");
    write(
        &app.join("vendor/greet/package.json"),
        r#"{"name":"greet","version":"1.0.0","main":"index.js"}"#,
    );
    write(
        &app.join("vendor/greet/index.js"),
        "module.exports = n => `Hello, ${n}!`;\n",
    );
    write(
        &app.join("package.json"),
        r#"{"name":"app","version":"1.0.0","dependencies":{"greet":"file:vendor/greet"},"scripts":{"start":"node server.js"}}"#,
    );
    let (result, lines) = fixture.build(&[]).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert_eq!(outcome.names, vec!["Node.js".to_string()]);
    assert_eq!(outcome.default_process_types["web"], "npm start");
    let output = Command::new("node")
        .args(["-e", "console.log(require('greet')('node'))"])
        .current_dir(&app)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello, node!\n");
}
