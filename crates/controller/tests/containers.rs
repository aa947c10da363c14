//! Container images as apps, on a real Docker engine and registry
//! (`scripts/with-docker.sh`): `drycc pull` with and without a Procfile, the
//! process walkthrough against containers, the router reaching them,
//! Dockerfile pushes, and the bad input an image deploy can meet. Skipped,
//! loudly, without `DOCKER_HOST` and `DRYCC_TEST_REGISTRY`.

mod support;

use std::time::{Duration, Instant};

use drycc_images::bollard::query_parameters::RemoveImageOptionsBuilder;
use drycc_images::testing::{build_busybox_image, docker_from_env, push, skip, test_registry};
use support::cli::{api_of, count, interactive_exec, ps_rows, registered, scaled};
use support::{follow_logs_until, routed, Controller};

/// The image's web page, served by busybox httpd from /www.
const PAGE: &str = "hello-from-image";

/// Busybox images built once per test binary, pushed to the test registry
/// and removed from the engine, so a deploy reads the registry and the
/// engine pulls.
struct Images {
    /// CMD `httpd` on 5000, no entrypoint.
    plain: String,
    /// ENTRYPOINT printing `entry-kept` before exec'ing its arguments.
    entry: String,
    /// Neither CMD nor ENTRYPOINT.
    bare: String,
}

fn images(test: &str) -> Option<Images> {
    let (Some(docker), Some(registry)) = (docker_from_env(), test_registry()) else {
        skip(
            test,
            "DOCKER_HOST and DRYCC_TEST_REGISTRY are not set (scripts/with-docker.sh sets them)",
        );
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let www = format!("RUN mkdir -p /www && echo {PAGE} > /www/index.html");
    let images = Images {
        plain: format!("{registry}/example-{test}:1"),
        entry: format!("{registry}/entry-{test}:1"),
        bare: format!("{registry}/bare-{test}:1"),
    };
    let build = [
        (
            &images.plain,
            format!("{www}\nCMD [\"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/www\"]"),
        ),
        (
            &images.entry,
            format!(
                "{www}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"echo entry-kept; exec \\\"$@\\\"\", \"--\"]\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/www\"]"
            ),
        ),
        (&images.bare, www.clone()),
    ];
    runtime.block_on(async {
        for (tag, tail) in build {
            build_busybox_image(&docker, tag, &tail)
                .await
                .expect("build");
            push(&docker, tag).await.expect("push");
            // The tag only: its parent layers are other tests' build cache.
            let keep_parents = RemoveImageOptionsBuilder::new().noprune(true).build();
            docker
                .remove_image(tag, Some(keep_parents), None)
                .await
                .expect("remove the local copy");
        }
    });
    Some(images)
}

/// Poll the router until the app answers `PAGE`.
fn wait_routed(controller: &Controller, app: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = routed(&controller.router_url, app);
        if status == 200 && body.trim() == PAGE {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{app} never answered through the router: {status} {body}\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pulled_images_run_as_containers_through_the_walkthrough() {
    let Some(images) = images("walk") else { return };
    let controller = Controller::start(&[]);
    let cli = registered(&controller, "boxer");
    let app = "boxed";
    cli.ok(&["create", app, "--no-remote"]);

    let procfile = "web: httpd -f -p $PORT -h /www\n\
                    worker: sh -c 'trap \"echo got TERM; exit 0\" TERM; echo working; while true; do sleep 1; done'";
    let out = cli.ok(&["pull", &images.plain, "-a", app, "--procfile", procfile]);
    assert!(out.contains("done, v2"), "{out}");

    // Only web, at 1.
    let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3.as_str()),
        ("v2", "up", "web")
    );
    wait_routed(&controller, app);

    // Another type up and down: SIGTERM reaches it.
    let rows = scaled(&cli.ok(&["scale", "worker=2", "-a", app]), "Scaling");
    assert_eq!((count(&rows, "web"), count(&rows, "worker")), (1, 2));
    // Docker removes a container's output with it: follow while it stops.
    let api = api_of(&controller, &cli);
    let terms = |lines: &[String]| lines.iter().filter(|l| l.contains("got TERM")).count();
    let follower = follow_logs_until(&api, app, move |lines| terms(lines) == 2);
    let rows = scaled(&cli.ok(&["scale", "worker=0", "-a", app]), "Scaling");
    assert_eq!((count(&rows, "web"), count(&rows, "worker")), (1, 0));
    let lines = follower.join().expect("follower");
    assert_eq!(
        terms(&lines),
        2,
        "both workers say they got SIGTERM: {lines:#?}"
    );

    // exec, plain and interactive.
    let web = rows.iter().find(|r| r.3 == "web").expect("web").0.clone();
    let ls = cli.ok(&["ps:exec", &web, "-a", app, "--", "ls", "/"]);
    assert!(ls.lines().any(|l| l.trim() == "www"), "{ls}");
    let output = cli.run(&["ps:exec", &web, "-a", app, "--", "sh", "-c", "exit 3"]);
    assert_eq!(output.code, 3, "{}", output.stderr);
    interactive_exec(&cli, &web, Some(app));

    // Restart one process (new name), then the type.
    let rows = scaled(&cli.ok(&["ps:restart", &web, "-a", app]), "Restarting");
    assert_eq!(count(&rows, "web"), 1);
    assert!(!rows.iter().any(|r| r.0 == web), "{web} was replaced");
    let before = rows[0].0.clone();
    let rows = scaled(&cli.ok(&["ps:restart", "web", "-a", app]), "Restarting");
    assert!(rows.iter().all(|r| r.0 != before));

    // A config change rolls every type.
    cli.ok(&["scale", "worker=1", "-a", app]);
    let before: Vec<String> = ps_rows(&cli.ok(&["ps", "-a", app]))
        .into_iter()
        .map(|r| r.0)
        .collect();
    cli.ok(&["config:set", "GREETING=hi", "-a", app]);
    let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
    assert_eq!(
        (count(&rows, "web"), count(&rows, "worker")),
        (1, 1),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.1 == "v3" && !before.contains(&r.0)),
        "{rows:?}"
    );
    let env = cli.ok(&[
        "ps:exec",
        &rows[0].0,
        "-a",
        app,
        "--",
        "sh",
        "-c",
        "echo $GREETING $PORT",
    ]);
    assert_eq!(env.trim(), "hi 5000");
    wait_routed(&controller, app);

    // What runs is a container of the image, named after the process.
    let described = api.describe(app, &rows[0].0);
    assert_eq!(described["image"], images.plain.as_str(), "{described}");

    // Limits reach the containers.
    cli.ok(&["limits:set", "--cpu", "web=250m", "-a", app]);
    cli.ok(&["limits:set", "--memory", "web=64M", "-a", app]);
    let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
    let web = rows.iter().find(|r| r.3 == "web").expect("web").0.clone();
    let docker = docker_from_env().expect("docker");
    let inspected = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(docker.inspect_container(&web, None))
        .expect("the web container");
    let host = inspected.host_config.expect("host config");
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    wait_routed(&controller, app);
}

#[test]
fn an_image_runs_its_cmd_and_a_procfile_keeps_its_entrypoint() {
    let Some(images) = images("cmd") else { return };
    let controller = Controller::start(&[]);
    let cli = registered(&controller, "commander");

    // No Procfile: web runs the image's CMD.
    cli.ok(&["create", "by-cmd", "--no-remote"]);
    cli.ok(&["pull", &images.plain, "-a", "by-cmd"]);
    wait_routed(&controller, "by-cmd");

    // A Procfile line replaces CMD; the ENTRYPOINT still runs first. The
    // app has a registry login (the test registry asks for none): it is
    // kept, never shown, and the image is read and pulled with it.
    cli.ok(&["create", "by-entry", "--no-remote"]);
    let out = cli.ok(&[
        "registry:set",
        "username=bob",
        "password=s3cret",
        "-a",
        "by-entry",
    ]);
    assert!(
        out.contains("username    bob") && out.contains("********"),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    cli.ok(&[
        "pull",
        &images.entry,
        "-a",
        "by-entry",
        "--procfile",
        "web: httpd -f -p $PORT -h /www",
    ]);
    wait_routed(&controller, "by-entry");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli.ok(&["logs", "-a", "by-entry"]).contains("entry-kept") {
        assert!(Instant::now() < deadline, "the entrypoint ran");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad input: 400 with the reason, nothing released.
    let api = api_of(&controller, &cli);
    let releases = |app: &str| api.get(&format!("/v2/apps/{app}/releases/")).body["count"].clone();
    let before = releases("by-cmd");
    let dead_registry = format!("127.0.0.1:{}/example:1", support::free_port());
    for (image, reason) in [
        ("example", "has no tag"),
        (dead_registry.as_str(), "cannot reach the registry"),
        (images.bare.as_str(), "no CMD or ENTRYPOINT"),
    ] {
        let answer = api.post(
            "/v2/apps/by-cmd/builds/",
            serde_json::json!({"image": image}),
        );
        assert_eq!(answer.status, 400, "{image}: {:?}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{image}: {detail}");
    }
    let missing = format!("{}/no-such-image:1", test_registry().expect("registry"));
    let answer = api.post(
        "/v2/apps/by-cmd/builds/",
        serde_json::json!({"image": missing}),
    );
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(releases("by-cmd"), before, "nothing was released");
}

#[test]
fn a_dockerfile_push_builds_and_runs_and_a_broken_one_changes_nothing() {
    let Some(images) = images("dockerfile") else {
        return;
    };
    let controller = Controller::start(&[]);
    let cli = registered(&controller, "builder");
    let app = "built";
    cli.ok(&["create", app, "--no-remote"]);
    let api = api_of(&controller, &cli);
    let token = api.token.clone().expect("token");

    let repo = tempfile::tempdir().expect("repo");
    support::git(repo.path(), &["init", "-q", "-b", "main"]);
    let dockerfile = format!(
        "FROM {}\nRUN echo {PAGE} > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/www\"]\n",
        images.plain
    );
    std::fs::write(repo.path().join("Dockerfile"), &dockerfile).expect("Dockerfile");
    support::commit_all(repo.path(), "a Dockerfile app");
    let (ok, out) = support::push(repo.path(), &controller.url, app, "builder", &token);
    assert!(ok, "{out}\n{}", controller.log());
    assert!(out.contains("Building Docker image"), "{out}");
    assert!(
        out.contains("Step 2/3 : RUN echo"),
        "the build's output is shown: {out}"
    );
    assert!(out.contains("done, v2"), "{out}");
    wait_routed(&controller, app);

    // A step that fails: the push is rejected with the build's error and
    // nothing else changes.
    let releases = || api.get(&format!("/v2/apps/{app}/releases/")).body["count"].clone();
    let before = releases();
    std::fs::write(
        repo.path().join("Dockerfile"),
        format!("{dockerfile}RUN exit 9\n"),
    )
    .expect("Dockerfile");
    support::commit_all(repo.path(), "broken");
    let (ok, out) = support::push(repo.path(), &controller.url, app, "builder", &token);
    assert!(!ok, "{out}");
    assert!(out.contains("returned a non-zero code: 9"), "{out}");
    assert_eq!(releases(), before);
    wait_routed(&controller, app);
}

#[test]
fn with_the_docker_engine_source_apps_run_in_the_slug_image() {
    let (Some(docker), Some(_)) = (docker_from_env(), test_registry()) else {
        skip(
            "with_the_docker_engine_source_apps_run_in_the_slug_image",
            "DOCKER_HOST is not set (scripts/with-docker.sh sets it)",
        );
        return;
    };
    let slug_image = "drycc-test/slug:1";
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(build_busybox_image(&docker, slug_image, ""))
        .expect("the slug image");
    let controller =
        Controller::start(&[("DRYCC_ENGINE", "docker"), ("DRYCC_SLUG_IMAGE", slug_image)]);
    let cli = registered(&controller, "slugger");
    let app = "slugged";
    cli.ok(&["create", app, "--no-remote"]);
    let api = api_of(&controller, &cli);
    let token = api.token.clone().expect("token");

    let repo = tempfile::tempdir().expect("repo");
    support::git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join("www")).expect("www");
    std::fs::write(repo.path().join("www/index.html"), format!("{PAGE}\n")).expect("page");
    std::fs::write(
        repo.path().join("Procfile"),
        "web: httpd -f -p $PORT -h /app/www\n",
    )
    .expect("Procfile");
    support::commit_all(repo.path(), "a source app");
    let (ok, out) = support::push(repo.path(), &controller.url, app, "slugger", &token);
    assert!(ok, "{out}\n{}", controller.log());
    wait_routed(&controller, app);
    let web = api.pods_of(app, "web")[0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let described = api.describe(app, &web);
    assert_eq!(described["image"], slug_image, "{described}");
    let pwd = cli.ok(&["ps:exec", &web, "-a", app, "--", "pwd"]);
    assert_eq!(pwd.trim(), "/app");
}
