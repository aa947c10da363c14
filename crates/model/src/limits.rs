//! CPU and memory limit values: `500m`, `1`, `2` cores; `512M`, `1G` memory,
//! each optionally as a `request/limit` pair (`250m/500m`).

/// A parsed limit: request and limit, in millicores or bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    pub request: u64,
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("invalid CPU value \"{0}\": use cores or millicores, e.g. 500m, 1, 2 (or request/limit such as 250m/500m)")]
    Cpu(String),
    #[error("invalid memory value \"{0}\": use a number with a unit of B, K, M or G, e.g. 512M, 1G (or request/limit such as 256M/512M)")]
    Memory(String),
    #[error(
        "invalid limit \"{0}\": the request must not exceed the limit, e.g. 250m/500m or 256M/512M"
    )]
    RequestAboveLimit(String),
}

/// Parse a CPU value into millicores.
pub fn parse_cpu(text: &str) -> Result<Quantity, LimitError> {
    parse_pair(text, parse_cpu_one).ok_or_else(|| LimitError::Cpu(shorten(text)))?
}

/// Parse a memory value into bytes (units are powers of two).
pub fn parse_memory(text: &str) -> Result<Quantity, LimitError> {
    parse_pair(text, parse_memory_one).ok_or_else(|| LimitError::Memory(shorten(text)))?
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// `None` when a part does not parse; `Some(Err)` when request > limit.
fn parse_pair(text: &str, one: fn(&str) -> Option<u64>) -> Option<Result<Quantity, LimitError>> {
    let (request, limit) = match text.split_once('/') {
        Some((request, limit)) => (one(request)?, one(limit)?),
        None => {
            let value = one(text)?;
            (value, value)
        }
    };
    if request > limit {
        return Some(Err(LimitError::RequestAboveLimit(shorten(text))));
    }
    Some(Ok(Quantity { request, limit }))
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_cpu_one(text: &str) -> Option<u64> {
    let millis = match text.strip_suffix('m') {
        Some(millis) => digits(millis)?,
        None => digits(text)?.checked_mul(1000)?,
    };
    (millis > 0).then_some(millis)
}

fn parse_memory_one(text: &str) -> Option<u64> {
    let upper = text.to_ascii_uppercase();
    // Accept Kubernetes' `Mi`/`Gi` spellings as the same powers of two.
    let trimmed = upper.strip_suffix('I').unwrap_or(&upper);
    let (number, unit) = trimmed.split_at(trimmed.len().checked_sub(1)?);
    let multiplier: u64 = match unit {
        "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    let bytes = digits(number)?.checked_mul(multiplier)?;
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_values() {
        assert_eq!(
            parse_cpu("500m"),
            Ok(Quantity {
                request: 500,
                limit: 500
            })
        );
        assert_eq!(
            parse_cpu("1"),
            Ok(Quantity {
                request: 1000,
                limit: 1000
            })
        );
        assert_eq!(
            parse_cpu("250m/500m"),
            Ok(Quantity {
                request: 250,
                limit: 500
            })
        );
        assert_eq!(
            parse_cpu("1/2"),
            Ok(Quantity {
                request: 1000,
                limit: 2000
            })
        );
        for bad in ["", "m", "0", "-1", "1.5", "abc", "500M", "1/", "/1"] {
            assert!(matches!(parse_cpu(bad), Err(LimitError::Cpu(_))), "{bad}");
        }
        assert!(matches!(
            parse_cpu("500m/250m"),
            Err(LimitError::RequestAboveLimit(_))
        ));
        assert!(parse_cpu("500x").unwrap_err().to_string().contains("500m"));
    }

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory("512M").map(|q| q.limit), Ok(512 << 20));
        assert_eq!(parse_memory("1G").map(|q| q.limit), Ok(1 << 30));
        assert_eq!(parse_memory("1g").map(|q| q.limit), Ok(1 << 30));
        assert_eq!(parse_memory("64Mi").map(|q| q.limit), Ok(64 << 20));
        assert_eq!(parse_memory("100K").map(|q| q.limit), Ok(100 << 10));
        assert_eq!(parse_memory("4096B").map(|q| q.limit), Ok(4096));
        assert_eq!(
            parse_memory("256M/512M"),
            Ok(Quantity {
                request: 256 << 20,
                limit: 512 << 20
            })
        );
        for bad in [
            "",
            "M",
            "512",
            "1T",
            "x1G",
            "-1G",
            "0M",
            "99999999999999999999G",
        ] {
            assert!(
                matches!(parse_memory(bad), Err(LimitError::Memory(_))),
                "{bad}"
            );
        }
    }
}
