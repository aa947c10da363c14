//! Conversions between Rust values and the portable column types
//! (TEXT timestamps, TEXT JSON, BIGINT booleans and counters).

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{Result, StoreError};

/// The current time at the precision that is stored (microseconds), so a
/// record returned by a write equals the same record read back.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Fixed-width RFC 3339 (`2024-05-01T12:00:00.123456Z`): sorts as text in
/// time order on both backends.
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}

pub(crate) fn bool_int(b: bool) -> i64 {
    i64::from(b)
}

/// Typed column reads on an [`AnyRow`] with errors that name the column.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn flag(&self, col: &str) -> Result<bool>;
    fn time(&self, col: &str) -> Result<DateTime<Utc>>;
    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T>;
    fn u32(&self, col: &str) -> Result<u32>;
}

impl RowExt for AnyRow {
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get::<String, _>(col)?)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get::<Option<String>, _>(col)?)
    }

    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get::<i64, _>(col)?)
    }

    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }

    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        let s = self.text(col)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("column {col}: {s:?} is not RFC 3339: {e}")))
    }

    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        Ok(serde_json::from_str(&s)?)
    }

    fn u32(&self, col: &str) -> Result<u32> {
        let v = self.int(col)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {col}: {v} is not a u32")))
    }
}
