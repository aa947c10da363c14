//! Per-app settings (autoscale rules, routable). Changing them creates no
//! release.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor};

use crate::apps::{app_not_found, lock_app};
use crate::codec::{bool_int, json, now, ts, RowExt};
use crate::error::Result;
use crate::records::Settings;
use crate::store::Store;

const SETTINGS_COLUMNS: &str = "uuid, app, owner, autoscale, routable, created, updated";

fn settings_from_row(row: &AnyRow) -> Result<Settings> {
    Ok(Settings {
        uuid: row.text("uuid")?,
        app: row.text("app")?,
        owner: row.text("owner")?,
        autoscale: row.json("autoscale")?,
        routable: row.flag("routable")?,
        created: row.time("created")?,
        updated: row.time("updated")?,
    })
}

async fn fetch_settings<'e, E>(ex: E, app: &str) -> Result<Option<Settings>>
where
    E: Executor<'e, Database = Any>,
{
    let sql = format!("SELECT {SETTINGS_COLUMNS} FROM settings WHERE app = $1");
    sqlx::query(&sql)
        .bind(app)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(settings_from_row)
        .transpose()
}

/// The settings row every app gets at creation: no autoscale, routable.
pub(crate) async fn insert_default_settings(
    conn: &mut AnyConnection,
    app: &str,
    owner: &str,
    at: &DateTime<Utc>,
) -> Result<Settings> {
    let settings = Settings {
        uuid: uuid::Uuid::new_v4().to_string(),
        app: app.to_string(),
        owner: owner.to_string(),
        autoscale: BTreeMap::new(),
        routable: true,
        created: *at,
        updated: *at,
    };
    sqlx::query(
        "INSERT INTO settings (uuid, app, owner, autoscale, routable, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&settings.uuid)
    .bind(&settings.app)
    .bind(&settings.owner)
    .bind(json(&settings.autoscale)?)
    .bind(bool_int(settings.routable))
    .bind(ts(at))
    .bind(ts(at))
    .execute(&mut *conn)
    .await?;
    Ok(settings)
}

impl Store {
    /// The settings of `app`.
    ///
    /// Errors: `NotFound` when the app does not exist.
    pub async fn get_settings(&self, app: &str) -> Result<Settings> {
        fetch_settings(&self.pool, app)
            .await?
            .ok_or_else(|| app_not_found(app))
    }

    /// Replaces the autoscale rules of `app` (the caller has merged the
    /// user's partial update) and records `owner` as the last writer.
    /// `routable: None` keeps the current value.
    ///
    /// Errors: `NotFound` when the app does not exist.
    pub async fn put_settings(
        &self,
        app: &str,
        owner: &str,
        autoscale: &BTreeMap<String, serde_json::Value>,
        routable: Option<bool>,
    ) -> Result<Settings> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE settings SET owner = $1, autoscale = $2, updated = $3 WHERE app = $4",
        )
        .bind(owner)
        .bind(json(autoscale)?)
        .bind(ts(&at))
        .bind(app)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Only an app created outside this store lacks the row; heal it.
            insert_default_settings(&mut tx, app, owner, &at).await?;
            sqlx::query("UPDATE settings SET autoscale = $1 WHERE app = $2")
                .bind(json(autoscale)?)
                .bind(app)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(routable) = routable {
            sqlx::query("UPDATE settings SET routable = $1 WHERE app = $2")
                .bind(bool_int(routable))
                .bind(app)
                .execute(&mut *tx)
                .await?;
        }
        let settings = fetch_settings(&mut *tx, app)
            .await?
            .ok_or_else(|| app_not_found(app))?;
        tx.commit().await?;
        Ok(settings)
    }
}
