//! Timestamps as Drycc prints them: `2023-12-08T02:25:00UTC`.

use chrono::{DateTime, Utc};

/// The API's `%Y-%m-%dT%H:%M:%SZ` (or any RFC 3339 time) in UTC, with
/// `UTC` for the zone; anything unreadable is shown as it came.
pub fn drycc_time(api: &str) -> String {
    match DateTime::parse_from_rfc3339(api.trim()) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%Y-%m-%dT%H:%M:%SUTC")
            .to_string(),
        Err(_) => api.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times_print_with_utc() {
        assert_eq!(drycc_time("2023-12-08T02:25:00Z"), "2023-12-08T02:25:00UTC");
        assert_eq!(
            drycc_time("2023-12-08T02:25:00.123456Z"),
            "2023-12-08T02:25:00UTC"
        );
        assert_eq!(
            drycc_time("2023-12-08T04:25:00+02:00"),
            "2023-12-08T02:25:00UTC"
        );
    }

    #[test]
    fn other_text_is_kept() {
        assert_eq!(drycc_time(""), "");
        assert_eq!(drycc_time("soon"), "soon");
    }
}
