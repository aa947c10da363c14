//! Buildpack builds end to end: a real controller, `git push` of apps
//! whose dependencies live in their repository (nothing is downloaded),
//! the built-in Python and Node.js buildpacks, a custom buildpack in a
//! local git repository named by BUILDPACK_URL, the cache between pushes,
//! a failed compile and a rollback to the previous slug.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{commit_all, push, routed, tree_repo, Api, Controller};

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Poll the router until `app` answers 200 with a body that `check`
/// accepts (a rollout has just been judged; the router follows at once,
/// the deadline only bounds a failure).
fn wait_routed(controller: &Controller, app: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = routed(&controller.router_url, app);
        if status == 200 && check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{app} did not answer as expected: {status} {body}\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_app(api: &Api, app: &str) {
    let created = api.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);
}

fn web_name(api: &Api, app: &str) -> String {
    let pods = api.pods_of(app, "web");
    assert_eq!(pods.len(), 1, "{pods:#?}");
    pods[0]["name"].as_str().expect("name").to_string()
}

#[test]
fn python_app_installs_a_package_from_its_repository() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "s3cret-pass");
    let app = "py-greeting";
    create_app(&api, app);
    let repo = tree_repo(&examples().join("python-greeting"));
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    for expected in [
        "remote: -----> Python app detected",
        "--no-index",
        "Successfully installed greeting-1.0",
        "remote: -----> Default types for buildpack -> web",
        "remote: -----> Compiled slug size is",
        "done, v2",
    ] {
        assert!(output.contains(expected), "{expected:?} in:\n{output}");
    }
    let web = web_name(&api, app);
    let body = wait_routed(&controller, app, |_| true);
    assert_eq!(body, format!("Hello, {web}!\n"));
    let builds = api.get(&format!("/v2/apps/{app}/builds/"));
    assert_eq!(
        builds.body["results"][0]["stack"], "python",
        "{}",
        builds.text
    );
    assert_eq!(
        builds.body["results"][0]["procfile"],
        json!({"web": "python3 app.py"})
    );
    // `ps:describe` tells the size of the slug it runs.
    let described = api.describe(app, &web);
    let size = described["slug_size"].as_u64().unwrap_or_default();
    assert!(size > 1000, "{described}");
}

#[test]
fn nodejs_app_installs_a_local_file_dependency() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "s3cret-pass");
    let app = "node-greeting";
    create_app(&api, app);
    let repo = tree_repo(&fixtures().join("node-greeting"));
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    assert!(
        output.contains("remote: -----> Node.js app detected"),
        "{output}"
    );
    assert!(
        output.contains("Default types for buildpack -> web"),
        "{output}"
    );
    let web = web_name(&api, app);
    let body = wait_routed(&controller, app, |_| true);
    assert_eq!(body, format!("Hello, {web}! (node)\n"));
}

/// A buildpack in a local git repository. Its compile writes a page that
/// tells whether it found its cache, and `.profile.d` that the web
/// process must see; a `fail` file in the app makes it fail.
fn custom_buildpack(dir: &Path) {
    let write = |name: &str, text: &str| {
        let path = dir.join("bin").join(name);
        std::fs::create_dir_all(dir.join("bin")).expect("bin");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    write("detect", "#!/bin/sh\necho Custom\n");
    write(
        "compile",
        r#"#!/bin/sh
set -e
build=$1 cache=$2 env=$3
echo "-----> Custom compile, MESSAGE=$(cat "$env/MESSAGE")"
if [ -f "$build/fail" ]; then
  echo "       compile exploded: $(cat "$build/fail")"
  echo "DRYCC-RESULT ok"
  exit 1
fi
if [ -f "$cache/count" ]; then
  echo "       cache from an earlier compile: $(cat "$cache/count")"
  echo "cache hit $(cat "$cache/count")" > "$build/page.txt"
else
  echo "cold cache" > "$build/page.txt"
fi
echo "compile $(date +%s%N)" > "$cache/count"
mkdir -p "$build/.profile.d"
echo 'export FROM_PROFILE=profile-ok' > "$build/.profile.d/custom.sh"
cat > "$build/server.py" <<'PY'
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        page = open("page.txt").read().strip()
        who = os.environ.get("WHO", "release default")
        body = f"{page}; {os.environ.get('FROM_PROFILE')}; {who}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
PY
"#,
    );
    write(
        "release",
        "#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: python3 server.py\\n'\n",
    );
    support::git(dir, &["init", "-q", "-b", "main"]);
    commit_all(dir, "buildpack");
    support::git(dir, &["tag", "v1"]);
}

#[test]
fn custom_buildpack_cache_procfile_failure_and_rollback() {
    let controller = Controller::start(&[("DRYCC_SLUGS_KEEP", "2")]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "s3cret-pass");
    let app = "custom-bp";
    create_app(&api, app);
    let buildpack = tempfile::tempdir().expect("temp dir");
    custom_buildpack(buildpack.path());
    let url = format!("file://{}#v1", buildpack.path().display());
    let config = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"BUILDPACK_URL": url, "MESSAGE": "from config"}}),
    );
    assert_eq!(config.status, 201, "{}", config.text);

    // First push: no Procfile, the buildpack's default web runs, with its
    // .profile.d sourced.
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::write(repo.path().join("README"), "an app with no code\n").expect("write");
    support::git(repo.path(), &["init", "-q", "-b", "main"]);
    commit_all(repo.path(), "init");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    assert!(
        output.contains("remote: -----> Fetching buildpack file://"),
        "{output}"
    );
    assert!(
        output.contains("remote: -----> Custom compile, MESSAGE=from config"),
        "{output}"
    );
    let first = wait_routed(&controller, app, |_| true);
    assert_eq!(first, "cold cache; profile-ok; release default\n");
    let builds = api.get(&format!("/v2/apps/{app}/builds/"));
    assert_eq!(builds.body["results"][0]["stack"], url, "{}", builds.text);

    // Second push: the buildpack finds what its first compile cached.
    std::fs::write(repo.path().join("README"), "changed\n").expect("write");
    commit_all(repo.path(), "second");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "second push failed:\n{output}");
    assert!(
        output.contains("cache from an earlier compile: compile "),
        "{output}"
    );
    assert!(
        !output.contains("Fetching buildpack"),
        "fetched once: {output}"
    );
    let second = wait_routed(&controller, app, |b| b.starts_with("cache hit"));
    assert!(
        second.ends_with("; profile-ok; release default\n"),
        "{second}"
    );

    // A Procfile wins over the buildpack's default.
    std::fs::write(
        repo.path().join("Procfile"),
        "web: WHO=procfile python3 server.py\n",
    )
    .expect("write");
    commit_all(repo.path(), "procfile");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "third push failed:\n{output}");
    assert!(
        output.contains("Procfile declares types -> web"),
        "{output}"
    );
    let third = wait_routed(&controller, app, |b| b.ends_with("; procfile\n"));
    assert!(third.contains("profile-ok"), "{third}");
    let running = web_name(&api, app);
    // Three builds, two slugs kept: the first push's slug is gone.
    let slugs = controller.data_dir.path().join("slugs").join(app);
    let slug_count = || std::fs::read_dir(&slugs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(slug_count(), 2, "DRYCC_SLUGS_KEEP=2");
    let releases_before = api.get(&format!("/v2/apps/{app}/releases/")).body["count"].clone();

    // A failing compile rejects the push with its output; nothing changes.
    std::fs::write(repo.path().join("fail"), "missing dependency\n").expect("write");
    commit_all(repo.path(), "broken");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(!ok, "a failed compile must reject the push:\n{output}");
    assert!(
        output.contains("remote:        compile exploded: missing dependency"),
        "{output}"
    );
    assert!(output.contains("failed to compile"), "{output}");
    assert!(
        output.contains("remote:  DRYCC-RESULT ok"),
        "a fake verdict is shown escaped: {output}"
    );
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        releases_before
    );
    assert_eq!(
        web_name(&api, app),
        running,
        "the running process is untouched"
    );
    assert_eq!(routed(&controller.router_url, app).1, third);
    assert_eq!(slug_count(), 2, "the failed build left no slug");

    // Rollback: the previous release's slug runs again, exactly.
    let answer = api.post(&format!("/v2/apps/{app}/releases/rollback/"), json!({}));
    assert_eq!(answer.status, 201, "{}", answer.text);
    let rolled = wait_routed(&controller, app, |b| b.ends_with("; release default\n"));
    assert_eq!(rolled, second, "the slug of the second push runs again");
}

#[test]
fn a_restart_removes_what_an_interrupted_build_left() {
    let mut controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "s3cret-pass");
    let app = "interrupted";
    create_app(&api, app);
    let repo = support::fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    controller.stop();
    // What a crash during a build leaves: a checkout, scratch, a slug
    // that no build names.
    let data = controller.data_dir.path().to_path_buf();
    let slugs = data.join("slugs").join(app);
    let running: Vec<_> = std::fs::read_dir(&slugs)
        .expect("slugs")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(running.len(), 1);
    for dir in [
        slugs.join("0123abc-deadbeef"),
        data.join("checkouts").join(app).join("0123abc"),
        data.join("tmp").join("build-x").join("env"),
    ] {
        std::fs::create_dir_all(&dir).expect("create");
    }
    controller.spawn();
    api.url = controller.url.clone();
    let left: Vec<_> = std::fs::read_dir(&slugs)
        .expect("slugs")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, running, "only the recorded slug is kept");
    assert!(!data.join("checkouts").exists());
    assert!(!data.join("tmp").exists());
    assert_eq!(api.pods_of(app, "web").len(), 1);
}
