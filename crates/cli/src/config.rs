//! The client configuration file (`~/.drycc/client.json`): where it lives,
//! reading it, and writing it with mode 0600 (it holds the token).

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `drycc login` stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub username: String,
    pub controller: String,
    pub token: String,
    #[serde(default = "default_ssl_verify")]
    pub ssl_verify: bool,
    /// Page size of list requests (0: the controller's default).
    #[serde(default)]
    pub response_limit: u32,
}

fn default_ssl_verify() -> bool {
    true
}

/// Page size written by `login` when no earlier file says otherwise.
pub const DEFAULT_RESPONSE_LIMIT: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "client configuration file not found at: {}\nAre you logged in? Use 'drycc login' or 'drycc register' to get started",
        .0.display()
    )]
    NotFound(PathBuf),
    #[error("cannot read the client configuration file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the client configuration file {} is not valid: {source}", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the client configuration file {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the home directory: set HOME or pass -c/--config <path>")]
    NoHome,
}

/// The configuration file's path. `flag` is `-c/--config`: a value with a
/// `/` or ending in `.json` is a path, anything else a profile name
/// (`~/.drycc/<name>.json`), as in Drycc's client. Without the flag,
/// `$DRYCC_PROFILE` (`profile`) names the profile, else `client`.
pub fn locate(
    flag: Option<&str>,
    profile: Option<&str>,
    home: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let name = match flag.filter(|f| !f.is_empty()) {
        Some(f) if f.contains('/') || f.ends_with(".json") => {
            return Ok(std::path::absolute(f).unwrap_or_else(|_| PathBuf::from(f)));
        }
        Some(f) => f,
        None => profile.filter(|p| !p.is_empty()).unwrap_or("client"),
    };
    let home = home.ok_or(ConfigError::NoHome)?;
    Ok(home.join(".drycc").join(format!("{name}.json")))
}

/// The user's home directory: `$HOME`, else the password database.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound(path.to_path_buf()))
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`load`], but a missing file is `None`.
pub fn load_optional(path: &Path) -> Result<Option<ClientConfig>, ConfigError> {
    match load(path) {
        Ok(c) => Ok(Some(c)),
        Err(ConfigError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the file with mode 0600 (its directory 0700 when created), through
/// a temporary file and a rename so that a reader never sees half a file.
pub fn save(path: &Path, config: &ClientConfig) -> Result<(), ConfigError> {
    let werr = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(werr)?;
    }
    let mut json = serde_json::to_vec_pretty(config).map_err(|e| werr(e.into()))?;
    json.push(b'\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A leftover temporary file keeps its old mode: tighten it first.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        werr(e)
    })
}

/// Removes the file; a missing file is fine.
pub fn remove(path: &Path) -> Result<(), ConfigError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ConfigError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `http://` is added when the scheme is missing; trailing slashes go.
pub fn normalise_controller(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClientConfig {
        ClientConfig {
            username: "alice".into(),
            controller: "http://127.0.0.1:8000".into(),
            token: "secret".into(),
            ssl_verify: true,
            response_limit: 100,
        }
    }

    #[test]
    fn locate_default_profile_and_paths() {
        let home = Path::new("/home/u");
        assert_eq!(
            locate(None, None, Some(home)).unwrap(),
            PathBuf::from("/home/u/.drycc/client.json")
        );
        assert_eq!(
            locate(None, Some("staging"), Some(home)).unwrap(),
            PathBuf::from("/home/u/.drycc/staging.json")
        );
        assert_eq!(
            locate(Some("prod"), Some("staging"), Some(home)).unwrap(),
            PathBuf::from("/home/u/.drycc/prod.json")
        );
        assert_eq!(
            locate(Some("/etc/x.json"), Some("staging"), Some(home)).unwrap(),
            PathBuf::from("/etc/x.json")
        );
        assert!(locate(Some("rel/x.json"), None, None)
            .unwrap()
            .is_absolute());
        assert!(matches!(locate(None, None, None), Err(ConfigError::NoHome)));
    }

    #[test]
    fn save_writes_mode_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".drycc/client.json");
        save(&path, &sample()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(load(&path).unwrap(), sample());
        // The field names are Drycc's.
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        for key in [
            "username",
            "controller",
            "token",
            "ssl_verify",
            "response_limit",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn save_tightens_an_existing_loose_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, &sample()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn missing_file_message() {
        let err = load(Path::new("/nonexistent/client.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client configuration file not found at: /nonexistent/client.json\n\
             Are you logged in? Use 'drycc login' or 'drycc register' to get started"
        );
        assert!(load_optional(Path::new("/nonexistent/client.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn tolerant_of_missing_optional_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        fs::write(
            &path,
            r#"{"username":"a","controller":"http://c","token":"t"}"#,
        )
        .unwrap();
        let c = load(&path).unwrap();
        assert!(c.ssl_verify);
        assert_eq!(c.response_limit, 0);
        fs::write(&path, "not json").unwrap();
        assert!(matches!(load(&path), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn controller_urls_are_normalised() {
        assert_eq!(
            normalise_controller("127.0.0.1:8000/"),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            normalise_controller("https://drycc.example.com"),
            "https://drycc.example.com"
        );
    }
}
