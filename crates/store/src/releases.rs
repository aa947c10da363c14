//! Builds, configs and releases. A release is created with its new config
//! row (and optionally a new build row) in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor};

use crate::apps::{app_not_found, fetch_app, lock_app, touch_app};
use crate::codec::{json, now, ts, RowExt};
use crate::error::{Result, StoreError};
use crate::records::{Build, BuildRef, Config, NewRelease, Release, ReleaseState};
use crate::store::Store;

/// How often `create_release` starts over after losing a race for a version
/// number. The app row lock makes a loss unexpected; this is a backstop.
const VERSION_RACE_RETRIES: usize = 5;

const BUILD_COLUMNS: &str = "b.uuid AS b_uuid, b.app AS b_app, b.owner AS b_owner, \
     b.image AS b_image, b.stack AS b_stack, b.sha AS b_sha, b.procfile AS b_procfile, \
     b.dockerfile AS b_dockerfile, b.image_config AS b_image_config, b.created AS b_created, b.updated AS b_updated";

const CONFIG_COLUMNS: &str = "c.uuid AS c_uuid, c.app AS c_app, c.owner AS c_owner, \
     c.env_values AS c_values, c.cpu AS c_cpu, c.memory AS c_memory, \
     c.healthcheck AS c_healthcheck, c.termination_grace_period AS c_tgp, c.tags AS c_tags, c.registry AS c_registry, \
     c.created AS c_created, c.updated AS c_updated";

const RELEASE_COLUMNS: &str = "r.uuid AS r_uuid, r.app AS r_app, r.owner AS r_owner, \
     r.version AS r_version, r.summary AS r_summary, r.failed AS r_failed, \
     r.exception AS r_exception, r.state AS r_state, r.previous_structure AS r_previous, \
     r.created AS r_created, r.updated AS r_updated";

/// A release row with its build (if any) and config, selected with
/// the `r_`, `b_` and `c_` column prefixes.
fn release_select(filter: &str) -> String {
    format!(
        "SELECT {RELEASE_COLUMNS}, {BUILD_COLUMNS}, {CONFIG_COLUMNS} FROM releases r \
         LEFT JOIN builds b ON b.uuid = r.build_uuid \
         JOIN configs c ON c.uuid = r.config_uuid {filter}"
    )
}

fn build_from_row(row: &AnyRow) -> Result<Build> {
    Ok(Build {
        uuid: row.text("b_uuid")?,
        app: row.text("b_app")?,
        owner: row.text("b_owner")?,
        image: row.text("b_image")?,
        stack: row.text("b_stack")?,
        sha: row.text("b_sha")?,
        procfile: row.json("b_procfile")?,
        dockerfile: row.text("b_dockerfile")?,
        image_config: row
            .opt_text("b_image_config")?
            .map(|text| serde_json::from_str(&text))
            .transpose()?,
        created: row.time("b_created")?,
        updated: row.time("b_updated")?,
    })
}

fn config_from_row(row: &AnyRow) -> Result<Config> {
    Ok(Config {
        uuid: row.text("c_uuid")?,
        app: row.text("c_app")?,
        owner: row.text("c_owner")?,
        values: row.json("c_values")?,
        cpu: row.json("c_cpu")?,
        memory: row.json("c_memory")?,
        healthcheck: row.json("c_healthcheck")?,
        termination_grace_period: row.json("c_tgp")?,
        tags: row.json("c_tags")?,
        registry: row.json("c_registry")?,
        created: row.time("c_created")?,
        updated: row.time("c_updated")?,
    })
}

fn release_from_row(row: &AnyRow) -> Result<Release> {
    let build = match row.opt_text("b_uuid")? {
        Some(_) => Some(build_from_row(row)?),
        None => None,
    };
    let state = row.text("r_state")?;
    let state = ReleaseState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("release state {state:?} is unknown")))?;
    let previous_structure = match row.opt_text("r_previous")? {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    };
    Ok(Release {
        uuid: row.text("r_uuid")?,
        app: row.text("r_app")?,
        owner: row.text("r_owner")?,
        version: row.u32("r_version")?,
        summary: row.text("r_summary")?,
        build,
        config: config_from_row(row)?,
        state,
        failed: row.flag("r_failed")?,
        exception: row.text("r_exception")?,
        previous_structure,
        created: row.time("r_created")?,
        updated: row.time("r_updated")?,
    })
}

async fn fetch_release<'e, E>(ex: E, app: &str, version: u32) -> Result<Option<Release>>
where
    E: Executor<'e, Database = Any>,
{
    let sql = release_select("WHERE r.app = $1 AND r.version = $2");
    sqlx::query(&sql)
        .bind(app)
        .bind(i64::from(version))
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(release_from_row)
        .transpose()
}

async fn fetch_build(conn: &mut AnyConnection, app: &str, uuid: &str) -> Result<Option<Build>> {
    let sql = format!("SELECT {BUILD_COLUMNS} FROM builds b WHERE b.app = $1 AND b.uuid = $2");
    sqlx::query(&sql)
        .bind(app)
        .bind(uuid)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(build_from_row)
        .transpose()
}

/// Inserts the build (if new), the config and the release rows of `new` as
/// the next version of `app`. The caller owns the transaction and must hold
/// the app's lock (or have just created the app).
///
/// A release with a build starts `pending` (the reconciler judges its
/// rollout); one without a build has nothing to roll out and is
/// `succeeded` at once. `previous_structure` is the app's structure that
/// the release replaces, if it replaces it.
pub(crate) async fn insert_release(
    conn: &mut AnyConnection,
    app: &str,
    new: &NewRelease,
    previous_structure: Option<&BTreeMap<String, u32>>,
    at: &DateTime<Utc>,
) -> Result<Release> {
    let build = match &new.build {
        BuildRef::Keep(None) => None,
        BuildRef::Keep(Some(uuid)) => Some(
            fetch_build(conn, app, uuid)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("Build {uuid} not found")))?,
        ),
        BuildRef::New(nb) => {
            let build = Build {
                uuid: uuid::Uuid::new_v4().to_string(),
                app: app.to_string(),
                owner: new.owner.clone(),
                image: nb.image.clone(),
                stack: nb.stack.clone(),
                sha: nb.sha.clone(),
                procfile: nb.procfile.clone(),
                dockerfile: nb.dockerfile.clone(),
                image_config: nb.image_config.clone(),
                created: *at,
                updated: *at,
            };
            sqlx::query(
                "INSERT INTO builds (uuid, app, owner, image, stack, sha, procfile, dockerfile, \
                 image_config, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&build.uuid)
            .bind(&build.app)
            .bind(&build.owner)
            .bind(&build.image)
            .bind(&build.stack)
            .bind(&build.sha)
            .bind(json(&build.procfile)?)
            .bind(&build.dockerfile)
            .bind(build.image_config.as_ref().map(json).transpose()?)
            .bind(ts(at))
            .bind(ts(at))
            .execute(&mut *conn)
            .await?;
            Some(build)
        }
    };

    let c = &new.config;
    let config = Config {
        uuid: uuid::Uuid::new_v4().to_string(),
        app: app.to_string(),
        owner: new.owner.clone(),
        values: c.values.clone(),
        cpu: c.cpu.clone(),
        memory: c.memory.clone(),
        healthcheck: c.healthcheck.clone(),
        termination_grace_period: c.termination_grace_period.clone(),
        tags: c.tags.clone(),
        registry: c.registry.clone(),
        created: *at,
        updated: *at,
    };
    sqlx::query(
        "INSERT INTO configs (uuid, app, owner, env_values, cpu, memory, healthcheck, \
         termination_grace_period, tags, registry, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&config.uuid)
    .bind(&config.app)
    .bind(&config.owner)
    .bind(json(&config.values)?)
    .bind(json(&config.cpu)?)
    .bind(json(&config.memory)?)
    .bind(json(&config.healthcheck)?)
    .bind(json(&config.termination_grace_period)?)
    .bind(json(&config.tags)?)
    .bind(json(&config.registry)?)
    .bind(ts(at))
    .bind(ts(at))
    .execute(&mut *conn)
    .await?;

    let max = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM releases WHERE app = $1")
        .bind(app)
        .fetch_one(&mut *conn)
        .await?
        .int("v")?;
    let version = u32::try_from(max + 1)
        .map_err(|_| StoreError::Corrupt(format!("release version {max} out of range")))?;

    let release = Release {
        uuid: uuid::Uuid::new_v4().to_string(),
        app: app.to_string(),
        owner: new.owner.clone(),
        version,
        summary: new.summary.clone(),
        state: if build.is_some() {
            ReleaseState::Pending
        } else {
            ReleaseState::Succeeded
        },
        build,
        config,
        failed: false,
        exception: String::new(),
        previous_structure: previous_structure.cloned(),
        created: *at,
        updated: *at,
    };
    let previous = match &release.previous_structure {
        Some(structure) => Some(json(structure)?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO releases (uuid, app, owner, version, summary, build_uuid, config_uuid, \
         failed, exception, state, previous_structure, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&release.uuid)
    .bind(&release.app)
    .bind(&release.owner)
    .bind(i64::from(release.version))
    .bind(&release.summary)
    .bind(release.build.as_ref().map(|b| b.uuid.clone()))
    .bind(&release.config.uuid)
    .bind(0_i64)
    .bind(&release.exception)
    .bind(release.state.as_str())
    .bind(previous)
    .bind(ts(at))
    .bind(ts(at))
    .execute(&mut *conn)
    .await?;
    Ok(release)
}

impl Store {
    /// Creates the next release of `app` in one transaction: the new build
    /// row (for [`BuildRef::New`]), a new config row, the release with
    /// version = highest existing version + 1 (failed releases count, so
    /// versions are dense and never reused), the structure update if any, and
    /// the app's `updated` stamp.
    ///
    /// Errors: `NotFound` for a missing app or a kept build that is not one
    /// of the app's.
    pub async fn create_release(&self, app: &str, new: NewRelease) -> Result<Release> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_create_release(app, &new).await {
                Err(e) if e.is_unique_violation() && attempt < VERSION_RACE_RETRIES => {
                    tracing::debug!(app, attempt, "Lost a race for a release version; retrying.");
                }
                other => return other,
            }
        }
    }

    async fn try_create_release(&self, app: &str, new: &NewRelease) -> Result<Release> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        let at = now();
        let previous = match &new.structure {
            Some(_) => Some(
                fetch_app(&mut *tx, app)
                    .await?
                    .ok_or_else(|| app_not_found(app))?
                    .structure,
            ),
            None => None,
        };
        let release = insert_release(&mut tx, app, new, previous.as_ref(), &at).await?;
        // A newer release replaces one still rolling out (as a new
        // Deployment template replaces a rollout in progress): the older
        // one will never be judged, so it is failed now, with the reason.
        sqlx::query(
            "UPDATE releases SET state = 'failed', failed = 1, exception = $1, updated = $2 \
             WHERE app = $3 AND state = 'pending' AND version < $4",
        )
        .bind(format!(
            "superseded by v{} before it finished rolling out",
            release.version
        ))
        .bind(ts(&at))
        .bind(app)
        .bind(i64::from(release.version))
        .execute(&mut *tx)
        .await?;
        if let Some(structure) = &new.structure {
            sqlx::query("UPDATE apps SET structure = $1 WHERE id = $2")
                .bind(json(structure)?)
                .bind(app)
                .execute(&mut *tx)
                .await?;
        }
        touch_app(&mut tx, app, &at).await?;
        tx.commit().await?;
        Ok(release)
    }

    /// The release with the highest version (failed or not).
    ///
    /// Errors: `NotFound` when the app does not exist.
    pub async fn latest_release(&self, app: &str) -> Result<Release> {
        let sql = release_select("WHERE r.app = $1 ORDER BY r.version DESC LIMIT 1");
        sqlx::query(&sql)
            .bind(app)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(release_from_row)
            .transpose()?
            .ok_or_else(|| app_not_found(app))
    }

    /// The newest release that rolled out (`succeeded`), if any: what runs
    /// again when a newer release fails.
    pub async fn last_good_release(&self, app: &str) -> Result<Option<Release>> {
        self.newest_release(app, "r.state = 'succeeded'").await
    }

    /// The release the app should run: the newest that has not failed
    /// (`pending` or `succeeded`), if any.
    pub async fn desired_release(&self, app: &str) -> Result<Option<Release>> {
        self.newest_release(app, "r.state <> 'failed'").await
    }

    /// The newest release of `app` whose row matches `condition` (a fixed
    /// SQL condition, never user input).
    async fn newest_release(&self, app: &str, condition: &str) -> Result<Option<Release>> {
        let sql = release_select(&format!(
            "WHERE r.app = $1 AND {condition} ORDER BY r.version DESC LIMIT 1"
        ));
        sqlx::query(&sql)
            .bind(app)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(release_from_row)
            .transpose()
    }

    /// Release `version` of `app`, if any.
    pub async fn release(&self, app: &str, version: u32) -> Result<Option<Release>> {
        fetch_release(&self.pool, app, version).await
    }

    /// Every release of `app`, newest first (empty for a missing app).
    pub async fn list_releases(&self, app: &str) -> Result<Vec<Release>> {
        let sql = release_select("WHERE r.app = $1 ORDER BY r.version DESC");
        sqlx::query(&sql)
            .bind(app)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(release_from_row)
            .collect()
    }

    /// Every build of `app`, newest first (empty for a missing app). "Newest"
    /// is by the version of the release that introduced the build, which is
    /// dense and monotonic where clocks are not.
    pub async fn list_builds(&self, app: &str) -> Result<Vec<Build>> {
        let sql = format!(
            "SELECT {BUILD_COLUMNS} FROM builds b WHERE b.app = $1 ORDER BY \
             COALESCE((SELECT MIN(r.version) FROM releases r WHERE r.build_uuid = b.uuid), 0) DESC, \
             b.created DESC"
        );
        sqlx::query(&sql)
            .bind(app)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(build_from_row)
            .collect()
    }

    /// Marks release `version` of `app` failed with the reason `exception`.
    ///
    /// Errors: `NotFound` when there is no such release.
    pub async fn mark_release_failed(
        &self,
        app: &str,
        version: u32,
        exception: &str,
    ) -> Result<Release> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE releases SET state = 'failed', failed = 1, exception = $1, updated = $2 \
             WHERE app = $3 AND version = $4",
        )
        .bind(exception)
        .bind(ts(&now()))
        .bind(app)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Release v{version} of {app} not found"
            )));
        }
        let release = fetch_release(&mut *tx, app, version)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("Release v{version} of {app} not found"))
            })?;
        tx.commit().await?;
        Ok(release)
    }

    /// Marks the `pending` release `version` of `app` succeeded. Returns
    /// whether it was pending (a release judged already stays as it is).
    pub async fn mark_release_succeeded(&self, app: &str, version: u32) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE releases SET state = 'succeeded', updated = $1 \
             WHERE app = $2 AND version = $3 AND state = 'pending'",
        )
        .bind(ts(&now()))
        .bind(app)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Fails the `pending` release `version` of `app` with `exception` and,
    /// in the same transaction, gives the app back the structure the
    /// release replaced (if it replaced one). Returns the failed release, or
    /// `None` when it was not pending (judged already, or superseded).
    pub async fn fail_rollout(
        &self,
        app: &str,
        version: u32,
        exception: &str,
    ) -> Result<Option<Release>> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE releases SET state = 'failed', failed = 1, exception = $1, updated = $2 \
             WHERE app = $3 AND version = $4 AND state = 'pending'",
        )
        .bind(exception)
        .bind(ts(&at))
        .bind(app)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let release = fetch_release(&mut *tx, app, version)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("Release v{version} of {app} not found"))
            })?;
        if let Some(structure) = &release.previous_structure {
            sqlx::query("UPDATE apps SET structure = $1, updated = $2 WHERE id = $3")
                .bind(json(structure)?)
                .bind(ts(&at))
                .bind(app)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(release))
    }
}
