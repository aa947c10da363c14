//! The store's behaviour, against a real SQLite file in a temporary directory
//! and, when `DRYCC_TEST_DATABASE_URL` names a PostgreSQL server, against a
//! fresh PostgreSQL database per test. Every test body is a function of a
//! [`TestDb`]; the `backends!` macro runs each once per backend.

use std::collections::BTreeMap;
use std::error::Error;

use chrono::SubsecRound;
use drycc_store::{
    Backend, BuildRef, NewBuild, NewConfig, NewRelease, ReleaseState, Store, StoreError,
    EVENTS_KEPT,
};
use serde_json::json;
use sqlx::{Connection, Executor, Row};

type TestResult = Result<(), Box<dyn Error + Send + Sync>>;

const PG_URL_VAR: &str = "DRYCC_TEST_DATABASE_URL";

/// A fresh, empty, migrated database and how to reach it again.
struct TestDb {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("drycc.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::open_sqlite(&path).await.expect("open sqlite store");
        TestDb {
            store,
            url,
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// `None` (with a note on stdout) when no PostgreSQL server is configured.
    async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
            println!("note: {PG_URL_VAR} is not set; skipping the PostgreSQL backend");
            return None;
        };
        let name = format!("drycc_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to DRYCC_TEST_DATABASE_URL");
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        let url = with_database(&admin_url, &name);
        let store = Store::open(&url).await.expect("open postgres store");
        Some(TestDb {
            store,
            url,
            _dir: None,
            _pg: Some(PgDatabase { admin_url, name }),
        })
    }

    /// A second, independent store on the same database.
    async fn reopen(&self) -> Store {
        Store::open(&self.url).await.expect("reopen store")
    }
}

/// Drops its database when the test ends, passed or failed.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime; a fresh runtime on a fresh
        // thread may block.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin.execute(sql.as_str()).await?;
                admin.close().await?;
                Ok::<_, Box<dyn Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// `postgres://u:p@h:port/db?opts` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> super::TestResult {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> super::TestResult {
                    let Some(db) = super::TestDb::postgres().await else {
                        return Ok(());
                    };
                    super::$name(&db).await
                }
            )*
        }
    };
}

backends!(
    user_token_lifecycle,
    first_user_is_superuser,
    concurrent_first_users_make_one_superuser,
    create_app_makes_v1_and_settings,
    releases_are_dense_including_failed,
    concurrent_releases_have_no_gaps,
    structure_and_restart_generations,
    delete_app_removes_everything,
    perms,
    settings,
    reopen_sees_the_same_data,
    release_states_follow_the_rollout,
    migration_keeps_old_releases_good,
    events_are_bounded_ordered_and_go_with_the_app,
    an_image_build_keeps_its_image_config,
    domains_are_unique_across_apps_and_go_with_the_app,
    certs_attach_to_domains_and_let_go_of_them,
    changes_announced_by_one_store_reach_the_listeners_of_another,
    apps_get_user_ids_of_their_own,
);

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn new_build(image: &str, types: &[&str]) -> NewBuild {
    NewBuild {
        image: image.to_string(),
        stack: "container".to_string(),
        sha: String::new(),
        procfile: types
            .iter()
            .map(|t| (t.to_string(), format!("run-{t}")))
            .collect(),
        dockerfile: String::new(),
        image_config: None,
    }
}

fn deploy(owner: &str, image: &str) -> NewRelease {
    NewRelease {
        owner: owner.to_string(),
        summary: format!("{owner} deployed {image}"),
        build: BuildRef::New(new_build(image, &["web"])),
        config: NewConfig::default(),
        structure: None,
    }
}

/// A user `alice` (the admin) and her app `steely-mainsail`.
async fn alice_and_app(store: &Store) -> Result<(), StoreError> {
    store
        .create_user("alice", "alice@example.com", "hash-a")
        .await?;
    store.create_app("steely-mainsail", "alice").await?;
    Ok(())
}

async fn count_rows(store: &Store, table: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(store.pool())
        .await?;
    row.try_get::<i64, _>("n")
}

async fn user_token_lifecycle(db: &TestDb) -> TestResult {
    let s = &db.store;
    let alice = s
        .create_user("alice", "alice@example.com", "hash-a")
        .await?;
    assert_eq!(s.user_by_name("alice").await?, Some(alice.clone()));
    assert_eq!(s.user_by_id(&alice.id).await?, Some(alice.clone()));
    assert_eq!(s.user_by_name("nobody").await?, None);

    let later = chrono::Utc::now() + chrono::Duration::days(30);
    let later = later.trunc_subsecs(6);
    let hash = "a".repeat(64);
    assert_eq!(s.token_by_hash(&hash).await?, None);
    s.create_token(&alice.id, &hash, later).await?;
    let token = s.token_by_hash(&hash).await?.ok_or("the token")?;
    assert_eq!(token.user, alice);
    assert_eq!(token.expires, Some(later));
    assert!(token.created <= chrono::Utc::now());
    assert!(matches!(
        s.create_token(&alice.id, &hash, later).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_token("no-such-user", &"b".repeat(64), later).await,
        Err(StoreError::NotFound(_))
    ));

    // A second token for the same user is independent of the first.
    let other = "c".repeat(64);
    s.create_token(&alice.id, &other, later).await?;
    assert!(s.delete_token(&hash).await?);
    assert!(!s.delete_token(&hash).await?);
    assert_eq!(s.token_by_hash(&hash).await?, None);
    assert_eq!(
        s.token_by_hash(&other).await?.map(|t| t.user),
        Some(alice.clone())
    );

    // Expired tokens are forgotten, valid ones and old ones without an
    // expiry stay.
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(1);
    s.create_token(&alice.id, &"d".repeat(64), earlier).await?;
    sqlx::query("INSERT INTO tokens (token_hash, user_id, created) VALUES ('e', $1, $2)")
        .bind(&alice.id)
        .bind("2020-01-01T00:00:00.000000Z")
        .execute(s.pool())
        .await?;
    let old = s.token_by_hash("e").await?.ok_or("the old token")?;
    assert_eq!(old.expires, None);
    assert_eq!(s.delete_expired_tokens(chrono::Utc::now()).await?, 1);
    assert_eq!(s.token_by_hash(&"d".repeat(64)).await?, None);
    assert!(s.token_by_hash(&other).await?.is_some());

    // Revoking a user's tokens revokes them all, and nobody else's.
    let bob = s.create_user("bob", "", "hash-b").await?;
    s.create_token(&bob.id, &"f".repeat(64), later).await?;
    assert_eq!(s.delete_user_tokens(&alice.id).await?, 2);
    assert_eq!(s.token_by_hash(&other).await?, None);
    assert_eq!(s.token_by_hash("e").await?, None);
    assert_eq!(s.delete_user_tokens(&alice.id).await?, 0);
    assert!(s.token_by_hash(&"f".repeat(64)).await?.is_some());
    Ok(())
}

async fn first_user_is_superuser(db: &TestDb) -> TestResult {
    let s = &db.store;
    assert_eq!(s.user_count().await?, 0);
    let first = s
        .create_user("alice", "alice@example.com", "hash-a")
        .await?;
    let second = s.create_user("bob", "", "hash-b").await?;
    assert!(first.is_superuser);
    assert!(!second.is_superuser);
    match s.create_user("alice", "other@example.com", "hash-c").await {
        Err(StoreError::Conflict(msg)) => assert_eq!(msg, "username already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.user_count().await?, 2);
    let names: Vec<String> = s
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    Ok(())
}

async fn concurrent_first_users_make_one_superuser(db: &TestDb) -> TestResult {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_user(&format!("user{i}"), "", "hash").await
        }));
    }
    let mut admins = 0;
    for t in tasks {
        if t.await??.is_superuser {
            admins += 1;
        }
    }
    assert_eq!(admins, 1);
    assert_eq!(db.store.user_count().await?, 10);
    Ok(())
}

async fn create_app_makes_v1_and_settings(db: &TestDb) -> TestResult {
    let s = &db.store;
    s.create_user("alice", "alice@example.com", "hash-a")
        .await?;
    let app = s.create_app("steely-mainsail", "alice").await?;
    assert_eq!(app.id, "steely-mainsail");
    assert_eq!(app.owner, "alice");
    assert!(app.structure.is_empty());
    assert_eq!(s.get_app("steely-mainsail").await?, Some(app.clone()));
    assert_eq!(s.get_app("nope-nope").await?, None);

    let v1 = s.latest_release("steely-mainsail").await?;
    assert_eq!(v1.version, 1);
    assert_eq!(v1.summary, "alice created initial release");
    assert_eq!(v1.owner, "alice");
    assert!(v1.build.is_none());
    assert!(!v1.failed);
    assert!(v1.config.values.is_empty());
    assert_eq!(v1.config.healthcheck, json!({}));
    assert_eq!(s.release("steely-mainsail", 1).await?, Some(v1.clone()));
    assert_eq!(s.list_releases("steely-mainsail").await?, vec![v1.clone()]);
    assert!(s.list_builds("steely-mainsail").await?.is_empty());

    let settings = s.get_settings("steely-mainsail").await?;
    assert!(settings.autoscale.is_empty());
    assert!(settings.routable);
    assert_eq!(settings.owner, "alice");

    match s.create_app("steely-mainsail", "alice").await {
        Err(StoreError::Conflict(msg)) => {
            assert_eq!(msg, "Application with this id already exists.")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        s.create_app("scenic-icehouse", "nobody").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.latest_release("scenic-icehouse").await,
        Err(StoreError::NotFound(_))
    ));

    s.create_app("aaaa-first", "alice").await?;
    let ids: Vec<String> = s.list_apps().await?.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["aaaa-first", "steely-mainsail"]);
    Ok(())
}

async fn releases_are_dense_including_failed(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    let before = s.get_app(app).await?.ok_or("app")?;

    let mut v2 = deploy("alice", "nginx:1");
    v2.structure = Some(map(&[("web", 1u32)]));
    let v2 = s.create_release(app, v2).await?;
    assert_eq!(v2.version, 2);
    let build = v2.build.clone().ok_or("v2 has a build")?;
    assert_eq!(build.image, "nginx:1");
    assert_eq!(build.owner, "alice");
    assert_eq!(build.procfile, map(&[("web", "run-web".to_string())]));
    let after = s.get_app(app).await?.ok_or("app")?;
    assert_eq!(after.structure, map(&[("web", 1u32)]));
    assert!(after.updated >= before.updated);
    assert_eq!(after.updated, v2.created);

    let failed = s
        .mark_release_failed(app, 2, "web never became ready")
        .await?;
    assert!(failed.failed);
    assert_eq!(failed.exception, "web never became ready");
    assert_eq!(s.release(app, 2).await?, Some(failed.clone()));

    // A config change keeps the build and gets the next number after the
    // failed one.
    let mut config = NewConfig::from(&v2.config);
    config.values.insert("FOO".into(), "bar".into());
    config.cpu.insert("web".into(), "500m".into());
    config.memory.insert("web".into(), "512M".into());
    config.termination_grace_period.insert("web".into(), 60);
    config.healthcheck = json!({"web": {"readinessProbe": {"tcpSocket": {"port": 5000}}}});
    config.tags.insert("zone".into(), "a".into());
    let v3 = s
        .create_release(
            app,
            NewRelease {
                owner: "alice".into(),
                summary: "alice added FOO".into(),
                build: BuildRef::Keep(Some(build.uuid.clone())),
                config: config.clone(),
                structure: None,
            },
        )
        .await?;
    assert_eq!(v3.version, 3);
    assert_eq!(v3.build.as_ref(), Some(&build));
    assert_eq!(NewConfig::from(&v3.config), config);
    assert_ne!(v3.config.uuid, v2.config.uuid);
    // No structure given: unchanged.
    assert_eq!(
        s.get_app(app).await?.ok_or("app")?.structure,
        map(&[("web", 1u32)])
    );

    // A failed attempt (unknown build) consumes no version.
    let bogus = NewRelease {
        build: BuildRef::Keep(Some("no-such-build".into())),
        ..deploy("alice", "x")
    };
    assert!(matches!(
        s.create_release(app, bogus).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.mark_release_succeeded(app, 3).await?);
    let v4 = s.create_release(app, deploy("alice", "nginx:2")).await?;
    assert_eq!(v4.version, 4);
    s.mark_release_failed(app, 4, "crashed").await?;

    let versions: Vec<u32> = s
        .list_releases(app)
        .await?
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, [4, 3, 2, 1]);
    assert_eq!(s.latest_release(app).await?.version, 4);
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(3));
    let images: Vec<String> = s
        .list_builds(app)
        .await?
        .into_iter()
        .map(|b| b.image)
        .collect();
    assert_eq!(images, ["nginx:2", "nginx:1"]);

    // A build of another app cannot be kept.
    s.create_app("scenic-icehouse", "alice").await?;
    let foreign = NewRelease {
        build: BuildRef::Keep(Some(build.uuid.clone())),
        ..deploy("alice", "x")
    };
    assert!(matches!(
        s.create_release("scenic-icehouse", foreign).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_release("no-such-app", deploy("alice", "x")).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.release(app, 99).await?, None);
    assert!(matches!(
        s.mark_release_failed(app, 99, "x").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn concurrent_releases_have_no_gaps(db: &TestDb) -> TestResult {
    alice_and_app(&db.store).await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_release("steely-mainsail", deploy("alice", &format!("img:{i}")))
                .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await??.version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<u32>>());
    let listed: Vec<u32> = db
        .store
        .list_releases("steely-mainsail")
        .await?
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(listed, (1..=21).rev().collect::<Vec<u32>>());
    Ok(())
}

async fn structure_and_restart_generations(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = s
        .set_structure("steely-mainsail", &map(&[("web", 5u32), ("worker", 2)]))
        .await?;
    assert_eq!(app.structure, map(&[("web", 5u32), ("worker", 2)]));
    assert!(app.restart_generations.is_empty());

    let app = s
        .bump_restart_generation("steely-mainsail", &["web".into()])
        .await?;
    assert_eq!(app.restart_generations, map(&[("web", 1u64)]));
    let app = s
        .bump_restart_generation("steely-mainsail", &["web".into(), "worker".into()])
        .await?;
    assert_eq!(
        app.restart_generations,
        map(&[("web", 2u64), ("worker", 1)])
    );
    assert_eq!(s.get_app("steely-mainsail").await?, Some(app));
    // Neither creates a release.
    assert_eq!(s.latest_release("steely-mainsail").await?.version, 1);

    assert!(matches!(
        s.set_structure("no-such-app", &BTreeMap::new()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.bump_restart_generation("no-such-app", &[]).await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn delete_app_removes_everything(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    s.create_user("bob", "", "hash-b").await?;
    let app = "steely-mainsail";
    s.create_release(app, deploy("alice", "nginx:1")).await?;
    s.create_release(app, deploy("alice", "nginx:2")).await?;
    s.grant(app, "bob").await?;
    s.put_settings(
        app,
        "alice",
        &map(&[("web", json!({"min": 1, "max": 3, "cpu_percent": 50}))]),
        None,
    )
    .await?;

    s.record_event(app, "deployed").await?;
    s.add_domain(app, "alice", "www.example.com").await?;
    s.delete_app(app).await?;
    assert_eq!(s.get_app(app).await?, None);
    assert!(s.list_releases(app).await?.is_empty());
    assert!(s.list_builds(app).await?.is_empty());
    assert!(s.list_perms(app).await?.is_empty());
    assert!(matches!(
        s.get_settings(app).await,
        Err(StoreError::NotFound(_))
    ));
    for table in [
        "apps",
        "builds",
        "configs",
        "releases",
        "settings",
        "app_perms",
        "app_events",
        "domains",
    ] {
        assert_eq!(count_rows(s, table).await?, 0, "rows left in {table}");
    }
    // The users stay.
    assert_eq!(s.user_count().await?, 2);
    assert!(matches!(
        s.delete_app(app).await,
        Err(StoreError::NotFound(_))
    ));

    // The name can be used again, from v1.
    s.create_app(app, "bob").await?;
    assert_eq!(s.latest_release(app).await?.version, 1);
    Ok(())
}

async fn perms(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    s.create_user("bob", "", "hash-b").await?;
    s.create_user("carol", "", "hash-c").await?;
    let app = "steely-mainsail";

    assert!(s.list_perms(app).await?.is_empty());
    assert!(!s.has_perm(app, "bob").await?);
    s.grant(app, "carol").await?;
    s.grant(app, "bob").await?;
    s.grant(app, "bob").await?;
    assert_eq!(s.list_perms(app).await?, ["bob", "carol"]);
    assert!(s.has_perm(app, "bob").await?);
    // Ownership is not a grant.
    assert!(!s.has_perm(app, "alice").await?);

    assert!(s.revoke(app, "bob").await?);
    assert!(!s.revoke(app, "bob").await?);
    assert!(!s.has_perm(app, "bob").await?);
    assert_eq!(s.list_perms(app).await?, ["carol"]);

    assert!(matches!(
        s.grant(app, "nobody").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.grant("no-such-app", "bob").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn settings(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    s.create_user("bob", "", "hash-b").await?;
    let app = "steely-mainsail";
    let initial = s.get_settings(app).await?;

    let rules = map(&[("web", json!({"min": 3, "max": 8, "cpu_percent": 75}))]);
    let put = s.put_settings(app, "bob", &rules, None).await?;
    assert_eq!(put.autoscale, rules);
    assert_eq!(put.owner, "bob");
    assert_eq!(put.uuid, initial.uuid);
    assert_eq!(put.created, initial.created);
    assert!(put.routable);
    assert_eq!(s.get_settings(app).await?, put);

    let cleared = s
        .put_settings(app, "alice", &BTreeMap::new(), Some(false))
        .await?;
    assert!(cleared.autoscale.is_empty());
    assert!(!cleared.routable);
    // Settings create no release.
    assert_eq!(s.latest_release(app).await?.version, 1);
    assert!(matches!(
        s.put_settings("no-such-app", "alice", &rules, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.get_settings("no-such-app").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn reopen_sees_the_same_data(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).trunc_subsecs(6);
    s.create_token(
        &s.user_by_name("alice").await?.ok_or("alice")?.id,
        "f00d",
        expires,
    )
    .await?;
    let mut release = deploy("alice", "nginx:1");
    release.config.values.insert("FOO".into(), "bar".into());
    release.structure = Some(map(&[("web", 2u32)]));
    s.create_release(app, release).await?;
    s.mark_release_failed(app, 2, "boom").await?;
    s.create_user("bob", "", "hash-b").await?;
    s.grant(app, "bob").await?;

    let apps = s.list_apps().await?;
    let releases = s.list_releases(app).await?;
    let builds = s.list_builds(app).await?;
    let settings = s.get_settings(app).await?;
    let alice = s.user_by_name("alice").await?;
    s.close().await;

    let again = db.reopen().await;
    assert_eq!(again.list_apps().await?, apps);
    assert_eq!(again.list_releases(app).await?, releases);
    assert_eq!(again.list_builds(app).await?, builds);
    assert_eq!(again.get_settings(app).await?, settings);
    assert_eq!(again.user_by_name("alice").await?, alice);
    let token = again.token_by_hash("f00d").await?;
    assert_eq!(token.as_ref().map(|t| &t.user), alice.as_ref());
    assert_eq!(token.and_then(|t| t.expires), Some(expires));
    assert_eq!(again.list_perms(app).await?, ["bob"]);
    // Migrations ran once; a third open is as good.
    let third = db.reopen().await;
    assert_eq!(third.latest_release(app).await?.version, 2);
    Ok(())
}

async fn release_states_follow_the_rollout(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    // v1 has no build: nothing to roll out, good at once.
    let v1 = s.latest_release(app).await?;
    assert_eq!(v1.state, ReleaseState::Succeeded);
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(1));

    // A deploy that sets the structure is pending and remembers the old one.
    s.set_structure(app, &map(&[("web", 3u32)])).await?;
    let mut new = deploy("alice", "nginx:1");
    new.structure = Some(map(&[("web", 3u32), ("worker", 0)]));
    let v2 = s.create_release(app, new).await?;
    assert_eq!(v2.state, ReleaseState::Pending);
    assert!(!v2.failed);
    assert_eq!(v2.previous_structure, Some(map(&[("web", 3u32)])));
    assert_eq!(s.desired_release(app).await?.map(|r| r.version), Some(2));
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(1));

    // Judged good once; judging again changes nothing.
    assert!(s.mark_release_succeeded(app, 2).await?);
    assert!(!s.mark_release_succeeded(app, 2).await?);
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(2));
    assert_eq!(s.fail_rollout(app, 2, "late").await?, None);

    // A config change keeps the structure (nothing to restore).
    let v3 = s
        .create_release(
            app,
            NewRelease {
                build: BuildRef::Keep(v2.build.as_ref().map(|b| b.uuid.clone())),
                structure: None,
                ..deploy("alice", "x")
            },
        )
        .await?;
    assert_eq!(v3.previous_structure, None);

    // A newer release supersedes a pending one.
    s.set_structure(app, &map(&[("web", 1u32)])).await?;
    let mut v4 = deploy("alice", "nginx:2");
    v4.structure = Some(map(&[("web", 5u32)]));
    let v4 = s.create_release(app, v4).await?;
    let v3 = s.release(app, 3).await?.ok_or("v3")?;
    assert_eq!(v3.state, ReleaseState::Failed);
    assert!(v3.failed);
    assert_eq!(
        v3.exception,
        "superseded by v4 before it finished rolling out"
    );
    assert_eq!(s.desired_release(app).await?.map(|r| r.version), Some(4));

    // A failed rollout gives the app its structure back, in one step.
    assert_eq!(
        s.get_app(app).await?.ok_or("app")?.structure,
        map(&[("web", 5u32)])
    );
    let failed = s
        .fail_rollout(app, v4.version, "web never became ready")
        .await?
        .ok_or("v4 was pending")?;
    assert_eq!(failed.state, ReleaseState::Failed);
    assert!(failed.failed);
    assert_eq!(failed.exception, "web never became ready");
    assert_eq!(
        s.get_app(app).await?.ok_or("app")?.structure,
        map(&[("web", 1u32)])
    );
    assert_eq!(s.fail_rollout(app, v4.version, "again").await?, None);
    assert_eq!(s.desired_release(app).await?.map(|r| r.version), Some(2));
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(2));
    assert!(matches!(
        s.fail_rollout("no-such-app", 1, "x").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

/// Releases written before the state column existed: failed ones stay
/// failed, every other one counts as rolled out.
async fn migration_keeps_old_releases_good(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    s.create_release(app, deploy("alice", "nginx:1")).await?;
    s.mark_release_succeeded(app, 2).await?;
    s.create_release(app, deploy("alice", "nginx:2")).await?;
    s.mark_release_failed(app, 3, "crashed").await?;
    // Replay the migration's data step on rows that look pre-migration.
    sqlx::query("UPDATE releases SET state = 'succeeded'")
        .execute(s.pool())
        .await?;
    let migration = include_str!("../migrations/0002_release_state.sql");
    let update = migration
        .lines()
        .find(|l| l.starts_with("UPDATE releases"))
        .ok_or("the migration updates releases")?;
    sqlx::query(update).execute(s.pool()).await?;
    let states: Vec<(u32, ReleaseState)> = s
        .list_releases(app)
        .await?
        .iter()
        .map(|r| (r.version, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (3, ReleaseState::Failed),
            (2, ReleaseState::Succeeded),
            (1, ReleaseState::Succeeded)
        ]
    );
    assert_eq!(s.last_good_release(app).await?.map(|r| r.version), Some(2));
    Ok(())
}

// SQLite only.

#[tokio::test]
async fn sqlite_wal_mode_and_foreign_keys_are_on() -> TestResult {
    let db = TestDb::sqlite().await;
    assert_eq!(db.store.backend(), Backend::Sqlite);
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(db.store.pool())
        .await?
        .try_get(0)?;
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(db.store.pool())
        .await?
        .try_get(0)?;
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(db.store.pool())
        .await?
        .try_get(0)?;
    assert_eq!(busy, 5000);
    // And it stays WAL for the next process that opens the file.
    db.store.close().await;
    let again = db.reopen().await;
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(again.pool())
        .await?
        .try_get(0)?;
    assert_eq!(mode, "wal");
    Ok(())
}

#[tokio::test]
async fn sqlite_in_memory_works() -> TestResult {
    let s = Store::open("sqlite::memory:").await?;
    alice_and_app(&s).await?;
    assert_eq!(s.latest_release("steely-mainsail").await?.version, 1);
    Ok(())
}

#[tokio::test]
async fn unsupported_url_is_an_error() {
    assert!(matches!(
        Store::open("mysql://localhost/db").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5433/postgres", "x"),
        "postgres://u:p@127.0.0.1:5433/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

#[test]
fn postgres_backend_is_detected() {
    assert_eq!(
        Backend::from_url("postgres://u@h/db").ok(),
        Some(Backend::Postgres)
    );
}

/// What one controller announces reaches another's listener (PostgreSQL);
/// SQLite has nobody to tell, and announcing there is no error.
async fn changes_announced_by_one_store_reach_the_listeners_of_another(db: &TestDb) -> TestResult {
    let other = db.reopen().await;
    let Some(mut changes) = other.listen_changes().await? else {
        assert_eq!(db.store.backend(), Backend::Sqlite);
        db.store.announce_change("steely-mainsail").await?;
        return Ok(());
    };
    db.store.announce_change("steely-mainsail").await?;
    db.store.announce_change("other-app").await?;
    let within = std::time::Duration::from_secs(10);
    let first = tokio::time::timeout(within, changes.next()).await??;
    let second = tokio::time::timeout(within, changes.next()).await??;
    assert_eq!(first.as_deref(), Some("steely-mainsail"));
    assert_eq!(second.as_deref(), Some("other-app"));
    Ok(())
}

async fn events_are_bounded_ordered_and_go_with_the_app(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    assert!(s.recent_events(app, 10).await?.is_empty());
    for i in 0..EVENTS_KEPT + 5 {
        s.record_event(app, &format!("event {i}")).await?;
    }
    let last = s.recent_events(app, 3).await?;
    let texts: Vec<&str> = last.iter().map(|e| e.text.as_str()).collect();
    let n = EVENTS_KEPT + 5;
    assert_eq!(
        texts,
        [
            format!("event {}", n - 3),
            format!("event {}", n - 2),
            format!("event {}", n - 1)
        ]
    );
    assert!(last.windows(2).all(|w| w[0].created <= w[1].created));
    let all = s.recent_events(app, usize::MAX).await?;
    assert_eq!(all.len(), EVENTS_KEPT);
    assert_eq!(all[0].text, "event 5");
    assert!(matches!(
        s.record_event("no-such-app", "x").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn an_image_build_keeps_its_image_config(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    let config = json!({"entrypoint": ["/bin/boot"], "cmd": ["serve"], "exposed_ports": [5000]});
    let mut build = new_build("127.0.0.1:5000/example:1", &["web"]);
    build.image_config = Some(config.clone());
    let mut release = deploy("alice", "example:1");
    release.build = BuildRef::New(build);
    let v2 = s.create_release(app, release).await?;
    assert_eq!(
        v2.build.as_ref().unwrap().image_config,
        Some(config.clone())
    );
    let read = s.latest_release(app).await?;
    assert_eq!(read.build.unwrap().image_config, Some(config));
    assert_eq!(
        s.list_builds(app).await?[0].image_config.as_ref().unwrap()["cmd"][0],
        "serve"
    );
    Ok(())
}

async fn domains_are_unique_across_apps_and_go_with_the_app(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    s.create_app("other-app", "alice").await?;
    assert!(s.list_domains(app).await?.is_empty());

    let added = s.add_domain(app, "alice", "www.example.com").await?;
    assert_eq!(
        (
            added.app.as_str(),
            added.owner.as_str(),
            added.domain.as_str()
        ),
        (app, "alice", "www.example.com")
    );
    s.add_domain(app, "alice", "api.example.com").await?;
    let names: Vec<String> = s
        .list_domains(app)
        .await?
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(names, ["api.example.com", "www.example.com"]);
    assert_eq!(s.list_domains(app).await?[1], added);

    // Twice, or by another app: a conflict.
    assert!(matches!(
        s.add_domain(app, "alice", "www.example.com").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_domain("other-app", "alice", "www.example.com").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_domain("no-such-app", "alice", "x.example.com").await,
        Err(StoreError::NotFound(_))
    ));
    s.add_domain("other-app", "alice", "other.example.com")
        .await?;
    assert_eq!(s.all_domains().await?.len(), 3);

    // Removing: only from the app that has it.
    assert!(!s.remove_domain("other-app", "www.example.com").await?);
    assert!(s.remove_domain(app, "www.example.com").await?);
    assert!(!s.remove_domain(app, "www.example.com").await?);
    s.add_domain("other-app", "alice", "www.example.com")
        .await?;

    // Another store on the same database sees them; deleting the app takes
    // its domains, and frees them.
    assert_eq!(db.reopen().await.list_domains("other-app").await?.len(), 2);
    s.delete_app("other-app").await?;
    assert_eq!(s.all_domains().await?.len(), 1);
    s.add_domain(app, "alice", "www.example.com").await?;
    Ok(())
}

async fn certs_attach_to_domains_and_let_go_of_them(db: &TestDb) -> TestResult {
    let s = &db.store;
    alice_and_app(s).await?;
    let app = "steely-mainsail";
    s.add_domain(app, "alice", "www.example.com").await?;
    s.add_domain(app, "alice", "api.example.com").await?;

    let cert = s.create_cert("www", "alice", "CERT PEM", "KEY PEM").await?;
    assert_eq!(
        (cert.owner.as_str(), cert.key.as_str()),
        ("alice", "KEY PEM")
    );
    assert!(!format!("{cert:?}").contains("KEY PEM"));
    assert!(matches!(
        s.create_cert("www", "alice", "x", "y").await,
        Err(StoreError::Conflict(_))
    ));

    s.attach_cert("www", "www.example.com").await?;
    s.attach_cert("www", "api.example.com").await?;
    assert!(matches!(
        s.attach_cert("www", "nowhere.example.com").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.attach_cert("nope", "www.example.com").await,
        Err(StoreError::NotFound(_))
    ));
    let read = s.get_cert("www").await?.expect("cert");
    assert_eq!(read.domains, ["api.example.com", "www.example.com"]);
    assert_eq!(read.certificate, "CERT PEM");
    assert_eq!(
        s.get_domain("www.example.com")
            .await?
            .and_then(|d| d.certificate),
        Some("www".to_string())
    );
    assert_eq!(s.list_certs().await?.len(), 1);

    assert!(s.detach_cert("www", "api.example.com").await?);
    assert!(!s.detach_cert("www", "api.example.com").await?);
    assert_eq!(s.list_certs().await?[0].domains, ["www.example.com"]);

    // Deleting the certificate leaves the domain without one.
    assert!(s.delete_cert("www").await?);
    assert!(!s.delete_cert("www").await?);
    assert_eq!(s.get_cert("www").await?, None);
    assert_eq!(
        s.get_domain("www.example.com")
            .await?
            .and_then(|d| d.certificate),
        None
    );
    // Deleting the app takes its domains, not the certificates.
    s.create_cert("again", "alice", "CERT PEM", "KEY PEM")
        .await?;
    s.attach_cert("again", "www.example.com").await?;
    s.delete_app(app).await?;
    assert!(s.get_cert("again").await?.expect("kept").domains.is_empty());
    Ok(())
}

async fn apps_get_user_ids_of_their_own(db: &TestDb) -> TestResult {
    let store = db.reopen().await.with_app_uids(500..=502);
    store.create_user("alice", "alice@example.com", "h").await?;
    let a = store.create_app("a", "alice").await?;
    let b = store.create_app("b", "alice").await?;
    assert_eq!((a.uid, b.uid), (Some(500), Some(501)));
    assert_eq!(store.get_app("a").await?.and_then(|app| app.uid), Some(500));
    // Concurrent creations never share an id.
    let (c, d) = tokio::join!(
        store.create_app("c", "alice"),
        store.create_app("d", "alice")
    );
    // The range has room for one of them only; the other is told so.
    let ids: Vec<Option<u32>> = [c, d]
        .into_iter()
        .filter_map(|made| match made {
            Ok(app) => Some(app.uid),
            Err(StoreError::Exhausted(_)) => None,
            Err(other) => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, [Some(502)]);
    let full = store.create_app("e", "alice").await;
    match full {
        Err(StoreError::Exhausted(message)) => assert!(message.contains("500-502"), "{message}"),
        other => panic!("expected a conflict naming the range, got {other:?}"),
    }
    // A duplicate name is still that conflict, not the range's.
    match store.create_app("a", "alice").await {
        Err(StoreError::Conflict(message)) => {
            assert_eq!(message, "Application with this id already exists.")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Apps from before ids existed get one at the next start.
    store.delete_app("b").await?;
    sqlx::query("UPDATE apps SET uid = NULL WHERE id = 'a'")
        .execute(store.pool())
        .await?;
    assert_eq!(store.assign_missing_app_uids().await?, 1);
    let a = store.get_app("a").await?.and_then(|app| app.uid);
    assert!(matches!(a, Some(500) | Some(501)), "{a:?}");
    assert_eq!(store.assign_missing_app_uids().await?, 0);
    Ok(())
}
