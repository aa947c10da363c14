//! Image references: `[registry/]repository:tag`, `...@digest` or both,
//! checked and normalised the way Docker does (`example:1` is
//! `docker.io/library/example:1`), with no network access. Unlike Docker,
//! a reference must name its version: there is no implied `latest`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::ImageError;

const DOCKER_HUB: &str = "docker.io";
/// Docker's limit on a whole name (registry and repository).
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;
const SHAPE: &str = "a reference is [registry[:port]/]repository:tag or \
                     [registry[:port]/]repository@sha256:<64 hex digits>";

/// A checked image reference. Its `Display` is the normalised form,
/// `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// The registry's host and port as written (`docker.io` when none is).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository inside the registry (`library/example` for Docker
    /// Hub's official images).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Whether the registry is on this machine (127.0.0.0/8, `localhost`,
    /// `[::1]`, with or without a port): such a registry is spoken to over
    /// plain HTTP, as Docker does by default, every other over HTTPS.
    pub fn is_loopback_registry(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => self.registry.split(':').next().unwrap_or_default(),
        };
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match (self.tag.clone(), self.digest.clone()) {
            (Some(tag), Some(digest)) => {
                oci_client::Reference::with_tag_and_digest(registry, repository, tag, digest)
            }
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest)
            }
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageReference {
    type Err = ImageError;

    fn from_str(reference: &str) -> Result<Self, ImageError> {
        parse_reference(reference)
    }
}

/// Parses and checks a reference without network access: a malformed one
/// or one without a tag or digest is refused before anything else is done.
pub fn parse_reference(reference: &str) -> Result<ImageReference, ImageError> {
    let invalid = |reason: String| ImageError::InvalidReference {
        reference: reference.to_string(),
        reason,
    };
    if reference.is_empty() {
        return Err(invalid(format!("it is empty; {SHAPE}")));
    }
    if let Some(c) = reference
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "./:@_-[]".contains(*c)))
    {
        return Err(invalid(format!(
            "it contains {c:?}; {SHAPE}, made of letters, digits and . _ - / : @ [ ]"
        )));
    }

    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(check_digest(digest).map_err(invalid)?)),
        None => (reference, None),
    };
    // A tag follows the last ':' after the last '/'; a ':' before it
    // separates a registry's port.
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => (
            &rest[..colon],
            Some(check_tag(&rest[colon + 1..]).map_err(invalid)?),
        ),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(invalid(format!("it has no repository name; {SHAPE}")));
    }
    if name.len() > NAME_MAX {
        return Err(invalid(format!(
            "the name is {} characters long; at most {NAME_MAX} are allowed",
            name.len()
        )));
    }

    let (registry, path) = split_registry(name);
    let registry = match registry {
        Some(registry) => check_registry(registry).map_err(invalid)?,
        None => DOCKER_HUB.to_string(),
    };
    check_path(path).map_err(invalid)?;
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };

    if tag.is_none() && digest.is_none() {
        return Err(ImageError::MissingTag {
            reference: reference.to_string(),
        });
    }
    Ok(ImageReference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's rule: the first component is a registry when it has a '.' or a
/// ':', is `localhost`, or has an upper-case letter (repositories are lower
/// case); here also when it is a bracketed IPv6 address.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':', '['])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(registry: &str) -> Result<String, String> {
    let wrong = || {
        format!(
            "registry \"{registry}\" is not a host name or IP address with an optional \
             :port (e.g. \"registry.example.com:5000\", \"127.0.0.1:5000\", \"[::1]:5000\")"
        )
    };
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(wrong)?;
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(wrong());
        }
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(wrong)?)),
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(component_ok) {
            return Err(wrong());
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(format!(
                "registry \"{registry}\" has port \"{port}\"; a port is a number from 1 to 65535"
            ));
        }
    }
    // Docker Hub's legacy name.
    if registry == "index.docker.io" {
        return Ok(DOCKER_HUB.to_string());
    }
    Ok(registry.to_string())
}

/// Repository path components: lower-case letters and digits, separated by
/// '.', '_', '__' or dashes.
fn check_path(path: &str) -> Result<(), String> {
    let wrong = |why: &str| {
        format!(
            "repository \"{path}\" {why}; repository names are lower-case letters and digits, \
             in components separated by '/', the words of a component separated by \
             '.', '_', '__' or dashes"
        )
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(wrong("has upper-case letters"));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(wrong("has an empty component"));
        }
        if !component_is_valid(component) {
            return Err(wrong(&format!("has the invalid component \"{component}\"")));
        }
    }
    Ok(())
}

fn component_is_valid(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between words: one '.', one or two '_', or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

fn check_tag(tag: &str) -> Result<String, String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let valid = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && tag.starts_with(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if valid {
        Ok(tag.to_string())
    } else {
        Err(format!(
            "tag \"{tag}\" is invalid; a tag is 1 to {TAG_MAX} letters, digits, '_', '.' and '-', \
             not starting with '.' or '-'"
        ))
    }
}

fn check_digest(digest: &str) -> Result<String, String> {
    let wrong = || {
        format!(
            "digest \"{digest}\" is invalid; a digest is sha256: and 64 lower-case hex digits \
             (or sha384: and 96, sha512: and 128)"
        )
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(wrong)?;
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(wrong()),
    };
    let valid = hex.len() == length
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if valid {
        Ok(digest.to_string())
    } else {
        Err(wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parsed(reference: &str) -> ImageReference {
        match parse_reference(reference) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{reference}: {e}"),
        }
    }

    fn reason(reference: &str) -> String {
        match parse_reference(reference) {
            Err(ImageError::InvalidReference { reason, .. }) => reason,
            other => panic!("{reference}: expected InvalidReference, got {other:?}"),
        }
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(
            parsed("example:1").to_string(),
            "docker.io/library/example:1"
        );
        assert_eq!(parsed("team/app:v2").to_string(), "docker.io/team/app:v2");
        assert_eq!(
            parsed("index.docker.io/example:1").to_string(),
            "docker.io/library/example:1"
        );
        assert_eq!(
            parsed("docker.io/library/example:latest").to_string(),
            "docker.io/library/example:latest"
        );
    }

    #[test]
    fn registries_with_ports_and_paths() {
        let r = parsed("registry.example.com:5000/team/app/web:1.2.3");
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.repository(), "team/app/web");
        assert_eq!(r.tag(), Some("1.2.3"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.name(), "registry.example.com:5000/team/app/web");

        let r = parsed("localhost/app:1");
        assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
        let r = parsed("[::1]:5000/app:1");
        assert_eq!((r.registry(), r.repository()), ("[::1]:5000", "app"));
        let r = parsed("Registry/app:1");
        assert_eq!(r.registry(), "Registry");
    }

    #[test]
    fn digests_with_and_without_tags() {
        let r = parsed(&format!("127.0.0.1:5000/app@{SHA}"));
        assert_eq!((r.tag(), r.digest()), (None, Some(SHA)));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/app@{SHA}"));
        let r = parsed(&format!("app:1@{SHA}"));
        assert_eq!((r.tag(), r.digest()), (Some("1"), Some(SHA)));
        assert_eq!(r.to_string(), format!("docker.io/library/app:1@{SHA}"));
        assert_eq!(r.to_oci().digest(), Some(SHA));
    }

    #[test]
    fn a_reference_without_tag_or_digest_is_refused() {
        for reference in ["example", "host:5000/example", "team/app", "[::1]:5000/a"] {
            match parse_reference(reference) {
                Err(ImageError::MissingTag { reference: r }) => assert_eq!(r, reference),
                other => panic!("{reference}: expected MissingTag, got {other:?}"),
            }
        }
        let message = parse_reference("example").err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("no tag") && m.contains("\"example:1.0\"")),
            "{message:?}"
        );
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        assert!(reason("").contains("empty"));
        assert!(reason("app :1").contains("' '"));
        assert!(reason("app:1\n").contains("'\\n'"));
        assert!(reason("Ä:1").contains("'Ä'"));
        assert!(reason("App:1").contains("upper-case"));
        assert!(reason("team/App:1").contains("upper-case"));
        assert!(reason("app:").contains("tag \"\""));
        assert!(reason("app:-x").contains("tag \"-x\""));
        assert!(reason("app@sha256:abc").contains("digest"));
        assert!(reason("app@md5:0123456789abcdef0123456789abcdef").contains("digest"));
        assert!(
            reason(&format!("app@{}", SHA.to_uppercase().replace("SHA", "sha"))).contains("digest")
        );
        assert!(reason("a..b/app:1").contains("registry \"a..b\""));
        assert!(reason("-host.com/app:1").contains("registry"));
        assert!(reason("host:0/app:1").contains("port \"0\""));
        assert!(reason("host:99999/app:1").contains("port \"99999\""));
        assert!(reason("host:/app:1").contains("port \"\""));
        assert!(reason("[::g]:5000/app:1").contains("registry"));
        assert!(reason("[::1]5000/app:1").contains("registry"));
        assert!(reason("host.com//app:1").contains("empty component"));
        assert!(reason("host.com/app/:1").contains("empty component"));
        assert!(reason("app.:1").contains("invalid component \"app.\""));
        assert!(reason("a..b:1").contains("invalid component"));
        assert!(reason("a___b:1").contains("invalid component"));
        assert!(reason(":1").contains("no repository"));
        assert!(reason("@sha256:x").contains("digest"));
        assert!(reason(&format!("{}:1", "a".repeat(256))).contains("at most 255"));
    }

    #[test]
    fn separators_inside_components() {
        for ok in [
            "a.b:1",
            "a_b:1",
            "a__b:1",
            "a-b:1",
            "a---b:1",
            "a1.b2-c3__d4:1",
        ] {
            parsed(ok);
        }
    }

    #[test]
    fn tags_may_be_long_but_not_too_long() {
        parsed(&format!("app:{}", "x".repeat(128)));
        assert!(reason(&format!("app:{}", "x".repeat(129))).contains("1 to 128"));
    }

    #[test]
    fn loopback_registries() {
        for loopback in [
            "127.0.0.1:5000/a:1",
            "127.1.2.3:5000/a:1",
            "localhost:5000/a:1",
            "LOCALHOST:5000/a:1",
            "localhost/a:1",
            "[::1]:5000/a:1",
            "[::1]/a:1",
        ] {
            assert!(parsed(loopback).is_loopback_registry(), "{loopback}");
        }
        for remote in [
            "a:1",
            "registry.example.com/a:1",
            "10.0.0.1:5000/a:1",
            "[fe80::1]:5000/a:1",
            "localhost.example.com/a:1",
        ] {
            assert!(!parsed(remote).is_loopback_registry(), "{remote}");
        }
    }

    #[test]
    fn oci_references_keep_registry_and_repository() {
        let r = parsed("[::1]:5000/team/app:1").to_oci();
        assert_eq!(r.registry(), "[::1]:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("1"));
        let r = parsed("app:1").to_oci();
        assert_eq!(r.resolve_registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/app");
    }
}
