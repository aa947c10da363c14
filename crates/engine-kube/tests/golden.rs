//! The objects of a web+worker app, compared byte for byte with the files
//! in `tests/golden/` (pretty JSON, as applied). `UPDATE_GOLDEN=1`
//! rewrites them; the diff then shows what changed on clusters.

use std::path::PathBuf;
use std::time::Duration;

use drycc_engine::{
    Artifact, AutoscaleSpec, Command, Env, ImageSpec, Probe, ProbeAction, ProcessTemplate,
};
use drycc_engine_kube::manifests::{self, Rollout, Settings};

fn settings() -> Settings {
    Settings {
        instance: "drycc".to_string(),
        default_port: 5000,
        image_pull_secret: Some("registry-login".to_string()),
        node_selector: Default::default(),
        tolerations: Vec::new(),
    }
}

fn env() -> Env {
    [
        ("DATABASE_URL", "postgres://db.example:5432/shop"),
        ("QUEUE", "orders"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn template(ptype: &str, command: &str) -> ProcessTemplate {
    ProcessTemplate {
        app: "steely-mainsail".to_string(),
        ptype: ptype.to_string(),
        release: 4,
        hash: drycc_model::naming::template_hash("steely-mainsail", ptype, 4, 0),
        artifact: Artifact::Image(ImageSpec {
            reference: "registry.example/steely-mainsail:v4".to_string(),
            entrypoint: vec!["/runner/init".to_string()],
            port: 5000,
            credentials: None,
        }),
        command: Command::Line(command.to_string()),
        env: env(),
        grace_period: Duration::from_secs(30),
        readiness: None,
        liveness: None,
        cpu_millis: None,
        memory_bytes: None,
        user: None,
    }
}

fn web() -> ProcessTemplate {
    let mut web = template("web", "gunicorn -b 0.0.0.0:$PORT shop.wsgi");
    web.cpu_millis = Some(500);
    web.memory_bytes = Some(512 * 1024 * 1024);
    web.liveness = Some(Probe {
        action: ProbeAction::Http {
            path: "/healthz".to_string(),
            port: None,
        },
        initial_delay: Duration::from_secs(10),
        period: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
        failure_threshold: 3,
    });
    web
}

fn worker() -> ProcessTemplate {
    let mut worker = template("worker", "celery -A shop worker -Q \"${QUEUE}\"");
    worker.grace_period = Duration::from_secs(60);
    worker.readiness = Some(Probe {
        action: ProbeAction::Exec {
            command: vec!["celery".into(), "inspect".into(), "ping".into()],
        },
        initial_delay: Duration::from_secs(5),
        period: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        failure_threshold: 3,
    });
    worker
}

fn compare(file: &str, object: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    let mut rendered = serde_json::to_string_pretty(object).expect("serialises");
    rendered.push('\n');
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &rendered).expect("writes the golden file");
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        golden == rendered,
        "{} differs from what is rendered now (UPDATE_GOLDEN=1 rewrites it):\n{rendered}",
        path.display()
    );
}

#[test]
fn a_web_and_worker_app_renders_as_the_golden_files() {
    let settings = settings();
    let (web, worker) = (web(), worker());
    compare(
        "namespace.json",
        &manifests::namespace("steely-mainsail", &settings),
    );
    compare("secret-web.json", &manifests::env_secret(&web));
    compare("secret-worker.json", &manifests::env_secret(&worker));
    let rollout = |replicas| Rollout {
        replicas: Some(replicas),
        restarted_at: None,
    };
    compare(
        "deployment-web.json",
        &manifests::deployment(&web, &settings, &rollout(2)).expect("renders"),
    );
    compare(
        "deployment-worker.json",
        &manifests::deployment(&worker, &settings, &rollout(1)).expect("renders"),
    );
    compare(
        "service.json",
        &manifests::service("steely-mainsail", manifests::port_of(&web, &settings)),
    );
    compare(
        "autoscaler-web.json",
        &manifests::autoscaler(
            "steely-mainsail",
            "web",
            &AutoscaleSpec {
                min: 2,
                max: 10,
                cpu_percent: 70,
                up_window: Duration::from_secs(0),
                down_window: Duration::from_secs(300),
            },
        ),
    );
}

#[test]
fn a_restarted_type_carries_restarted_at() {
    let rollout = Rollout {
        replicas: Some(2),
        restarted_at: Some("2026-12-03T14:00:00Z".to_string()),
    };
    let d = manifests::deployment(&web(), &settings(), &rollout).expect("renders");
    let annotations = d.spec.template.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations[manifests::RESTARTED_AT], "2026-12-03T14:00:00Z");
}
