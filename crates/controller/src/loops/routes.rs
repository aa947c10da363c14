//! The routing table, computed here and pushed to the router: for every
//! app in the store, its hosts (`<app>.<DRYCC_DOMAIN>` and its custom
//! domains), whether it is routable, and its ready `web` processes; and
//! the TLS certificates attached to domains, by host. It is
//! computed again when the engine reports a change (a burst of changes
//! makes one table) or the store's apps, settings or domains change, and
//! published on a watch only when it differs. The router reads
//! snapshots of it; it never asks the controller per request.

use std::sync::Arc;
use std::time::Duration;

use drycc_engine::ProcessState;
use drycc_router::{AppRoute, HostCert, RouteTable, Routes};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::service::routes::RoutePublisher;

/// How long a burst of engine changes may settle before a table is made.
const COALESCE: Duration = Duration::from_millis(5);
/// After a start, adopted `web` processes are not ready until their first
/// probe passes: the first table waits for that (at most this long), so a
/// standalone router never swaps its last good table for an empty one.
const STARTUP_SETTLE: Duration = Duration::from_secs(5);
/// Back-off when the store cannot be read.
const RETRY: Duration = Duration::from_millis(250);

/// Compute and publish tables until `stop` is cancelled.
pub async fn run(ctx: Arc<Context>, publisher: Arc<RoutePublisher>, stop: CancellationToken) {
    let _running = publisher.running();
    let mut changes = ctx.engine.changes(None);
    let started = tokio::time::Instant::now();
    let mut apps: Vec<StoreApp> = Vec::new();
    let mut certs: Vec<HostCert> = Vec::new();
    let mut generation = 0u64;
    let mut last: Option<(Vec<AppRoute>, Vec<HostCert>)> = None;
    loop {
        let requested = publisher.requested();
        changes.borrow_and_update();
        let mut retry = false;
        if publisher.take_store_changed() {
            match load_apps(&ctx).await {
                Ok((loaded, loaded_certs)) => (apps, certs) = (loaded, loaded_certs),
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the apps for the routing table; retrying.");
                    publisher.keep_store_changed();
                    retry = true;
                }
            }
        }
        let settling = generation == 0 && started.elapsed() < STARTUP_SETTLE;
        match compute(&ctx, &apps, settling).await {
            _ if retry => {}
            Ok(None) => {}
            Ok(Some(table)) => {
                let table = (table, certs.clone());
                if last.as_ref() != Some(&table) {
                    generation += 1;
                    tracing::debug!(
                        generation,
                        apps = table.0.len(),
                        certs = table.1.len(),
                        "Publishing a routing table."
                    );
                    publisher.publish(RouteTable::new(Routes {
                        generation,
                        apps: table.0.clone(),
                        certs: table.1.clone(),
                    }));
                    last = Some(table);
                }
                publisher.answered(requested);
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot read the processes for the routing table; retrying.");
                retry = true;
            }
        }
        let settle_tick = generation == 0 && !retry;
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(COALESCE).await;
            }
            _ = publisher.asked() => {}
            _ = tokio::time::sleep(RETRY), if retry || settle_tick => {}
        }
    }
}

/// What the table needs of an app of the store.
struct StoreApp {
    id: String,
    routable: bool,
    /// Its custom domains, sorted.
    domains: Vec<String>,
}

/// Every app of the store, whether it is routable, and its domains; and
/// every certificate attached to a domain, with its hosts.
async fn load_apps(
    ctx: &Context,
) -> Result<(Vec<StoreApp>, Vec<HostCert>), drycc_store::StoreError> {
    let mut domains: std::collections::HashMap<String, Vec<String>> = Default::default();
    for domain in ctx.store.all_domains().await? {
        domains.entry(domain.app).or_default().push(domain.domain);
    }
    let certs = ctx
        .store
        .list_certs()
        .await?
        .into_iter()
        .filter(|cert| !cert.domains.is_empty())
        .map(|cert| HostCert {
            name: cert.name,
            hosts: cert.domains,
            certificate: cert.certificate,
            key: cert.key,
        })
        .collect();
    let mut apps = Vec::new();
    for app in ctx.store.list_apps().await? {
        let routable = ctx.store.get_settings(&app.id).await?.routable;
        apps.push(StoreApp {
            domains: domains.remove(&app.id).unwrap_or_default(),
            id: app.id,
            routable,
        });
    }
    Ok((apps, certs))
}

/// The table of `apps` with their ready web processes now; `None` while
/// `settling` and a web process that runs has not passed a probe yet.
async fn compute(
    ctx: &Context,
    apps: &[StoreApp],
    settling: bool,
) -> Result<Option<Vec<AppRoute>>, drycc_engine::EngineError> {
    let domain = ctx.settings.domain.to_ascii_lowercase();
    let mut table = Vec::with_capacity(apps.len());
    for StoreApp {
        id: app,
        routable,
        domains,
    } in apps
    {
        let processes = ctx.engine.processes(app).await?;
        let web = processes.iter().filter(|p| p.ptype == "web");
        if settling
            && web
                .clone()
                .any(|p| p.state == ProcessState::Starting && p.endpoint.is_some())
        {
            return Ok(None);
        }
        let mut backends: Vec<std::net::SocketAddr> = web
            .filter(|p| p.ready && p.state == ProcessState::Up)
            .filter_map(|p| p.endpoint)
            .collect();
        backends.sort_unstable();
        table.push(AppRoute {
            app: app.clone(),
            hosts: std::iter::once(format!("{app}.{domain}"))
                .chain(domains.iter().cloned())
                .collect(),
            backends,
            routable: *routable,
        });
    }
    Ok(Some(table))
}
