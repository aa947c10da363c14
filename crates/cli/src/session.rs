//! What a command needs to talk to the controller: the configuration file's
//! location (`-c`, `$DRYCC_PROFILE`), the loaded configuration, the HTTP
//! client, and the app it works on.

use crate::cli::AppOpt;
use crate::client::Client;
use crate::config::{self, ClientConfig, ConfigError};
use std::path::PathBuf;

/// The global options, before anything is read.
pub struct Ctx {
    pub config_flag: Option<String>,
}

impl Ctx {
    fn profile() -> Option<String> {
        std::env::var("DRYCC_PROFILE")
            .ok()
            .filter(|p| !p.is_empty())
    }

    pub fn config_path(&self) -> Result<PathBuf, ConfigError> {
        config::locate(
            self.config_flag.as_deref(),
            Self::profile().as_deref(),
            config::home_dir().as_deref(),
        )
    }

    /// Was the file chosen with `-c` or `$DRYCC_PROFILE` (so that the git
    /// credential helper must name it)?
    pub fn config_is_explicit(&self) -> bool {
        self.config_flag.is_some() || Self::profile().is_some()
    }

    /// Loads the configuration and builds the client: the first step that
    /// reads anything, taken after the arguments were checked.
    pub fn session(&self) -> anyhow::Result<Session> {
        let path = self.config_path()?;
        let config = config::load(&path)?;
        let client = Client::new(
            &config.controller,
            Some(&config.token),
            config.response_limit,
        )?;
        Ok(Session {
            config,
            path,
            client,
        })
    }
}

pub struct Session {
    pub config: ClientConfig,
    pub path: PathBuf,
    pub client: Client,
}

impl Session {
    /// The app of this command (see [`crate::app::detect`]).
    pub fn app(&self, opt: &AppOpt) -> anyhow::Result<String> {
        let cwd = std::env::current_dir()?;
        let detected = crate::app::detect(opt.app.as_deref(), &cwd, &self.config.controller)?;
        crate::app::remember(&detected);
        Ok(detected.name)
    }
}
