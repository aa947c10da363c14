//! `perms:list`, `perms:create`, `perms:delete`: sharing an app.

use super::complete;
use crate::cli::PermsCmd;
use crate::progress::Progress;
use crate::session::Ctx;
use crate::table;
use anyhow::bail;
use drycc_api_types::{PermRequest, Perms};

fn check_username(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() || name.contains('/') {
        bail!("'{name}' is not a valid username");
    }
    Ok(())
}

pub async fn run(cmd: PermsCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        PermsCmd::List { app } => {
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let perms: Perms = session
                .client
                .get(&format!("/v2/apps/{app}/perms/"))
                .await?;
            print!("{}", perms_view(&app, perms));
        }
        PermsCmd::Create { app, username } => {
            check_username(&username)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let progress =
                Progress::start(&format!("Adding {username} to {app} collaborators... "));
            let result = session
                .client
                .post_ignore(
                    &format!("/v2/apps/{app}/perms/"),
                    &PermRequest {
                        username: username.clone(),
                    },
                )
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
        PermsCmd::Delete { app, username } => {
            check_username(&username)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let progress =
                Progress::start(&format!("Removing {username} from {app} collaborators... "));
            let result = session
                .client
                .delete(&format!("/v2/apps/{app}/perms/{username}/"))
                .await;
            complete(progress, result, |_| String::new()).await?;
        }
    }
    Ok(0)
}

fn perms_view(app: &str, mut perms: Perms) -> String {
    if perms.users.is_empty() {
        return format!("{app} is not shared with anyone.\n");
    }
    perms.users.sort();
    let rows: Vec<Vec<String>> = perms.users.into_iter().map(|u| vec![u]).collect();
    table::render(&["USERNAME"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_table() {
        assert_eq!(
            perms_view(
                "foo",
                Perms {
                    users: vec!["bob".into(), "alice".into()]
                }
            ),
            "USERNAME\nalice\nbob\n"
        );
        assert_eq!(
            perms_view("foo", Perms { users: vec![] }),
            "foo is not shared with anyone.\n"
        );
    }
}
