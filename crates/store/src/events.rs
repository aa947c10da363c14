//! Platform events of an app: appended by the controller, read back newest
//! last, and bounded per app so a chatty app cannot grow the database.

use chrono::{DateTime, Utc};

use crate::apps::lock_app;
use crate::codec::{now, ts, RowExt};
use crate::error::Result;
use crate::store::Store;

/// Events kept per app; older ones are dropped as new ones arrive.
pub const EVENTS_KEPT: usize = 1000;

/// One platform event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub app: String,
    pub created: DateTime<Utc>,
    pub text: String,
}

impl Store {
    /// Append an event to `app`'s log and drop the ones past
    /// [`EVENTS_KEPT`]. Errors: `NotFound` when the app does not exist.
    pub async fn record_event(&self, app: &str, text: &str) -> Result<Event> {
        let event = Event {
            app: app.to_string(),
            created: now(),
            text: text.to_string(),
        };
        let mut tx = self.begin_write().await?;
        // The app's row lock serialises its events, so `seq` is dense.
        lock_app(&mut tx, app).await?;
        let seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM app_events WHERE app = $1")
                .bind(app)
                .fetch_one(&mut *tx)
                .await?
                .int("next")?;
        sqlx::query(
            "INSERT INTO app_events (uuid, app, seq, created, text) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(app)
        .bind(seq)
        .bind(ts(&event.created))
        .bind(text)
        .execute(&mut *tx)
        .await?;
        let kept = i64::try_from(EVENTS_KEPT).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM app_events WHERE app = $1 AND seq <= $2")
            .bind(app)
            .bind(seq - kept)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// The last `limit` events of `app`, oldest first.
    pub async fn recent_events(&self, app: &str, limit: usize) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT app, created, text FROM app_events WHERE app = $1 \
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(app)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(Event {
                    app: row.text("app")?,
                    created: row.time("created")?,
                    text: row.text("text")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}
