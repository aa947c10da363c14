//! `apps:create`, `apps:list`, `apps:info`, `apps:destroy`, `apps:logs`,
//! `apps:run` (not supported).

use super::{complete, complete_timed};
use crate::app::remote_url;
use crate::cli::AppsCmd;
use crate::git;
use crate::progress::Progress;
use crate::session::{Ctx, Session};
use crate::table;
use crate::timefmt::drycc_time;
use anyhow::bail;
use drycc_api_types::{App, AppCreateRequest};
use std::path::Path;

pub async fn run(cmd: AppsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        AppsCmd::Create {
            id,
            no_remote,
            remote,
        } => {
            let session = ctx.session()?;
            let progress = Progress::start("Creating Application... ");
            let result = session
                .client
                .post::<_, App>("/v2/apps/", &AppCreateRequest { id })
                .await;
            let app = complete(progress, result, |a| format!(", created {}", a.id)).await?;
            if !no_remote {
                let cwd = std::env::current_dir()?;
                if git::is_repo(&cwd) {
                    add_remote(ctx, &session, &cwd, &remote, &app.id)?;
                }
            }
        }
        AppsCmd::List => {
            let session = ctx.session()?;
            let mut apps: Vec<App> = session.client.list("/v2/apps/").await?;
            apps.sort_by(|a, b| a.id.cmp(&b.id));
            print!("{}", apps_view(apps));
        }
        AppsCmd::Info { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let info: App = session.client.get(&format!("/v2/apps/{app}/")).await?;
            let pods = super::ps::fetch_pods(&session, &app).await?;
            print!("{}", info_view(&info));
            println!();
            println!("=== {app} Processes");
            print!("{}", super::ps::pods_view(&app, pods));
        }
        AppsCmd::Destroy { app, confirm } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let confirm = match confirm {
                Some(c) => c,
                None => {
                    eprintln!(
                        " !    WARNING: Potentially Destructive Action\n \
                         !    This command will destroy the application: {app}\n \
                         !    To proceed, type \"{app}\" or re-run this command with --confirm={app}\n"
                    );
                    crate::terminal::prompt("> ", false)?.unwrap_or_default()
                }
            };
            if confirm.trim().is_empty() {
                bail!("App {app} was not destroyed: type its name or pass --confirm={app}");
            }
            if confirm != app {
                bail!("App {app} does not match confirm {confirm}, aborting.");
            }
            let progress = Progress::start(&format!("Destroying {app}... "));
            let result = session.client.delete(&format!("/v2/apps/{app}/")).await;
            complete_timed(progress, result).await?;
            remove_remotes(&session, &app);
        }
        AppsCmd::Logs { app, logs } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            crate::logs::show(&session, &app, None, &logs).await?;
        }
        AppsCmd::Run { .. } => {
            bail!(
                "apps:run is not supported: this controller has no one-off processes. \
                 Run a command in a running process with 'drycc ps:exec <process-name> -- <command>'"
            );
        }
    }
    Ok(0)
}

/// Adds the git remote and the credential helper; an existing remote is
/// reported and left alone.
fn add_remote(
    ctx: &Ctx,
    session: &Session,
    dir: &Path,
    remote: &str,
    app: &str,
) -> anyhow::Result<()> {
    let controller = &session.config.controller;
    let url = remote_url(controller, app);
    match git::remote_url(dir, remote) {
        Some(existing) if existing == url => {
            println!("Git remote {remote} already exists for app {app}.");
        }
        Some(existing) => {
            println!(
                "A git remote named {remote} already exists ({existing}) and was left unchanged; \
                 use --remote=<name> to add one for app {app}."
            );
        }
        None => {
            git::add_remote(dir, remote, &url)?;
            println!("Git remote {remote} successfully created for app {app}.");
        }
    }
    let exe = std::env::current_exe()?;
    let config_file = ctx.config_is_explicit().then_some(session.path.as_path());
    let helper = git::helper_command(&exe, config_file);
    if let Err(e) =
        git::install_credential_helper(dir, controller, &session.config.username, &helper)
    {
        eprintln!("Warning: could not set up git authentication for {controller}: {e}");
    }
    Ok(())
}

/// After a destroy: removes the remotes of this directory pointing at it.
fn remove_remotes(session: &Session, app: &str) {
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    for (name, url) in git::remotes(&cwd) {
        if crate::app::app_from_remote_url(&url, &session.config.controller).as_deref() == Some(app)
        {
            match git::remove_remote(&cwd, &name) {
                Ok(()) => println!("Git remote {name} removed"),
                Err(e) => eprintln!("Warning: {e}"),
            }
        }
    }
}

fn apps_view(apps: Vec<App>) -> String {
    if apps.is_empty() {
        return "No apps found.\n".to_string();
    }
    let rows: Vec<Vec<String>> = apps
        .into_iter()
        .map(|a| {
            vec![
                a.id,
                a.owner,
                drycc_time(&a.created),
                drycc_time(&a.updated),
            ]
        })
        .collect();
    table::render(&["ID", "OWNER", "CREATED", "UPDATED"], &rows)
}

fn info_view(app: &App) -> String {
    let structure = app
        .structure
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!("=== {} Application\n", app.id);
    out.push_str(&table::render_fields(&[
        ("uuid", app.uuid.clone()),
        ("id", app.id.clone()),
        ("owner", app.owner.clone()),
        ("structure", structure),
        ("created", drycc_time(&app.created)),
        ("updated", drycc_time(&app.updated)),
    ]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str) -> App {
        App {
            uuid: "u-1".into(),
            id: id.into(),
            owner: "alice".into(),
            structure: [("web".to_string(), 2), ("worker".to_string(), 0)].into(),
            created: "2023-12-08T02:25:00Z".into(),
            updated: "2023-12-08T02:26:00Z".into(),
        }
    }

    #[test]
    fn list_table() {
        assert_eq!(
            apps_view(vec![app("foo-bar")]),
            "ID         OWNER    CREATED                   UPDATED\n\
             foo-bar    alice    2023-12-08T02:25:00UTC    2023-12-08T02:26:00UTC\n"
        );
        assert_eq!(apps_view(vec![]), "No apps found.\n");
    }

    #[test]
    fn info_fields() {
        let out = info_view(&app("foo-bar"));
        assert!(
            out.starts_with("=== foo-bar Application\nuuid:         u-1\n"),
            "{out}"
        );
        assert!(out.contains("structure:    web=2 worker=0\n"), "{out}");
    }
}
