//! The reconciler against a fake engine and a real SQLite store: what it
//! applies, removes and judges, as the services' waits see it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use drycc_store::{BuildRef, NewBuild, NewConfig, NewRelease, ReleaseState, Store};
use tokio_util::sync::CancellationToken;

use super::routes::RoutePublisher;
use super::wait;
use super::{DeployError, Images, Service};
use crate::context::Context;
use crate::reconciler::fake::FakeEngine;
use crate::reconciler::Reconciler;
use crate::role::Role;

const APP: &str = "steely-mainsail";

struct Setup {
    svc: Arc<Service>,
    engine: Arc<FakeEngine>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn setup(engine: FakeEngine, deploy_timeout: u64) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("drycc.db"))
        .await
        .expect("store");
    store
        .create_user("alice", "alice@example.com", "hash")
        .await
        .expect("user");
    store.create_app(APP, "alice").await.expect("app");
    let data_dir = dir.path().to_string_lossy().to_string();
    let timeout = deploy_timeout.to_string();
    let cli = crate::settings::Cli::try_parse_from([
        "drycc-controller",
        "--data-dir",
        &data_dir,
        "--deploy-timeout",
        &timeout,
    ])
    .expect("settings");
    let engine = Arc::new(engine);
    let svc = service(
        store,
        engine.clone(),
        cli.settings,
        dir.path(),
        crate::role::sole_leader("test"),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(crate::reconciler::run(
        svc.ctx.clone(),
        svc.reconciler.clone(),
        stop.clone(),
    ));
    Setup {
        svc,
        engine,
        stop,
        task,
        _dir: dir,
    }
}

/// The services of a controller on `store` and `engine`, in the role of
/// `role`.
fn service(
    store: Store,
    engine: Arc<FakeEngine>,
    settings: crate::settings::Settings,
    dir: &std::path::Path,
    role: tokio::sync::watch::Receiver<Role>,
) -> Arc<Service> {
    let ctx = Arc::new(Context::new(
        store,
        engine,
        settings,
        dir.to_path_buf(),
        false,
    ));
    Arc::new(Service::new(
        ctx,
        Reconciler::new(),
        Arc::new(RoutePublisher::new()),
        role,
        Images::new(None),
    ))
}

impl Setup {
    /// A deploy of `procfile` with `structure`, written as the API does.
    async fn deploy(&self, procfile: &[(&str, &str)], structure: &[(&str, u32)]) -> u32 {
        let release = self
            .svc
            .store
            .create_release(
                APP,
                NewRelease {
                    owner: "alice".into(),
                    summary: "alice deployed".into(),
                    build: BuildRef::New(NewBuild {
                        procfile: procfile
                            .iter()
                            .map(|(t, c)| (t.to_string(), c.to_string()))
                            .collect(),
                        ..NewBuild::default()
                    }),
                    config: NewConfig::default(),
                    structure: Some(structure.iter().map(|(t, n)| (t.to_string(), *n)).collect()),
                },
            )
            .await
            .expect("release");
        release.version
    }

    /// Enqueue the app and wait for the judgement of `version`.
    async fn judged(&self, version: u32) -> Result<(), DeployError> {
        let status = self.svc.reconciler.subscribe(APP);
        self.svc.reconciler.enqueue(APP);
        tokio::time::timeout(
            Duration::from_secs(20),
            wait::wait_release(&self.svc, APP, version, status),
        )
        .await
        .expect("judged in time")
    }

    async fn state_of(&self, version: u32) -> ReleaseState {
        self.svc
            .store
            .release(APP, version)
            .await
            .expect("store")
            .expect("release")
            .state
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("run loop ends");
    }
}

/// Poll `check` (a fake engine changes only when told to) for up to 10 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_pending_release_succeeds_once_every_type_has_converged() {
    let s = setup(FakeEngine::new(), 30).await;
    let v2 = s
        .deploy(&[("web", "serve"), ("worker", "work")], &[("web", 2)])
        .await;
    let status = s.svc.reconciler.subscribe(APP);
    s.svc.reconciler.enqueue(APP);
    until("web applied", || {
        s.engine
            .desired(APP, "web")
            .is_some_and(|d| d.replicas == 2)
    })
    .await;
    assert_eq!(s.engine.desired(APP, "worker").map(|d| d.replicas), Some(0));
    assert_eq!(s.state_of(v2).await, ReleaseState::Pending);
    // Started but not ready: still pending.
    s.engine.converge(APP, false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.state_of(v2).await, ReleaseState::Pending);
    s.engine.converge(APP, true);
    wait::wait_release(&s.svc, APP, v2, status)
        .await
        .expect("v2 rolls out");
    assert_eq!(s.state_of(v2).await, ReleaseState::Succeeded);
    s.stop().await;
}

#[tokio::test]
async fn a_timed_out_release_fails_and_the_last_good_one_runs_with_its_structure() {
    let s = setup(FakeEngine::new(), 1).await;
    let v2 = s.deploy(&[("web", "serve")], &[("web", 1)]).await;
    s.svc.reconciler.enqueue(APP);
    until("v2 applied", || s.engine.desired(APP, "web").is_some()).await;
    s.engine.converge(APP, true);
    s.judged(v2).await.expect("v2 rolls out");
    let good = s.engine.desired(APP, "web").expect("web");

    let v3 = s
        .deploy(
            &[("web", "serve v3"), ("worker", "work")],
            &[("web", 2), ("worker", 1)],
        )
        .await;
    let Err(DeployError::ReleaseFailed { version, reason }) = s.judged(v3).await else {
        panic!("v3 must fail");
    };
    assert_eq!(version, v3);
    assert!(
        reason.starts_with("processes did not become ready within 1 s: web: 0 of 2"),
        "{reason}"
    );
    let app = s.svc.store.get_app(APP).await.expect("store").expect("app");
    assert_eq!(app.structure, BTreeMap::from([("web".to_string(), 1)]));
    until("v2 applied again", || {
        s.engine.desired(APP, "web").as_ref() == Some(&good)
    })
    .await;
    // v3's worker is no type of v2: removed, though no process of it ran.
    until("worker removed", || {
        s.engine
            .calls()
            .iter()
            .any(|c| c == &format!("remove_type {APP}/worker"))
    })
    .await;
    assert!(s.engine.desired(APP, "worker").is_none());
    let events = s.svc.store.recent_events(APP, 100).await.expect("events");
    assert!(events.iter().any(|e| e
        .text
        .starts_with(&format!("v{v3} failed: processes did not become ready"))));
    s.stop().await;
}

#[tokio::test]
async fn an_engine_refusal_fails_a_pending_release_with_its_reason() {
    let mut engine = FakeEngine::new();
    engine.refuse_command = Some("bad".into());
    let s = setup(engine, 30).await;
    let v2 = s.deploy(&[("web", "bad")], &[("web", 1)]).await;
    let Err(error) = s.judged(v2).await else {
        panic!("v2 must fail");
    };
    // A failed release is the user's to mend (`http::error` answers 400).
    assert!(
        matches!(error, DeployError::ReleaseFailed { version: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "release v2 failed: invalid deployment: bad is refused"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_scale_during_a_pending_rollout_is_part_of_the_next_pass() {
    let s = setup(FakeEngine::new(), 300).await;
    let v2 = s.deploy(&[("web", "serve")], &[("web", 1)]).await;
    s.svc.reconciler.enqueue(APP);
    until("v2 applied", || s.engine.desired(APP, "web").is_some()).await;
    // web never becomes ready; scale it to 0 while v2 is pending.
    s.engine.converge(APP, false);
    s.svc
        .store
        .set_structure(APP, &BTreeMap::from([("web".to_string(), 0)]))
        .await
        .expect("structure");
    let status = s.svc.reconciler.subscribe(APP);
    let generation = s.svc.reconciler.enqueue(APP);
    let waiting = {
        let svc = s.svc.clone();
        tokio::spawn(async move {
            let types = BTreeSet::from(["web".to_string()]);
            wait::wait_types(&svc, APP, generation, &types, status).await
        })
    };
    until("web scaled to 0", || {
        s.engine
            .desired(APP, "web")
            .is_some_and(|d| d.replicas == 0)
    })
    .await;
    s.engine.converge(APP, true);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("scale converges")
        .expect("task")
        .expect("scale succeeds");
    // Nothing left to wait for: v2 rolled out.
    let status = s.svc.reconciler.subscribe(APP);
    wait::wait_release(&s.svc, APP, v2, status)
        .await
        .expect("v2 succeeded");
    s.stop().await;
}

#[tokio::test]
async fn what_the_store_no_longer_has_is_removed() {
    let s = setup(FakeEngine::new(), 30).await;
    // What a restarted controller finds: an app the store does not know,
    // and a type of a known app that its release does not have.
    s.engine.run_orphan("ghost", "web");
    s.engine.run_orphan(APP, "clock");
    s.svc.reconciler.enqueue("ghost");
    s.svc.reconciler.enqueue(APP);
    until("ghost removed", || {
        s.engine.calls().iter().any(|c| c == "remove_app ghost")
    })
    .await;
    until("clock removed", || {
        s.engine
            .calls()
            .iter()
            .any(|c| c == &format!("remove_type {APP}/clock"))
    })
    .await;
    // The gone app's queue entry and status go too.
    until("ghost forgotten", || {
        s.svc.reconciler.requested("ghost") == 0
    })
    .await;
    s.stop().await;
}

/// A follower replica beside the setup's leader: the same store and the
/// same engine (a cluster both see), its own reconciler never running.
fn a_follower(s: &Setup, engine: &str) -> (Arc<Service>, tokio::sync::watch::Sender<Role>) {
    let cli = crate::settings::Cli::try_parse_from([
        "drycc-controller",
        "--data-dir",
        &s._dir.path().to_string_lossy(),
        "--deploy-timeout",
        "30",
        "--engine",
        engine,
    ])
    .expect("settings");
    let (role, watch) = tokio::sync::watch::channel(Role {
        leader: false,
        holder: Some("the-leader".into()),
    });
    let follower = service(
        s.svc.store.clone(),
        s.engine.clone(),
        cli.settings,
        s._dir.path(),
        watch,
    );
    (follower, role)
}

#[tokio::test]
async fn a_follower_on_a_cluster_answers_a_scale_once_the_leader_has_rolled_it_out() {
    let s = setup(FakeEngine::new(), 30).await;
    let v2 = s.deploy(&[("web", "serve")], &[("web", 1)]).await;
    s.svc.reconciler.enqueue(APP);
    until("v2 applied", || s.engine.desired(APP, "web").is_some()).await;
    s.engine.converge(APP, true);
    s.judged(v2).await.expect("v2 rolls out");

    // A scale taken by a follower: written, and waited for until the
    // engine (what the leader applies) has converged.
    let (follower, _role) = a_follower(&s, "kubernetes");
    let counts = BTreeMap::from([("web".to_string(), 3)]);
    super::scale::write_structure(&follower, APP, &counts)
        .await
        .expect("structure written");
    let waiting = tokio::spawn({
        let follower = follower.clone();
        async move {
            let types = BTreeSet::from(["web".to_string()]);
            let status = follower.reconciler.subscribe(APP);
            let generation = follower.reconciler.enqueue(APP);
            wait::wait_types(&follower, APP, generation, &types, status).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing applied yet");
    assert_eq!(s.engine.desired(APP, "web").map(|d| d.replicas), Some(1));
    // The leader, told of the change, applies it; the processes converge.
    s.svc.reconciler.enqueue(APP);
    until("web=3 applied by the leader", || {
        s.engine
            .desired(APP, "web")
            .is_some_and(|d| d.replicas == 3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "applied, not yet running");
    s.engine.converge(APP, true);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered once converged")
        .expect("task")
        .expect("the scale converged");

    // With a local engine the leader's processes are not the follower's to
    // see: it answers once the change is written.
    let (local, _role) = a_follower(&s, "local");
    let types = BTreeSet::from(["web".to_string()]);
    let status = local.reconciler.subscribe(APP);
    let generation = local.reconciler.enqueue(APP);
    tokio::time::timeout(
        Duration::from_secs(1),
        wait::wait_types(&local, APP, generation, &types, status),
    )
    .await
    .expect("at once")
    .expect("ok");
    s.stop().await;
}
