//! One module per topic; [`dispatch`] runs a parsed command line and
//! returns the process exit code.

mod apps;
mod auth;
mod autoscale;
mod builds;
mod certs;
mod config;
mod domains;
mod healthchecks;
mod limits;
mod perms;
mod ps;
mod registry;
mod releases;
mod timeouts;

use crate::cli::{Cli, Command};
use crate::session::Ctx;
use std::io::Read;

pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    run(cli).await.map_err(crate::app::explain)
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx {
        config_flag: cli.config,
    };
    match cli.command {
        Command::Auth(cmd) => auth::run(cmd, &ctx).await,
        Command::Apps(cmd) => apps::run(cmd, &ctx).await,
        Command::Builds(cmd) => builds::run(cmd, &ctx).await,
        Command::Ps(cmd) => ps::run(cmd, &ctx).await,
        Command::Releases(cmd) => releases::run(cmd, &ctx).await,
        Command::Config(cmd) => config::run(cmd, &ctx).await,
        Command::Limits(cmd) => limits::run(cmd, &ctx).await,
        Command::Timeouts(cmd) => timeouts::run(cmd, &ctx).await,
        Command::Registry(cmd) => registry::run(cmd, &ctx).await,
        Command::Healthchecks(cmd) => healthchecks::run(cmd, &ctx).await,
        Command::Autoscale(cmd) => autoscale::run(cmd, &ctx).await,
        Command::Perms(cmd) => perms::run(cmd, &ctx).await,
        Command::Domains(cmd) => domains::run(cmd, &ctx).await,
        Command::Certs(cmd) => certs::run(cmd, &ctx).await,
        Command::Completions { shell } => {
            let mut cmd = crate::cli::command();
            clap_complete::generate(shell, &mut cmd, "drycc", &mut std::io::stdout());
            Ok(0)
        }
        Command::GitCredential { operation } => git_credential(&ctx, &operation),
    }
}

/// `drycc git-credential get|store|erase`, called by git.
fn git_credential(ctx: &Ctx, operation: &str) -> anyhow::Result<i32> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)?;
    if operation != "get" {
        return Ok(0);
    }
    let request = crate::credential::parse_request(&input);
    let config = match ctx
        .config_path()
        .and_then(|p| crate::config::load_optional(&p))
    {
        Ok(Some(config)) => config,
        Ok(None) => {
            eprintln!("drycc: not logged in; use 'drycc login' first");
            return Ok(0);
        }
        Err(e) => {
            eprintln!("drycc: {e}");
            return Ok(0);
        }
    };
    print!(
        "{}",
        crate::credential::answer(operation, &request, Some(&config))
    );
    Ok(0)
}

/// Ends a progress line with `done<suffix>`, or with a newline before the
/// error is reported.
async fn complete<T, E: Into<anyhow::Error>>(
    progress: crate::progress::Progress,
    result: Result<T, E>,
    suffix: impl FnOnce(&T) -> String,
) -> anyhow::Result<T> {
    match result {
        Ok(v) => {
            progress.done(&suffix(&v)).await;
            Ok(v)
        }
        Err(e) => {
            progress.fail().await;
            Err(e.into())
        }
    }
}

/// [`complete`] with `done in <N>s`.
async fn complete_timed<T, E: Into<anyhow::Error>>(
    progress: crate::progress::Progress,
    result: Result<T, E>,
) -> anyhow::Result<T> {
    let secs = progress.elapsed_secs();
    complete(progress, result, |_| format!(" in {secs}s")).await
}

/// GET the app's config.
async fn get_config(
    session: &crate::session::Session,
    app: &str,
) -> anyhow::Result<drycc_api_types::Config> {
    Ok(session
        .client
        .get(&format!("/v2/apps/{app}/config/"))
        .await?)
}

/// POST a partial config (a new release) behind a progress line
/// `<message>... done`, followed by a blank line; returns the new config.
async fn post_config(
    session: &crate::session::Session,
    app: &str,
    message: &str,
    update: &drycc_api_types::ConfigUpdate,
) -> anyhow::Result<drycc_api_types::Config> {
    let progress = crate::progress::Progress::start(&format!("{message}... "));
    let result = session
        .client
        .post::<_, drycc_api_types::Config>(&format!("/v2/apps/{app}/config/"), update)
        .await;
    let config = complete(progress, result, |_| String::new()).await?;
    println!();
    Ok(config)
}

/// `{key: value}` -> the `Option<Value>` map of a [`drycc_api_types::ConfigUpdate`].
fn set_map<V: Into<serde_json::Value>>(
    items: impl IntoIterator<Item = (String, V)>,
) -> std::collections::BTreeMap<String, Option<serde_json::Value>> {
    items
        .into_iter()
        .map(|(k, v)| (k, Some(v.into())))
        .collect()
}

/// `[key]` -> `{key: null}`.
fn unset_map(
    keys: impl IntoIterator<Item = String>,
) -> std::collections::BTreeMap<String, Option<serde_json::Value>> {
    keys.into_iter().map(|k| (k, None)).collect()
}
