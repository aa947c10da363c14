//! The router's threads: the embedded router of the controller and the
//! standalone one (`drycc-controller router`) start them alike, on the
//! listeners the settings name, and the secret a standalone router
//! presents to follow the routing table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;

use crate::settings::Settings;

/// The router's settings from the controller's.
pub fn config(settings: &Settings) -> drycc_router::Config {
    drycc_router::Config {
        header_read_timeout: std::time::Duration::from_secs_f64(
            settings.router_header_timeout.clamp(0.001, 3600.0),
        ),
        max_header_bytes: settings.router_max_header_kib.saturating_mul(1024),
        access_log: settings.router_access_log == "on",
        ..drycc_router::Config::default()
    }
}

/// Which listener of the router.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RouterListener {
    /// `DRYCC_ROUTER_LISTEN`.
    Http,
    /// `DRYCC_ROUTER_TLS_LISTEN`: TLS with the table's certificates (SNI).
    Tls,
}

/// Start the router's threads on `listen` (a `host:port`), reading `table`.
pub async fn start(
    listen: &str,
    table: tokio::sync::watch::Receiver<Arc<drycc_router::RouteTable>>,
    settings: &Settings,
    metrics: Arc<drycc_router::Metrics>,
    metrics_on_other_hosts: bool,
    kind: RouterListener,
) -> anyhow::Result<drycc_router::threads::Running> {
    let address = tokio::net::lookup_host(listen)
        .await
        .ok()
        .and_then(|mut addresses| addresses.next())
        .with_context(|| format!("the router address {listen} is not a host:port"))?;
    type Start = fn(
        std::net::SocketAddr,
        usize,
        tokio::sync::watch::Receiver<Arc<drycc_router::RouteTable>>,
        drycc_router::Config,
    )
        -> Result<drycc_router::threads::Running, drycc_router::threads::StartError>;
    let (start, variable): (Start, &str) = match kind {
        RouterListener::Http => (drycc_router::threads::start, "DRYCC_ROUTER_LISTEN"),
        RouterListener::Tls => (drycc_router::threads::start_tls, "DRYCC_ROUTER_TLS_LISTEN"),
    };
    let running = start(
        address,
        drycc_router::threads::default_threads(),
        table,
        drycc_router::Config {
            metrics,
            metrics_on_other_hosts,
            ..config(settings)
        },
    )
    .with_context(|| format!("cannot start the router on {listen} ({variable}=off disables it)"))?;
    tracing::info!(address = %running.local_addr(), domain = %settings.domain, tls = (kind == RouterListener::Tls), "Router listening.");
    Ok(running)
}

/// The router's listeners that are not `off`: HTTP, then TLS.
pub fn listeners(settings: &Settings) -> Vec<(&str, RouterListener)> {
    [
        (settings.router_listen.trim(), RouterListener::Http),
        (settings.router_tls_listen.trim(), RouterListener::Tls),
    ]
    .into_iter()
    .filter(|(listen, _)| !listen.eq_ignore_ascii_case("off") && !listen.is_empty())
    .collect()
}

/// The secret a standalone router presents: `DRYCC_ROUTER_SECRET`, else
/// `router.secret` in the data directory, created on first use (mode 0600)
/// and kept across restarts.
pub fn secret(settings: &Settings) -> anyhow::Result<String> {
    if let Some(secret) = settings.router_secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(secret.to_string());
    }
    let data_dir = settings.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = data_dir.join("router.secret");
    read_or_create(&path).with_context(|| format!("cannot read or create {}", path.display()))
}

fn read_or_create(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if !text.trim().is_empty() {
            return Ok(text.trim().to_string());
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    // Written aside, then linked into place: a reader never sees half a
    // file, and of two writers the first wins.
    let temporary = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(secret),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_string())
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_file_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.secret");
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(read_or_create(&path).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
