//! Custom domains of apps: one row per domain, unique across apps, with
//! the TLS certificate attached to it (`certs`).

use sqlx::any::AnyRow;

use crate::apps::lock_app;
use crate::codec::{now, ts, RowExt};
use crate::error::{Result, StoreError};
use crate::records::Domain;
use crate::store::Store;

const DOMAIN_COLUMNS: &str = "uuid, app, owner, domain, certificate, created, updated";

fn domain_from_row(row: &AnyRow) -> Result<Domain> {
    Ok(Domain {
        uuid: row.text("uuid")?,
        app: row.text("app")?,
        owner: row.text("owner")?,
        domain: row.text("domain")?,
        certificate: row.opt_text("certificate")?,
        created: row.time("created")?,
        updated: row.time("updated")?,
    })
}

impl Store {
    /// Adds `domain` (already validated and lower-cased by the caller) to
    /// `app`, recording `owner` as its creator.
    ///
    /// Errors: `NotFound` when the app does not exist; `Conflict` when the
    /// domain belongs to an app already (this one or another; the message
    /// does not name another app).
    pub async fn add_domain(&self, app: &str, owner: &str, domain: &str) -> Result<Domain> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE domain = $1");
        if let Some(row) = sqlx::query(&sql)
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?
        {
            let existing = domain_from_row(&row)?;
            return Err(StoreError::Conflict(if existing.app == app {
                format!("Domain {domain} is already added to {app}.")
            } else {
                format!("Domain {domain} is already in use by another app.")
            }));
        }
        let at = now();
        let record = Domain {
            uuid: uuid::Uuid::new_v4().to_string(),
            app: app.to_string(),
            owner: owner.to_string(),
            domain: domain.to_string(),
            certificate: None,
            created: at,
            updated: at,
        };
        sqlx::query(
            "INSERT INTO domains (uuid, app, owner, domain, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&record.uuid)
        .bind(&record.app)
        .bind(&record.owner)
        .bind(&record.domain)
        .bind(ts(&at))
        .bind(ts(&at))
        .execute(&mut *tx)
        .await
        .map_err(crate::error::conflict_if_unique(
            "Domain is already in use by another app.",
        ))?;
        tx.commit().await?;
        Ok(record)
    }

    /// The domains of `app`, sorted by name.
    pub async fn list_domains(&self, app: &str) -> Result<Vec<Domain>> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE app = $1 ORDER BY domain");
        sqlx::query(&sql)
            .bind(app)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(domain_from_row)
            .collect()
    }

    /// The domain called `domain`, whichever app has it.
    pub async fn get_domain(&self, domain: &str) -> Result<Option<Domain>> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE domain = $1");
        sqlx::query(&sql)
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(domain_from_row)
            .transpose()
    }

    /// Every domain of every app, sorted by name (the routing table's).
    pub async fn all_domains(&self) -> Result<Vec<Domain>> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains ORDER BY domain");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(domain_from_row)
            .collect()
    }

    /// Removes `domain` from `app`. Returns whether the app had it.
    pub async fn remove_domain(&self, app: &str, domain: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM domains WHERE app = $1 AND domain = $2")
            .bind(app)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
