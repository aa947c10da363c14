//! TLS certificates: a PEM chain and its private key per name, attached to
//! domains (`domains.certificate`).

use sqlx::any::AnyRow;

use crate::codec::{now, ts, RowExt};
use crate::error::{conflict_if_unique, Result, StoreError};
use crate::records::Cert;
use crate::store::Store;

const CERT_COLUMNS: &str = "uuid, name, owner, certificate, private_key, created, updated";

fn cert_from_row(row: &AnyRow, domains: Vec<String>) -> Result<Cert> {
    Ok(Cert {
        uuid: row.text("uuid")?,
        name: row.text("name")?,
        owner: row.text("owner")?,
        certificate: row.text("certificate")?,
        key: row.text("private_key")?,
        domains,
        created: row.time("created")?,
        updated: row.time("updated")?,
    })
}

fn cert_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Certificate {name} not found"))
}

impl Store {
    /// Adds certificate `name` (PEMs already checked by the caller).
    ///
    /// Errors: `Conflict` when the name is taken.
    pub async fn create_cert(
        &self,
        name: &str,
        owner: &str,
        certificate: &str,
        key: &str,
    ) -> Result<Cert> {
        let mut tx = self.begin_write().await?;
        let at = now();
        let cert = Cert {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            owner: owner.to_string(),
            certificate: certificate.to_string(),
            key: key.to_string(),
            domains: Vec::new(),
            created: at,
            updated: at,
        };
        sqlx::query(
            "INSERT INTO certs (uuid, name, owner, certificate, private_key, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&cert.uuid)
        .bind(&cert.name)
        .bind(&cert.owner)
        .bind(&cert.certificate)
        .bind(&cert.key)
        .bind(ts(&at))
        .bind(ts(&at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_if_unique(
            "Certificate with this name already exists.",
        ))?;
        tx.commit().await?;
        Ok(cert)
    }

    /// Certificate `name` with the domains attached to it, if any.
    pub async fn get_cert(&self, name: &str) -> Result<Option<Cert>> {
        let sql = format!("SELECT {CERT_COLUMNS} FROM certs WHERE name = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let domains = self.cert_domains(name).await?;
        cert_from_row(&row, domains).map(Some)
    }

    /// Every certificate, by name, with its domains. Permission filtering
    /// is the caller's.
    pub async fn list_certs(&self) -> Result<Vec<Cert>> {
        let mut attached: std::collections::HashMap<String, Vec<String>> = Default::default();
        for row in sqlx::query(
            "SELECT certificate, domain FROM domains WHERE certificate IS NOT NULL ORDER BY domain",
        )
        .fetch_all(&self.pool)
        .await?
        {
            attached
                .entry(row.text("certificate")?)
                .or_default()
                .push(row.text("domain")?);
        }
        let sql = format!("SELECT {CERT_COLUMNS} FROM certs ORDER BY name");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let domains = attached.remove(&row.text("name")?).unwrap_or_default();
                cert_from_row(row, domains)
            })
            .collect()
    }

    async fn cert_domains(&self, name: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT domain FROM domains WHERE certificate = $1 ORDER BY domain")
            .bind(name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.text("domain"))
            .collect()
    }

    /// Deletes certificate `name`; its domains lose it. Returns whether it
    /// existed.
    pub async fn delete_cert(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE domains SET certificate = NULL WHERE certificate = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM certs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Attaches certificate `name` to `domain` (replacing the one it had).
    ///
    /// Errors: `NotFound` when the certificate or the domain does not exist.
    pub async fn attach_cert(&self, name: &str, domain: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT COUNT(*) AS n FROM certs WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .int("n")?;
        if exists == 0 {
            return Err(cert_not_found(name));
        }
        let done =
            sqlx::query("UPDATE domains SET certificate = $1, updated = $2 WHERE domain = $3")
                .bind(name)
                .bind(ts(&now()))
                .bind(domain)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Domain {domain} not found")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Detaches certificate `name` from `domain`. Returns whether it was
    /// attached.
    pub async fn detach_cert(&self, name: &str, domain: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE domains SET certificate = NULL, updated = $1 WHERE domain = $2 AND certificate = $3",
        )
        .bind(ts(&now()))
        .bind(domain)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
