//! Custom domains of apps: what a domain name may look like.
//!
//! A domain is a DNS name, lower-cased: labels of 1..63 characters
//! `a-z0-9-` (no hyphen first or last), at least two labels, 253
//! characters at most, not all digits (an IPv4 address is no domain).
//! Wildcards (`*.example.com`) are refused: the router matches hosts
//! exactly. Names under the platform's own domain (`<app>.<DRYCC_DOMAIN>`)
//! are the platform's and cannot be added.

/// Why a domain is refused; the text is the API's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("Domain must be a DNS name: labels of 1 to 63 characters a-z, 0-9 and hyphens (not first or last), separated by dots, at least two labels, at most 253 characters, no wildcard (got \"{0}\").")]
    Invalid(String),
    #[error("Domain \"{0}\" is the platform's own (apps answer on <app>.{1} already); add a domain outside {1}.")]
    Platform(String, String),
}

/// The longest domain accepted (RFC 1035, without the trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;

/// The domain as stored (lower case, no trailing dot), or why it is
/// refused. `platform` is `DRYCC_DOMAIN`.
pub fn validate_domain(input: &str, platform: &str) -> Result<String, DomainError> {
    let shown = || input.chars().take(80).collect::<String>();
    let domain = input
        .strip_suffix('.')
        .unwrap_or(input)
        .to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let numeric = labels
        .iter()
        .all(|label| label.bytes().all(|b| b.is_ascii_digit()));
    if domain.len() > MAX_DOMAIN_LEN
        || labels.len() < 2
        || numeric
        || !labels.iter().all(|l| label_ok(l))
    {
        return Err(DomainError::Invalid(shown()));
    }
    let platform = platform
        .strip_suffix('.')
        .unwrap_or(platform)
        .to_ascii_lowercase();
    if !platform.is_empty() && (domain == platform || domain.ends_with(&format!(".{platform}"))) {
        return Err(DomainError::Platform(domain, platform));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_accepted_and_lower_cased() {
        for (input, stored) in [
            ("www.example.com", "www.example.com"),
            ("WWW.Example.COM", "www.example.com"),
            ("example.com.", "example.com"),
            ("a-1.b2.example.io", "a-1.b2.example.io"),
            ("1.example.com", "1.example.com"),
        ] {
            assert_eq!(validate_domain(input, "localhost"), Ok(stored.to_string()));
        }
        let longest_label = format!("{}.com", "a".repeat(63));
        assert!(validate_domain(&longest_label, "localhost").is_ok());
        let long = format!("{0}.{0}.{0}.{1}.com", "a".repeat(61), "b".repeat(63));
        assert_eq!(long.len(), 253);
        assert!(validate_domain(&long, "localhost").is_ok());
    }

    #[test]
    fn malformed_names_are_refused() {
        let too_long = format!("{0}.{0}.{0}.{1}.com", "a".repeat(61), "b".repeat(63)) + "m";
        for input in [
            "",
            ".",
            "com",
            "*.example.com",
            "www.*.com",
            "-a.example.com",
            "a-.example.com",
            "a..example.com",
            ".example.com",
            "under_score.example.com",
            "sp ace.example.com",
            "xn--é.example.com",
            "example.com:8080",
            "http://example.com",
            "10.0.0.1",
            &format!("{}.com", "a".repeat(64)),
            &too_long,
        ] {
            assert!(
                matches!(
                    validate_domain(input, "localhost"),
                    Err(DomainError::Invalid(_))
                ),
                "{input:?} was accepted"
            );
        }
        let message = validate_domain("*.example.com", "localhost")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("1 to 63 characters a-z, 0-9 and hyphens"),
            "{message}"
        );
    }

    #[test]
    fn the_platform_domain_is_not_an_app_domain() {
        for input in ["myapp.localhost", "myapp.localhost.", "a.b.LOCALHOST"] {
            assert!(matches!(
                validate_domain(input, "localhost"),
                Err(DomainError::Platform(..))
            ));
        }
        assert!(matches!(
            validate_domain("web.apps.example.com", "apps.example.com"),
            Err(DomainError::Platform(..))
        ));
        assert!(validate_domain("myapp.example.com", "apps.example.com").is_ok());
        assert!(validate_domain("notlocalhost.com", "localhost").is_ok());
    }
}
