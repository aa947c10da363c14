//! Apps: creation (with release v1 and default settings), structure,
//! restart generations, deletion.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::codec::{json, now, ts, RowExt};
use crate::error::{conflict_if_unique, Result, StoreError};
use crate::records::{App, BuildRef, NewConfig, NewRelease};
use crate::store::Store;

const APP_COLUMNS: &str = "uuid, id, owner, structure, restart_generations, uid, created, updated";

/// The message of the 404 for a missing app (Django REST framework's).
pub(crate) fn app_not_found(app: &str) -> StoreError {
    StoreError::NotFound(format!("App {app} not found"))
}

fn app_from_row(row: &AnyRow) -> Result<App> {
    Ok(App {
        uuid: row.text("uuid")?,
        id: row.text("id")?,
        owner: row.text("owner")?,
        structure: row.json("structure")?,
        restart_generations: row.json("restart_generations")?,
        uid: match row.try_get::<Option<i64>, _>("uid")? {
            Some(v) => {
                Some(u32::try_from(v).map_err(|_| {
                    StoreError::Corrupt(format!("column uid: {v} is not a user id"))
                })?)
            }
            None => None,
        },
        created: row.time("created")?,
        updated: row.time("updated")?,
    })
}

pub(crate) async fn fetch_app<'e, E>(ex: E, id: &str) -> Result<Option<App>>
where
    E: Executor<'e, Database = Any>,
{
    let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(app_from_row)
        .transpose()
}

/// Takes the app's row lock for the rest of the transaction (PostgreSQL; on
/// SQLite the transaction already holds the database write lock), so
/// read-modify-write sequences on one app are serialized. `NotFound` when the
/// app does not exist.
pub(crate) async fn lock_app(conn: &mut AnyConnection, app: &str) -> Result<()> {
    let done = sqlx::query("UPDATE apps SET uuid = uuid WHERE id = $1")
        .bind(app)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(app_not_found(app));
    }
    Ok(())
}

pub(crate) async fn touch_app(
    conn: &mut AnyConnection,
    app: &str,
    at: &DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE apps SET updated = $1 WHERE id = $2")
        .bind(ts(at))
        .bind(app)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn user_exists(conn: &mut AnyConnection, username: &str) -> Result<bool> {
    let n = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&mut *conn)
        .await?
        .int("n")?;
    Ok(n > 0)
}

/// A user id of `range` that no app has: the one after the highest in
/// use (so an id freed by a destroyed app is not handed out again soon:
/// files it left behind outside its directories stay its own), else the
/// lowest free one once the top of the range is reached.
async fn allocate_uid(conn: &mut AnyConnection, range: &RangeInclusive<u32>) -> Result<u32> {
    let used: Vec<u32> =
        sqlx::query("SELECT uid FROM apps WHERE uid >= $1 AND uid <= $2 ORDER BY uid")
            .bind(i64::from(*range.start()))
            .bind(i64::from(*range.end()))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.u32("uid"))
            .collect::<Result<_>>()?;
    free_uid(&used, range).ok_or_else(|| {
        StoreError::Exhausted(format!(
            "every app user id of the range {}-{} is in use (DRYCC_APP_UID_RANGE): destroy unused apps or widen the range",
            range.start(),
            range.end()
        ))
    })
}

/// See [`allocate_uid`]; `used` is sorted and within `range`.
fn free_uid(used: &[u32], range: &RangeInclusive<u32>) -> Option<u32> {
    match used.last() {
        None => return Some(*range.start()),
        Some(&top) if top < *range.end() => return Some(top + 1),
        Some(_) => {}
    }
    let mut candidate = *range.start();
    for &uid in used {
        if uid > candidate {
            return Some(candidate);
        }
        candidate = uid.checked_add(1)?;
    }
    (candidate <= *range.end()).then_some(candidate)
}

impl Store {
    /// Creates app `id` owned by `owner`, and in the same transaction its
    /// release v1 (no build, empty config, summary
    /// `<owner> created initial release`) and its default settings.
    ///
    /// Errors: `Conflict("Application with this id already exists.")`,
    /// `NotFound` when `owner` is not a user.
    pub async fn create_app(&self, id: &str, owner: &str) -> Result<App> {
        let mut tx = self.begin_write().await?;
        self.lock_apps_table(&mut tx).await?;
        if !user_exists(&mut tx, owner).await? {
            return Err(StoreError::NotFound(format!("User {owner} not found")));
        }
        if fetch_app(&mut *tx, id).await?.is_some() {
            return Err(StoreError::Conflict(
                "Application with this id already exists.".into(),
            ));
        }
        let uid = allocate_uid(&mut tx, &self.app_uids).await?;
        let at = now();
        let app = App {
            uuid: uuid::Uuid::new_v4().to_string(),
            id: id.to_string(),
            owner: owner.to_string(),
            structure: BTreeMap::new(),
            restart_generations: BTreeMap::new(),
            uid: Some(uid),
            created: at,
            updated: at,
        };
        sqlx::query(
            "INSERT INTO apps (uuid, id, owner, structure, restart_generations, uid, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&app.uuid)
        .bind(&app.id)
        .bind(&app.owner)
        .bind(json(&app.structure)?)
        .bind(json(&app.restart_generations)?)
        .bind(i64::from(uid))
        .bind(ts(&at))
        .bind(ts(&at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_if_unique(
            "Application with this id already exists.",
        ))?;

        let initial = NewRelease {
            owner: owner.to_string(),
            summary: format!("{owner} created initial release"),
            build: BuildRef::Keep(None),
            config: NewConfig::default(),
            structure: None,
        };
        crate::releases::insert_release(&mut tx, id, &initial, None, &at).await?;
        crate::settings::insert_default_settings(&mut tx, id, owner, &at).await?;
        tx.commit().await?;
        Ok(app)
    }

    /// Gives every app without a user id (created before ids existed) one
    /// from the configured range; the number of apps that got one.
    pub async fn assign_missing_app_uids(&self) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        self.lock_apps_table(&mut tx).await?;
        let missing: Vec<String> = sqlx::query("SELECT id FROM apps WHERE uid IS NULL ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<_>>()?;
        for id in &missing {
            let uid = allocate_uid(&mut tx, &self.app_uids).await?;
            sqlx::query("UPDATE apps SET uid = $1 WHERE id = $2")
                .bind(i64::from(uid))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(missing.len())
    }

    /// Serializes the writers that allocate user ids (PostgreSQL; on
    /// SQLite the transaction already holds the write lock): readers go
    /// on, a second allocator waits and then sees the first one's id.
    async fn lock_apps_table(&self, conn: &mut AnyConnection) -> Result<()> {
        if self.backend == crate::Backend::Postgres {
            sqlx::query("LOCK TABLE apps IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The app called `id`, if any.
    pub async fn get_app(&self, id: &str) -> Result<Option<App>> {
        fetch_app(&self.pool, id).await
    }

    /// Every app, ordered by id. Permission filtering is the caller's.
    pub async fn list_apps(&self) -> Result<Vec<App>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps ORDER BY id");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(app_from_row)
            .collect()
    }

    /// Deletes the app and every row that belongs to it (releases, builds,
    /// configs, settings, permissions, domains), in one transaction.
    ///
    /// Errors: `NotFound` when the app does not exist.
    pub async fn delete_app(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, id).await?;
        // Children first, releases before the builds and configs they point
        // at; explicit rather than ON DELETE CASCADE alone, so the order does
        // not depend on the engine's cascade rules.
        for table in [
            "app_events",
            "app_perms",
            "domains",
            "settings",
            "releases",
            "configs",
            "builds",
        ] {
            let sql = format!("DELETE FROM {table} WHERE app = $1");
            sqlx::query(&sql).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the app's structure (desired count per process type).
    pub async fn set_structure(&self, app: &str, structure: &BTreeMap<String, u32>) -> Result<App> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        sqlx::query("UPDATE apps SET structure = $1, updated = $2 WHERE id = $3")
            .bind(json(structure)?)
            .bind(ts(&now()))
            .bind(app)
            .execute(&mut *tx)
            .await?;
        let updated = fetch_app(&mut *tx, app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Adds one to the restart generation of each of `types` (a type never
    /// restarted is at 0), so the reconciler replaces their processes.
    pub async fn bump_restart_generation(&self, app: &str, types: &[String]) -> Result<App> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        let mut current = fetch_app(&mut *tx, app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        for t in types {
            let g = current.restart_generations.entry(t.clone()).or_insert(0);
            *g = g.saturating_add(1);
        }
        current.updated = now();
        sqlx::query("UPDATE apps SET restart_generations = $1, updated = $2 WHERE id = $3")
            .bind(json(&current.restart_generations)?)
            .bind(ts(&current.updated))
            .bind(app)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::free_uid;

    #[test]
    fn free_uids_go_up_then_fill_gaps() {
        let range = 10..=14;
        assert_eq!(free_uid(&[], &range), Some(10));
        assert_eq!(free_uid(&[10, 11], &range), Some(12));
        // A freed id is not reused while the top has room.
        assert_eq!(free_uid(&[11, 12], &range), Some(13));
        assert_eq!(free_uid(&[10, 12, 13, 14], &range), Some(11));
        assert_eq!(free_uid(&[11, 12, 13, 14], &range), Some(10));
        assert_eq!(free_uid(&[10, 11, 12, 13, 14], &range), None);
        assert_eq!(free_uid(&[u32::MAX], &(u32::MAX..=u32::MAX)), None);
    }
}
